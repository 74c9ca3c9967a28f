"""Probe history as auditors see it: one document per probe (docs/design.md §5).

`probe_document` gives the public shape (`id, site, channel, status,
planned_at, sent_at, events, verdicts`); `iter_documents` streams them in
`planned_at` order with keyset pagination and bulk loading per page, so an
export of a million probes uses constant memory.  The CLI export and the
HTTP API share this module.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_

from monitor.clock import iso_utc
from monitor.store.inlists import rows_in
from monitor.store.records import EventRecord, ProbeRecord, VerdictRecord
from monitor.store.schema import Event, Probe, Verdict
from monitor.store.store import Store, verdict_record

PAGE = 500


def public_value(value: Any) -> Any:
    """Instants as ISO 8601 UTC with Z, recursively."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {k: public_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_value(v) for v in value]
    return value


def event_document(event: EventRecord) -> dict[str, Any]:
    return {"seq": event.seq, "at": iso_utc(event.at), "type": event.type, "data": public_value(event.data)}


def probe_document(probe: ProbeRecord, events: Iterable[EventRecord],
                   verdicts: dict[str, VerdictRecord]) -> dict[str, Any]:
    return {
        "id": probe.id,
        "site": probe.site,
        "channel": probe.channel,
        "purpose": probe.purpose,
        "origin": probe.origin,
        "status": probe.status,
        "planned_at": iso_utc(probe.planned_at),
        "sent_at": iso_utc(probe.sent_at),
        "reason": probe.void_reason,
        "events": [event_document(e) for e in events],
        "verdicts": {cid: public_value(v.public()) for cid, v in sorted(verdicts.items())},
    }


async def iter_documents(store: Store, start: datetime | None = None, end: datetime | None = None,
                         *, site: str | None = None) -> AsyncIterator[dict[str, Any]]:
    after: tuple[datetime, str] | None = None
    while True:
        page = await _page(store, start, end, site, after)
        if not page:
            return
        events, verdicts = await load_details(store, [p.id for p in page])
        for probe in page:
            yield probe_document(probe, events.get(probe.id, []), verdicts.get(probe.id, {}))
        after = (page[-1].planned_at, page[-1].id)


async def _page(store: Store, start: datetime | None, end: datetime | None, site: str | None,
                after: tuple[datetime, str] | None) -> list[ProbeRecord]:
    conditions = []
    if start is not None:
        conditions.append(Probe.planned_at >= start)
    if end is not None:
        conditions.append(Probe.planned_at < end)
    if site is not None:
        conditions.append(Probe.site == site)
    if after is not None:
        conditions.append(tuple_(Probe.planned_at, Probe.id) > tuple_(*after))
    return await store.probes_where(*conditions, limit=PAGE)


async def load_details(store: Store, ids: list[str]) -> tuple[dict[str, list[EventRecord]],
                                                          dict[str, dict[str, VerdictRecord]]]:
    events: dict[str, list[EventRecord]] = defaultdict(list)
    verdicts: dict[str, dict[str, VerdictRecord]] = defaultdict(dict)
    async with store.read() as conn:
        for row in await rows_in(conn, ids, lambda chunk: select(Event).where(Event.probe_id.in_(chunk))
                                 .order_by(Event.seq)):
            events[row.probe_id].append(EventRecord(row.seq, row.probe_id, row.at, row.type, json.loads(row.data)))
        for row in await rows_in(conn, ids, lambda chunk: select(Verdict).where(Verdict.probe_id.in_(chunk))):
            verdicts[row.probe_id][row.commitment] = verdict_record(row)
    return events, verdicts
