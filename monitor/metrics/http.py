"""The `/metrics` HTTP handler: content negotiation, gzip, the optional bearer token.

The body is the registry's fast exposition (`monitor.metrics.exposition`),
rendered in a worker thread and streamed part by part; a registry without
`Metrics` is encoded by prometheus_client itself.
"""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted
from pydantic import SecretStr

from monitor.metrics.exposition import OPENMETRICS_EOF, served, zlib_gzip


@dataclass(frozen=True)
class _Body:
    parts: list[bytes]
    content_type: str
    gzip: bool


def _render(registry: CollectorRegistry, accept: str, accept_encoding: str, names: list[str]) -> _Body:
    """The response body; runs in a worker thread, never on the event loop."""
    encoder, content_type = choose_encoder(accept)
    gzip = gzip_accepted(accept_encoding)
    exposition = served(registry)
    if exposition is None or names:
        # prometheus_client's own path: a registry without `Metrics`, or `name[]` filtering
        # (a debugging aid; slow at 10 000 sites, but still off the loop).
        output = encoder(registry.restricted_registry(names) if names else registry)
        return _Body([zlib_gzip(output) if gzip else output], content_type, gzip)
    openmetrics = content_type.startswith("application/openmetrics-text")
    with exposition.muted():
        others = encoder(registry).removesuffix(OPENMETRICS_EOF)
    return _Body(exposition.body(openmetrics, gzip, others), content_type, gzip)


async def _send(request: web.Request, body: _Body) -> web.StreamResponse:
    """Stream the parts as they are (cached blocks; no 200 MB join on the loop)."""
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: body.content_type, hdrs.VARY: hdrs.ACCEPT_ENCODING})
    if body.gzip:
        response.headers[hdrs.CONTENT_ENCODING] = "gzip"
    response.content_length = sum(map(len, body.parts))
    await response.prepare(request)
    if request.method != hdrs.METH_HEAD:
        for part in body.parts:
            await response.write(part)
    await response.write_eof()
    return response


def _serve(registry: CollectorRegistry) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        accept = ",".join(request.headers.getall(hdrs.ACCEPT, []))
        body = await asyncio.to_thread(_render, registry, accept, request.headers.get(hdrs.ACCEPT_ENCODING, ""),
                                       request.query.getall("name[]", []))
        return await _send(request, body)

    return serve


def make_metrics_app_handler(registry: CollectorRegistry, token: SecretStr | None) -> Handler:
    """The `/metrics` handler; with a token, only `Authorization: Bearer <token>` is served."""
    serve = _serve(registry)
    if token is None:
        return serve
    secret = token.get_secret_value()
    if not secret:
        raise ValueError("an empty metrics token would accept anyone; omit it instead")
    expected = f"Bearer {secret}".encode()

    async def guarded(request: web.Request) -> web.StreamResponse:
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):  # constant time: no timing oracle on the token
            return web.Response(status=401, text="401: bearer token required\n",
                                headers={"WWW-Authenticate": 'Bearer realm="qualimon metrics"'})
        return await serve(request)

    return guarded
