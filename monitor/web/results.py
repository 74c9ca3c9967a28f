"""The latest decisions, and the replies that decided them, read with bounded queries.

"Last results" come from the event log rather than the verdicts table: the
log's primary key is its sequence number, so the newest `verdict` events are
an index walk backwards that stops after `limit` rows, however large the
history is.  The reply behind a verdict is the `response` event whose
instant is the verdict's `answered_at` (the first counted answer), so an
auto-reply that met `email.ack` and the human reply that met `email.reply`
each show their own subject and sender.

Subjects and sender names are hostile input (anyone can send the mystery
mailbox anything): they are returned as plain text and escaped by the pages.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from monitor.store.inlists import rows_in
from monitor.store.schema import Event, Verdict
from monitor.store.store import Store, aware_utc


@dataclass(frozen=True)
class Reply:
    kind: str
    answered_at: datetime
    subject: str | None
    sender: str | None


@dataclass(frozen=True)
class ResultLine:
    probe_id: str
    site: str
    channel: str
    commitment: str
    verdict: str
    decided_at: datetime
    delay_seconds: float | None
    late: bool
    reason: str | None
    reply: Reply | None


async def recent_results(store: Store, limit: int = 50) -> list[ResultLine]:
    """The `limit` most recent verdict decisions, newest first, each shown as it stands now.

    A verdict can change after its decision event (a late answer, a regrade): the line shows the
    current verdict row, and a (probe, commitment) decided twice appears once, at its latest decision."""
    async with store.read() as conn:
        events = (await conn.execute(
            select(Event.probe_id, Event.at, Event.data).where(Event.type == "verdict")
            .order_by(Event.seq.desc()).limit(limit))).all()
        ids = sorted({e.probe_id for e in events if e.probe_id})
        verdicts = {(r.probe_id, r.commitment): r for r in await rows_in(
            conn, ids, lambda chunk: select(Verdict).where(Verdict.probe_id.in_(chunk)))}
    replies = await replies_for(store, ids)
    lines, seen = [], set()
    for event in events:
        key = (event.probe_id, json.loads(event.data).get("commitment"))
        row = verdicts.get(key)
        if row is None or key in seen:
            continue
        seen.add(key)
        lines.append(ResultLine(row.probe_id, row.site, row.channel, row.commitment, row.verdict,
                                aware_utc(event.at), row.delay_seconds, bool(row.late), row.reason,
                                pick_reply(replies.get(row.probe_id, []), row.answered_at)))
    return lines


async def replies_for(store: Store, probe_ids: Sequence[str]) -> dict[str, list[Reply]]:
    """Every recorded answer (reply, auto-reply, bounce, call answer) of these probes, oldest first."""
    found: dict[str, list[Reply]] = defaultdict(list)
    if not probe_ids:
        return found
    async with store.read() as conn:
        rows = await rows_in(conn, probe_ids, lambda chunk: (
            select(Event.probe_id, Event.data).where(Event.probe_id.in_(chunk), Event.type == "response")
            .order_by(Event.seq)))
    for row in rows:
        reply = reply_from(json.loads(row.data))
        if reply is not None:
            found[row.probe_id].append(reply)
    return found


def reply_from(data: dict[str, object]) -> Reply | None:
    """A `response` event's data as a Reply; the sender is the display name, else the address."""
    try:
        at = datetime.fromisoformat(str(data["answered_at"]))
    except (KeyError, ValueError):
        return None
    sender = data.get("from_name") or data.get("sender") or data.get("from")
    subject = data.get("subject")
    return Reply(str(data.get("kind", "")), aware_utc(at), None if subject is None else str(subject),
                 None if not sender else str(sender))


def pick_reply(replies: Sequence[Reply], answered_at: datetime | None) -> Reply | None:
    """The answer that decided the verdict; else the last one received (a late or uncounted answer)."""
    if answered_at is not None:
        for reply in replies:
            if reply.answered_at == answered_at:
                return reply
    return replies[-1] if replies else None
