"""API errors as JSON: `{"error": "<code>", "detail": "<what to do>"}` for every 4xx and 5xx under /api/v1.

`ApiError` is what handlers and validators raise.  The middleware also turns
aiohttp's own errors (unknown path 404, wrong method 405) into the same
shape, keeping their headers (`Allow`), and hides unexpected exceptions
behind a plain 500: an exception text may quote a database parameter, so
it goes to the log with the traceback, never into the response.  Details
name parameters and say what is expected; they never echo the value that
was sent (it could be a pasted secret, or markup meant for a browser).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

log = logging.getLogger("qualimon.api")

# Set on the request once a streamed body has started (RequestKey from aiohttp 3.12; a string before).
STREAMING: Any = web.RequestKey("qualimon_streaming", bool) if hasattr(web, "RequestKey") else "qualimon_streaming"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Served with every API response: a browser must never sniff JSON, CSV or evidence into HTML.
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: str, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def error_response(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status,
                             headers={**SAFE_HEADERS, **(headers or {})})


_AIOHTTP_CODES = {404: ("not_found", "no such API path; the routes are listed in /api/v1/openapi.json"),
                  405: ("method_not_allowed", "this path does not take that method; see the Allow header")}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error, exc.detail, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error, detail = _AIOHTTP_CODES.get(exc.status, ("http_error", exc.reason))
        kept = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "www-authenticate")}
        return error_response(exc.status, error, detail, kept)
    except Exception:
        log.exception("API %s %s failed", request.method, request.rel_url.path)
        if request.get(STREAMING):
            raise  # the status line is gone: only closing the connection tells the client it is cut short
        return error_response(500, "internal_error", "the server failed; the error is in its log")
    if not response.prepared:
        for name, value in SAFE_HEADERS.items():
            response.headers.setdefault(name, value)
    return response
