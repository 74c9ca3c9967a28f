"""The HTTP server (aiohttp): `/healthz`, `/metrics`, the status page `/` and the API `/api/v1/…`.

`/healthz` is open (no token) and reads only memory, so it answers even when
the database hangs: 200 with `ok` or `degraded`, 503 with `down` (what a
container orchestrator's health check wants).  Its `fleet` object says which
instance holds which singleton task.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from monitor.api import add_api_routes
from monitor.metrics.http import make_metrics_app_handler
from monitor.web import add_status_page

SERVICE = web.AppKey("service", Any)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    body = service.health.snapshot()
    fleet = getattr(service, "fleet", None)
    if fleet is not None:
        body["fleet"] = fleet.view().public()
    return web.json_response(body, status=503 if body["status"] == "down" else 200)


def make_app(service: Any) -> web.Application:
    app = web.Application()
    app[SERVICE] = service
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", make_metrics_app_handler(service.registry, service.config.http.metrics_token))
    add_status_page(app, service, show_replies=service.config.http.shows_reply_details)
    add_api_routes(app, service)
    return app
