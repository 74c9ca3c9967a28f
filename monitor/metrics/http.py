"""The `/metrics` HTTP handler: content negotiation, gzip, the optional bearer token.

The body is the registry's fast exposition (`monitor.metrics.exposition`),
rendered in a worker thread and streamed part by part; a registry without
`Metrics` is encoded by prometheus_client itself.  `name[]` filters are cut
from the same cached text.  One render runs at a time, and overlapping
requests that want the same body share it (`_Renders`), so a burst of
scrapes costs one scrape, not one full collection each.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

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


@dataclass(frozen=True)
class _Wanted:
    """A request, negotiated: requests that want the same thing get the same body."""

    encoder: Callable[[Any], bytes]
    content_type: str
    gzip: bool
    names: frozenset[str]  # `name[]`; empty for every sample

    @classmethod
    def of(cls, request: web.Request) -> _Wanted:
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        gzip = gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        return cls(encoder, content_type, gzip, frozenset(request.query.getall("name[]", [])))


def _render(registry: CollectorRegistry, wanted: _Wanted) -> _Body:
    """The response body; runs in a worker thread, never on the event loop."""
    exposition = served(registry)
    source = registry.restricted_registry(wanted.names) if wanted.names else registry
    if exposition is None:  # a registry without `Metrics`: prometheus_client's own path
        output = wanted.encoder(source)
        return _Body([zlib_gzip(output) if wanted.gzip else output], wanted.content_type, wanted.gzip)
    openmetrics = wanted.content_type.startswith("application/openmetrics-text")
    with exposition.muted():
        others = wanted.encoder(source).removesuffix(OPENMETRICS_EOF)
    parts = exposition.body(openmetrics, wanted.gzip, others, names=wanted.names or None)
    return _Body(parts, wanted.content_type, wanted.gzip)


class _Renders:
    """Bodies rendered one at a time, each in a worker thread; overlapping requests that want
    the same body share one render.

    A render can take seconds at 10 000 sites and the endpoint may be open to
    anyone: without this, each concurrent scrape would hold a worker thread
    (they are shared with the rest of the service) and redo the same work.
    A request that joins a render under way gets the values of its start, at
    most one render older than the request."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self._one_at_a_time = asyncio.Lock()
        self._under_way: dict[_Wanted, asyncio.Future[_Body]] = {}

    async def body(self, wanted: _Wanted) -> _Body:
        render = self._under_way.get(wanted)
        if render is None:
            render = self._under_way[wanted] = asyncio.ensure_future(self._render(wanted))
            render.add_done_callback(partial(self._done, wanted))
        return await asyncio.shield(render)  # a client that leaves does not cancel the others' render

    async def _render(self, wanted: _Wanted) -> _Body:
        async with self._one_at_a_time:
            return await asyncio.to_thread(_render, self.registry, wanted)

    def _done(self, wanted: _Wanted, render: asyncio.Future[_Body]) -> None:
        if self._under_way.get(wanted) is render:
            del self._under_way[wanted]
        if not render.cancelled():
            render.exception()  # retrieved here: every request that shared it may have gone


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
    renders = _Renders(registry)

    async def serve(request: web.Request) -> web.StreamResponse:
        return await _send(request, await renders.body(_Wanted.of(request)))

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
