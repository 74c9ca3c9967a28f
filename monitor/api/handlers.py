"""Request handlers of /api/v1: thin, each reads its parsed `Args` and calls a query or the runner.

Access control and parameter parsing happen before a handler runs (see
`routes.py`); a handler only raises `ApiError` for what depends on the data
(an unknown probe, a regrade the runner refuses).  Responses are JSON
(`application/json`, instants ISO 8601 UTC with `Z`), CSV streamed in
chunks, or evidence bytes served as a download that no browser renders.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from monitor import grading as graded_answers
from monitor.api import queries
from monitor.api.auth import Authenticator
from monitor.api.csvout import compliance_csv, csv_chunks
from monitor.api.errors import SAFE_HEADERS, STREAMING, ApiError, bad_request, not_found
from monitor.api.grade import parse_grade
from monitor.api.params import PROBE_ID, Args, encode_cursor, period
from monitor.api.regrade import RegradeRequest, parse_regrade
from monitor.config.models import Role
from monitor.quality import GradeRefused, NothingToGrade
from monitor.status import compliance_rows
from monitor.store.records import ProbeRecord

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class ApiContext:
    service: Any  # .config, .store, .runner, .clock
    auth: Authenticator
    openapi: dict[str, Any]


CONTEXT = web.AppKey("qualimon_api", ApiContext)


def context(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_ok(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


# ------------------------------------------------------------------ open


async def openapi_document(request: web.Request, args: Args) -> web.Response:
    return json_ok(context(request).openapi)


# ------------------------------------------------------------------ viewer


async def list_sites(request: web.Request, args: Args) -> web.Response:
    contacts = args.identity.may(Role.auditor)
    return json_ok(queries.site_documents(context(request).service.config, contacts=contacts))


async def list_commitments(request: web.Request, args: Args) -> web.Response:
    return json_ok(queries.commitment_documents(context(request).service.config))


async def compliance(request: web.Request, args: Args) -> web.Response:
    service = context(request).service
    start, end = period(args, service.config.timezone)
    rows = await compliance_rows(service.store, service.config, start, end, site=args.get("site"),
                                 commitment=args.get("commitment"))
    if wants_csv(args.get("format"), request.headers.get("Accept", "")):
        return web.Response(body=compliance_csv(row.public() for row in rows), headers={
            **SAFE_HEADERS, "Content-Type": "text/csv; charset=utf-8; header=present",
            "Content-Disposition": 'attachment; filename="qualimon-compliance.csv"'})
    return json_ok([row.public() for row in rows])


async def list_calls(request: web.Request, args: Args) -> web.Response:
    service = context(request).service
    if args.get("source") == "calllog":
        where = probe_filter(args, service.config.timezone, channel="phone")
        try:
            rows, after = await queries.calllog_page(service.store, where, args.get("cursor"), args["limit"])
        except ValueError as exc:
            raise bad_request(f"cursor {exc}") from None
        items = [queries.calllog_document(row, service.config) for row in rows]
        return json_ok({"items": items, "next_cursor": encode_cursor(after) if after else None})
    where = probe_filter(args, service.config.timezone, channel="phone", statuses=queries.CALL_STATUSES)
    page, after = await queries.probe_page(service.store, where, args.get("cursor"), args["limit"])
    items = await queries.call_documents(service.store, page)
    return json_ok({"items": items, "next_cursor": encode_cursor(after) if after else None})


# ------------------------------------------------------------------ auditor


async def list_probes(request: web.Request, args: Args) -> web.StreamResponse:
    service = context(request).service
    channel = args.get("channel")
    if channel is not None and channel not in service.config.channels:
        raise bad_request(f"channel: must be one of {', '.join(service.config.channels)}")
    where = probe_filter(args, service.config.timezone, channel=channel)
    if wants_csv(args.get("format"), request.headers.get("Accept", "")):
        return await stream_csv(request, queries.iter_csv_documents(service.store, where, args.get("cursor"),
                                                                    config=service.config))
    page, after = await queries.probe_page(service.store, where, args.get("cursor"), args["limit"])
    items = await queries.documents(service.store, page)
    return json_ok({"items": items, "next_cursor": encode_cursor(after) if after else None})


async def get_probe(request: web.Request, args: Args) -> web.Response:
    store = context(request).service.store
    probe = await find_probe(store, args["id"])
    return json_ok(await queries.probe_detail(store, probe, evidence_base(probe.id)))


async def list_evidence(request: web.Request, args: Args) -> web.Response:
    store = context(request).service.store
    probe = await find_probe(store, args["id"])
    items = await store.evidence_for(probe.id)
    return json_ok([queries.evidence_document(e, evidence_base(probe.id)) for e in items])


async def get_evidence(request: web.Request, args: Args) -> web.Response:
    store = context(request).service.store
    probe = await find_probe(store, args["id"])
    item = next((e for e in await store.evidence_for(probe.id) if e.id == args["evidence_id"]), None)
    data = await store.evidence_data(item.id) if item is not None else None
    if item is None or data is None:
        raise not_found(f"probe {probe.id} has no evidence with that id; list it at {evidence_base(probe.id)}")
    headers = {**SAFE_HEADERS, "Content-Disposition": attachment(item.name),
               "Content-Security-Policy": "default-src 'none'; sandbox", "X-Evidence-SHA256": item.sha256}
    content_type, charset = download_type(item.content_type)
    return web.Response(body=data, content_type=content_type, charset=charset, headers=headers)


async def verify_chain(request: web.Request, args: Args) -> web.Response:
    report = await context(request).service.store.verify_chain()
    broken = {"seq": report.broken.seq, "problem": report.broken.problem} if report.broken else None
    return json_ok({"ok": report.ok, "events": report.events, "last_seq": report.last_seq,
                    "last_hash": report.last_hash, "broken": broken})


async def regrade(request: web.Request, args: Args) -> web.Response:
    service = context(request).service
    probe = await find_probe(service.store, args["id"])
    wanted = parse_regrade(await read_json(request))
    await check_response_seq(service.store, probe, wanted)
    try:
        await service.runner.regrade(probe.id, by=args.identity.name, reason=wanted.reason,
                                     action=wanted.action, commitment=wanted.commitment,
                                     verdict=wanted.verdict, response_seq=wanted.response_seq)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    except KeyError:
        raise not_found(f"no probe {probe.id}") from None
    return json_ok(await queries.probe_detail(service.store, probe, evidence_base(probe.id)))


async def grade(request: web.Request, args: Args) -> web.Response:
    service = context(request).service
    probe = await find_probe(service.store, args["id"])
    wanted = parse_grade(await read_json(request))
    try:
        await service.runner.grade(probe.id, by=args.identity.name, decisions=wanted.decisions,
                                   reason=wanted.reason, response_seq=wanted.response_seq)
    except NothingToGrade as exc:
        raise ApiError(409, "nothing_to_grade", str(exc)) from None
    except GradeRefused as exc:
        raise bad_request(str(exc)) from None
    except KeyError:
        raise not_found(f"no probe {probe.id}") from None
    [graded] = await graded_answers.graded_answers(service.store, service.config,
                                                   [await find_probe(service.store, probe.id)])
    return json_ok(graded_answers.document(graded))


async def list_grading(request: web.Request, args: Args) -> web.Response:
    service = context(request).service
    start, end = period(args, service.config.timezone)
    status = args.get("status")
    items, after = await graded_answers.grading_page(
        service.store, service.config, None if status == "all" else status, site=args.get("site"), start=start,
        end=end, after=args.get("cursor"), limit=args["limit"])
    return json_ok({"items": [graded_answers.document(g) for g in items],
                    "next_cursor": encode_cursor(after) if after else None})


# ------------------------------------------------------------------ helpers


def probe_filter(args: Args, zone: str, *, channel: str | None,
                 statuses: tuple[str, ...] | None = None) -> queries.ProbeFilter:
    start, end = period(args, zone)
    return queries.ProbeFilter(site=args.get("site"), channel=channel, commitment=args.get("commitment"),
                               verdict=args.get("verdict"), start=start, end=end, statuses=statuses)


async def find_probe(store: Any, probe_id: str) -> ProbeRecord:
    probe = await store.probe(probe_id) if re.fullmatch(PROBE_ID, probe_id) else None
    if probe is None:
        raise not_found("no probe with this id")
    return probe


def evidence_base(probe_id: str) -> str:
    return f"{API_PREFIX}/probes/{probe_id}/evidence"


def wants_csv(format_: str | None, accept: str) -> bool:
    """`format` decides; without it, CSV when the Accept header prefers text/csv to JSON."""
    if format_ is not None:
        return format_ == "csv"
    weights = accept_weights(accept)
    return weights.get("text/csv", 0.0) > max(weights.get("application/json", 0.0), weights.get("*/*", 0.0))


def accept_weights(accept: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *options = (piece.strip() for piece in part.split(";"))
        q = 1.0
        for option in options:
            name, _, value = option.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media:
            weights[media.lower()] = max(q, weights.get(media.lower(), 0.0))
    return weights


async def stream_csv(request: web.Request, documents: Any) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        **SAFE_HEADERS, "Content-Type": "text/csv; charset=utf-8; header=present",
        "Content-Disposition": 'attachment; filename="qualimon-probes.csv"'})
    response.enable_chunked_encoding()
    chunks = csv_chunks(documents)
    first = await anext(chunks)  # fail before the status line if the query itself fails
    await response.prepare(request)
    request[STREAMING] = True
    await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


def download_type(stored: str) -> tuple[str, str | None]:
    """Plain text stays readable; anything else (mail, HTML, JSON, images) is an opaque download."""
    main, *options = (part.strip() for part in stored.split(";"))
    if main.lower() != "text/plain":
        return "application/octet-stream", None
    charsets = [o.partition("=")[2].strip('"') for o in options if o.lower().startswith("charset=")]
    charset = charsets[0] if charsets and re.fullmatch(r"[A-Za-z0-9._-]{1,40}", charsets[0]) else None
    return "text/plain", charset


def attachment(name: str) -> str:
    """A Content-Disposition that no file name can break out of (quotes, CR/LF, path separators)."""
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "evidence"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:100], safe='')}"


async def read_json(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    # ValueError also covers an integer past Python's 4,300-digit limit; RecursionError, nesting too deep.
    except (ValueError, RecursionError):
        raise bad_request("the body must be a JSON object") from None


async def check_response_seq(store: Any, probe: ProbeRecord, wanted: RegradeRequest) -> None:
    """A discount names a response of this very probe; the runner would accept any number."""
    if wanted.response_seq is None:
        return
    responses = {e.seq for e in await store.events_for(probe.id) if e.type == "response"}
    if wanted.response_seq not in responses:
        raise bad_request(f"response_seq: probe {probe.id} has no response event with that seq"
                          + (f"; its responses are {sorted(responses)}" if responses else " (it has no response)"))
