"""The HTTP server (aiohttp): `/healthz`, `/metrics`, the status page `/` and the API `/api/v1/…`.

`/healthz` is open (no token) and reads only memory, so it answers even when
the database hangs: 200 with `ok` or `degraded`, 503 with `down` (what a
container orchestrator's health check wants).  Its `fleet` object says which
instance holds which singleton task.  Without a token each check says only
up, degraded or down; its details (host names, file paths, error
texts) need a valid API token of any role, or the metrics token.

A request that is not HTTP (a header line past 8,190 bytes, a space in a
header name, raw bytes in the path) gets aiohttp's 400 and one INFO line,
not the ERROR with a traceback aiohttp logs for it: anyone can send one,
and nothing failed on our side.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from monitor.api import add_api_routes
from monitor.api.auth import Authenticator, bearer, digest
from monitor.metrics.http import make_metrics_app_handler
from monitor.web import add_status_page
from monitor.web.sheet import add_grading_sheet

SERVICE = web.AppKey("service", Any)
HEALTH_READERS = web.AppKey("health_readers", Any)


class HealthReaders:
    """Who may read the health details: a holder of any API token, or of the metrics token."""

    def __init__(self, config: Any):
        self.tokens = Authenticator(config.tokens)
        metrics = config.http.metrics_token
        self.metrics_digest = digest(metrics.get_secret_value()) if metrics is not None else None

    def allowed(self, authorization: str | None) -> bool:
        presented = bearer(authorization)
        if presented is None:
            return False
        metrics_ok = self.metrics_digest is not None and hmac.compare_digest(digest(presented), self.metrics_digest)
        return self.tokens.identify(presented) is not None or metrics_ok


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    details = request.app[HEALTH_READERS].allowed(request.headers.get("Authorization"))
    body = service.health.snapshot(details=details)
    fleet = getattr(service, "fleet", None)
    if fleet is not None:
        body["fleet"] = fleet.view().public()
    return web.json_response(body, status=503 if body["status"] == "down" else 200,
                             headers={"Cache-Control": "no-store"})


class ClientErrorsAsInfo(logging.Filter):
    """Rewrites aiohttp's "Error handling request" record for a malformed request (a 4xx) into one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500:
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.msg, record.args = "refused a malformed request from %s (%s %s)", (peer, exc.code,
                                                                                    type(exc).__name__)
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info, record.exc_text = None, None
        return True


def quiet_client_errors() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ClientErrorsAsInfo) for f in server_log.filters):
        server_log.addFilter(ClientErrorsAsInfo())


def make_app(service: Any) -> web.Application:
    quiet_client_errors()
    app = web.Application()
    app[SERVICE] = service
    app[HEALTH_READERS] = HealthReaders(service.config)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", make_metrics_app_handler(service.registry, service.config.http.metrics_token))
    add_status_page(app, service, show_replies=service.config.http.shows_reply_details)
    add_grading_sheet(app, service, open_to_all=service.config.http.shows_reply_details)
    add_api_routes(app, service)
    return app
