"""`/api/v1/mailboxes/{name}/messages`: every message read from a mystery mailbox, and an auditor's decisions.

Each message is in one bucket — `matched`, `unrelated`, `held` (would
answer a probe but its sender is not authenticated: the probe's verdicts are
`review` until decided) or `quarantined` (processing it failed) — with its
reason, how it matched and who sent it as far as our server could tell
(`auth`), and a headers-only summary.  Listing is newest first, a page at a
time (`next_cursor`); `bucket` and `decided` filter.

`POST …/messages/{id}/attach` `{probe, reason}` makes the message count for
that probe as what it is (an answer, or the failure a permanent bounce
shows); `POST …/messages/{id}/dismiss` `{reason}` sets it aside.  Both are
appended to the event log (`attached`, `dismissed`) with who (the token's
name) and why, once per message, and the verdicts are recomputed.
`GET …/messages/{id}/raw` downloads the message as kept (inert, never HTML).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from monitor.api.errors import SAFE_HEADERS, bad_request, not_found
from monitor.api.handlers import attachment, context, json_ok, read_json
from monitor.api.params import PROBE_ID, Args
from monitor.api.regrade import MAX_REASON, REASON, _reason
from monitor.clock import iso_utc
from monitor.store.records import BUCKETS, StoredMessage

MESSAGE_FIELDS = {
    "id": {"type": "integer"}, "mailbox": {"type": "string"}, "bucket": {"type": "string", "enum": list(BUCKETS)},
    "reason": {"type": "string"}, "probe": {"type": ["string", "null"]}, "method": {"type": ["string", "null"]},
    "auth": {"type": ["object", "null"]}, "kind": {"type": ["string", "null"]},
    "received_at": {"type": "string", "format": "date-time"}, "recorded_at": {"type": "string", "format": "date-time"},
    "location": {"type": "string"}, "size": {"type": ["integer", "null"]}, "sha256": {"type": ["string", "null"]},
    "kept_bytes": {"type": "integer"}, "summary": {"type": "object"},
    "decision": {"type": ["object", "null"]}, "raw_url": {"type": ["string", "null"]},
}


def body_schema(with_probe: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON,
                                             "pattern": REASON}}
    if with_probe:
        properties["probe"] = {"type": "string", "pattern": PROBE_ID}
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": ["reason", "probe"] if with_probe else ["reason"]}


def message_document(stored: StoredMessage, base: str) -> dict[str, Any]:
    message = stored.message
    kept = stored.kept_bytes or int(message.summary.get("kept_bytes") or 0)
    decision = None
    if stored.decision is not None:
        decision = {"action": stored.decision, "by": stored.decided_by, "reason": stored.decision_reason,
                    "probe": stored.decided_probe, "at": iso_utc(stored.decided_at) if stored.decided_at else None}
    return {
        "id": stored.id, "mailbox": message.mailbox, "bucket": message.bucket, "reason": message.reason,
        "probe": message.probe_id, "method": message.method, "auth": message.auth, "kind": message.kind,
        "received_at": iso_utc(message.received_at), "recorded_at": iso_utc(stored.recorded_at),
        "location": message.location, "size": message.size, "sha256": message.sha256,
        "kept_bytes": kept, "summary": message.summary, "decision": decision,
        "raw_url": f"{base}/{stored.id}/raw" if kept else None,
    }


# ------------------------------------------------------------------ handlers


def _service(request: web.Request) -> Any:
    return context(request).service


def _mailbox(request: web.Request, args: Args) -> str:
    name = args["name"]
    if name not in _service(request).config.mailboxes:
        raise not_found("no mailbox with this name in the config")
    return str(name)


def _base(name: str) -> str:
    return f"/api/v1/mailboxes/{name}/messages"


async def list_messages(request: web.Request, args: Args) -> web.Response:
    name = _mailbox(request, args)
    limit = args["limit"]
    rows = await _service(request).store.messages(name, bucket=args.get("bucket"), decided=args.get("decided"),
                                                  before=args.get("cursor"), limit=limit + 1)
    page = rows[:limit]
    after = str(page[-1].id) if len(rows) > limit else None
    return json_ok({"items": [message_document(m, _base(name)) for m in page], "next_cursor": after})


async def attach_message(request: web.Request, args: Args) -> web.Response:
    return await _decide(request, args, "attach")


async def dismiss_message(request: web.Request, args: Args) -> web.Response:
    return await _decide(request, args, "dismiss")


async def _decide(request: web.Request, args: Args, action: str) -> web.Response:
    service = _service(request)
    name = _mailbox(request, args)
    if await service.store.message(name, args["message_id"]) is None:
        raise not_found(f"mailbox {name} has no message with that id")
    probe, reason = _body(await read_json(request), action)
    if probe is not None and await service.store.probe(probe) is None:
        raise not_found("no probe with this id")
    try:
        stored = await service.runner.review_message(args["message_id"], action, by=args.identity.name,
                                                     reason=reason, probe_id=probe)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    return json_ok(message_document(stored, _base(name)))


def _body(body: Any, action: str) -> tuple[str | None, str]:
    if not isinstance(body, dict):
        raise bad_request(f"the body must be a JSON object with {'probe and ' if action == 'attach' else ''}reason")
    allowed = {"reason", "probe"} if action == "attach" else {"reason"}
    if set(body) - allowed:
        raise bad_request(f"the body of {action} takes only {', '.join(sorted(allowed))} "
                          "(who decides is the token's name, never a field)")
    probe = body.get("probe")
    if action == "attach" and (not isinstance(probe, str) or not re.fullmatch(PROBE_ID, probe)):
        raise bad_request("probe: must be the id of the probe this message answers")
    return probe, _reason(body.get("reason"))


async def get_raw(request: web.Request, args: Args) -> web.Response:
    name = _mailbox(request, args)
    store = _service(request).store
    stored = await store.message(name, args["message_id"])
    raw = stored.message.raw if stored is not None else None
    if stored is not None and raw is None and stored.message.probe_id and stored.message.summary.get("evidence"):
        raw = await _evidence(store, stored.message.probe_id, str(stored.message.summary["evidence"]))
    if stored is None or raw is None:
        raise not_found(f"mailbox {name} keeps no message with that id")
    headers = {**SAFE_HEADERS, "Content-Disposition": attachment(f"message-{stored.id}.eml"),
               "Content-Security-Policy": "default-src 'none'; sandbox",
               "X-Message-SHA256": stored.message.sha256 or ""}
    return web.Response(body=raw, content_type="application/octet-stream", headers=headers)


async def _evidence(store: Any, probe_id: str, name: str) -> bytes | None:
    """A matched or held message is kept once, as its probe's evidence."""
    item = next((e for e in await store.evidence_for(probe_id) if e.name == name), None)
    return await store.evidence_data(item.id) if item is not None else None
