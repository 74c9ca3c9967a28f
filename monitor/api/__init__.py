"""The auditors' HTTP API, /api/v1 (docs/design.md §5): sites, commitments, compliance, calls, probe history,
evidence, chain verification and regrading, behind bearer tokens with roles.

Wire it with `add_api_routes(app, service)` where `service` has `.config`,
`.store`, `.runner` and `.clock`.  Module map: `routes` (the table of paths,
roles and parameters), `handlers` (thin request handlers), `queries` (reads,
no aiohttp), `auth` (tokens and roles), `params` (parameter parsing),
`regrade` (the regrade body), `openapi` (the document, built from the
table), `errors` (JSON errors), `csvout` (streamed CSV, also used by
`qualimon export --format csv`; importing it does not load aiohttp).
"""

from __future__ import annotations

from typing import Any


def add_api_routes(app: Any, service: Any) -> None:
    """Mount /api/v1 on an aiohttp `web.Application` (before it starts; a second call does nothing)."""
    from monitor.api.routes import install

    install(app, service)


__all__ = ["add_api_routes"]
