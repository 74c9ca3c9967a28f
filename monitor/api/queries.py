"""What the API reads, as plain functions of the store and the config (no aiohttp here).

Probe lists are keyset-paginated on `(planned_at, id)`, the order of
`monitor.history` and of the `ix_probes_planned_at_id` index.  A page asks
for one row more than it serves to know whether another page exists, so
`next_cursor` is null exactly on the last page.  Because the position is a
value, not an offset, probes written between two fetches never shift a walk:
a walk neither repeats nor skips a probe, and a new probe shows up once if it
sorts after the position reached.  One exception, by design of the runner: a
probe still `planned` whose send failed on our side is re-planned later
(`planned_at` moves forward), so a walk that had already passed it meets it
again at its new place (it is never skipped).

Documents are `monitor.history.probe_document`, loaded a page at a time with
the same bulk queries as `qualimon export`.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select, tuple_

from monitor.api.params import Position
from monitor.clock import iso_utc
from monitor.config.models import Commitment, Config, Site
from monitor.grading import csv_cells, graded_answers, quality_commitments
from monitor.history import load_details, probe_document, public_value
from monitor.status import site_commitments
from monitor.store.inlists import rows_in
from monitor.store.records import (
    CLOSED,
    SENT,
    VOID,
    ProbeRecord,
    StoredEvidence,
    VerdictRecord,
)
from monitor.store.schema import Call, Probe, Verdict
from monitor.store.store import Store, in_period

EXPORT_PAGE = 500
CALL_STATUSES = (SENT, CLOSED, VOID)  # calls that were placed, or that we failed to place (void)


@dataclass(frozen=True)
class ProbeFilter:
    site: str | None = None
    channel: str | None = None
    commitment: str | None = None
    verdict: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    statuses: tuple[str, ...] | None = None

    def conditions(self) -> list[Any]:
        conditions: list[Any] = []
        if self.site is not None:
            conditions.append(Probe.site == self.site)
        if self.channel is not None:
            conditions.append(Probe.channel == self.channel)
        if self.start is not None:
            conditions.append(Probe.planned_at >= self.start)
        if self.end is not None:
            conditions.append(Probe.planned_at < self.end)
        if self.statuses is not None:
            conditions.append(Probe.status.in_(self.statuses))
        if self.commitment is not None or self.verdict is not None:
            conditions.append(self._has_verdict())
        return conditions

    def _has_verdict(self) -> Any:
        """The probe has a verdict row for `commitment` (any value), with value `verdict` (any commitment)."""
        match = [Verdict.probe_id == Probe.id]
        if self.commitment is not None:
            match.append(Verdict.commitment == self.commitment)
        if self.verdict is not None:
            match.append(Verdict.verdict == self.verdict)
        return exists(select(Verdict.probe_id).where(*match))


def position(probe: ProbeRecord) -> Position:
    return probe.planned_at, probe.id


async def probe_page(store: Store, where: ProbeFilter, after: Position | None,
                     limit: int) -> tuple[list[ProbeRecord], Position | None]:
    """One page in (planned_at, id) order after `after`, and the position to continue from (None: the end)."""
    conditions = where.conditions()
    if after is not None:
        conditions.append(tuple_(Probe.planned_at, Probe.id) > tuple_(*after))
    rows = await store.probes_where(*conditions, limit=limit + 1)
    page = rows[:limit]
    return page, (position(page[-1]) if len(rows) > limit else None)


async def documents(store: Store, probes: list[ProbeRecord]) -> list[dict[str, Any]]:
    if not probes:
        return []
    events, verdicts = await load_details(store, [p.id for p in probes])
    return [probe_document(p, events.get(p.id, []), verdicts.get(p.id, {})) for p in probes]


CSV_PROBE_COLUMNS = (Probe.id, Probe.site, Probe.channel, Probe.purpose, Probe.origin, Probe.status,
                     Probe.planned_at, Probe.sent_at, Probe.void_reason, Probe.details)
CSV_VERDICT_COLUMNS = (Verdict.probe_id, Verdict.commitment, Verdict.verdict, Verdict.deadline, Verdict.delay_seconds,
                       Verdict.business_delay_seconds, Verdict.late, Verdict.reason)


async def csv_page(store: Store, where: ProbeFilter, after: Position | None, limit: int,
                   config: Config | None = None) -> tuple[list[dict[str, Any]], Position | None]:
    """One page of `csv_document`s: only the columns a CSV row shows, two queries, no events.

    An export runs over a million probes, so this skips the record objects the other readers use."""
    conditions = where.conditions()
    if after is not None:
        conditions.append(tuple_(Probe.planned_at, Probe.id) > tuple_(*after))
    query = select(*CSV_PROBE_COLUMNS).where(*conditions).order_by(Probe.planned_at, Probe.id).limit(limit + 1)
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        verdicts: dict[str, dict[str, Any]] = {row[0]: {} for row in rows}
        if rows:
            found = await rows_in(conn, verdicts, lambda chunk: select(*CSV_VERDICT_COLUMNS)
                                  .where(Verdict.probe_id.in_(chunk)).order_by(Verdict.probe_id, Verdict.commitment))
            for probe_id, cid, verdict, deadline, delay, business, late, reason in found:
                verdicts[probe_id][cid] = {"verdict": verdict, "deadline": iso_utc(deadline), "delay_seconds": delay,
                                           "business_delay_seconds": business, "late": late, "reason": reason}
    documents = [csv_document(row, verdicts[row[0]]) for row in rows]
    if config is not None:
        await _with_quality(store, config, documents)
    return documents, ((rows[-1][6], rows[-1][0]) if more else None)


async def _with_quality(store: Store, config: Config, documents: list[dict[str, Any]]) -> None:
    """Quality rows get their criteria: only the probes that have one are read again, with their events."""
    graded_cids = set(quality_commitments(config))
    ids = [d["id"] for d in documents if graded_cids & set(d["verdicts"])]
    if not ids:
        return
    found = {g.probe.id: g for g in await graded_answers(store, config, await store.probes_where(Probe.id.in_(ids)))}
    for document in documents:
        for cid, verdict in document["verdicts"].items():
            if cid in graded_cids:
                verdict["quality"] = csv_cells(found.get(document["id"]))


def csv_document(row: Any, verdicts: dict[str, Any]) -> dict[str, Any]:
    """What a CSV row needs: the export document without its events, plus the subject we sent
    (kept in the probe's details by the email kind), so an export reads two tables instead of three."""
    probe_id, site, channel, purpose, origin, status, planned_at, sent_at, reason, details = row
    subject = json.loads(details).get("subject") if details and "subject" in details else None
    return {"id": probe_id, "site": site, "channel": channel, "purpose": purpose, "origin": origin,
            "status": status, "planned_at": iso_utc(planned_at), "sent_at": iso_utc(sent_at), "reason": reason,
            "subject": subject if isinstance(subject, str) else None, "verdicts": verdicts}


async def iter_csv_documents(store: Store, where: ProbeFilter, after: Position | None = None,
                             config: Config | None = None) -> AsyncIterator[dict[str, Any]]:
    """`csv_document`s of every matching probe from `after` on, a page in memory at a time."""
    while True:
        page, after = await csv_page(store, where, after, EXPORT_PAGE, config)
        for document in page:
            yield document
        if after is None:
            return


async def probe_detail(store: Store, probe: ProbeRecord, evidence_url: str) -> dict[str, Any]:
    """GET /probes/{id}: the export document plus the evidence list (export = this without evidence)."""
    [document] = await documents(store, [probe])
    items = await store.evidence_for(probe.id)
    return {**document, "evidence": [evidence_document(e, evidence_url) for e in items]}


def evidence_document(item: StoredEvidence, base_url: str) -> dict[str, Any]:
    return {"id": item.id, "name": item.name, "content_type": item.content_type, "sha256": item.sha256,
            "size": item.size, "created_at": iso_utc(item.created_at), "url": f"{base_url}/{item.id}"}


# ------------------------------------------------------------------ calls


async def call_documents(store: Store, probes: list[ProbeRecord]) -> list[dict[str, Any]]:
    """Mystery calls in the call-record shape.  Call-log (CDR) records join here once they are stored:
    `source` is then the call-log source id, and they carry no caller number (personal data)."""
    if not probes:
        return []
    _, verdicts = await load_details(store, [p.id for p in probes])
    return [call_document(p, verdicts.get(p.id, {})) for p in probes]


def call_document(probe: ProbeRecord, verdicts: dict[str, VerdictRecord]) -> dict[str, Any]:
    details = probe.details
    answered = next((v.answered_at for _, v in sorted(verdicts.items()) if v.answered_at), None)
    outcome = details.get("call_outcome") or ("failed" if probe.status == VOID else None)
    return {
        "id": probe.id, "source": "mystery", "site": probe.site, "purpose": probe.purpose,
        "status": probe.status, "started_at": iso_utc(probe.sent_at), "answered_at": iso_utc(answered),
        "outcome": outcome, "ring_seconds": _number(details.get("ring_seconds")),
        "rings": _whole(details.get("rings")), "reason": probe.void_reason,
        "verdicts": {cid: public_value(v.public()) for cid, v in sorted(verdicts.items())},
    }


async def calllog_page(store: Store, where: ProbeFilter, after: Position | None,
                       limit: int) -> tuple[list[Any], Position | None]:
    """Call-log records in (started_at, id) order after `after`, with the probe filters' meaning."""
    conditions = [in_period(Call.started_at, where.start, where.end)]
    if where.site is not None:
        conditions.append(Call.site == where.site)
    if where.commitment is not None:
        conditions.append(Call.commitment == where.commitment)
    if where.verdict is not None:
        conditions.append(Call.verdict == where.verdict)
    if after is not None:
        if not after[1].isdigit():
            raise ValueError("this cursor belongs to another list")
        conditions.append(tuple_(Call.started_at, Call.id) > tuple_(after[0], int(after[1])))
    query = select(Call).where(*conditions).order_by(Call.started_at, Call.id).limit(limit + 1)
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
    page = rows[:limit]
    return page, ((page[-1].started_at, str(page[-1].id)) if len(rows) > limit else None)


def calllog_document(row: Any, config: Config) -> dict[str, Any]:
    """A call-log record in the call-record shape (no caller number: it is personal data)."""
    commitment = config.commitments.get(row.commitment) if row.commitment else None
    cadence = commitment.ring_cadence_seconds if commitment else 5.0
    rings = max(1, math.ceil(row.ring_seconds / cadence)) if row.ring_seconds else None
    verdicts = {} if row.commitment is None else {row.commitment: {
        "verdict": row.verdict, "deadline": None, "delay_seconds": row.delay_seconds,
        "business_delay_seconds": None, "late": bool(row.late), "reason": row.reason}}
    return {
        "id": f"{row.source}:{row.id}", "source": "calllog", "site": row.site, "purpose": row.opening,
        "status": "closed", "started_at": iso_utc(row.started_at), "answered_at": iso_utc(row.answered_at),
        "outcome": row.outcome, "ring_seconds": row.ring_seconds, "rings": rings, "reason": row.reason,
        "verdicts": verdicts,
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _whole(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


# ------------------------------------------------------------------ config views


def site_document(site: Site, commitments: list[str], *, contacts: bool) -> dict[str, Any]:
    """A site as configured.  `contacts`: its published address and number (auditors and admins only)."""
    email: dict[str, Any] | None = None
    phone: dict[str, Any] | None = None
    if site.email is not None:
        email = {"per_month": site.email.per_month, "max_per_month": site.email.max_per_month}
        email |= {"address": site.email.address} if contacts else {}
    if site.phone is not None:
        phone = {"per_month": site.phone.per_month, "max_per_month": site.phone.max_per_month,
                 "out_of_hours_per_month": site.phone.out_of_hours_per_month}
        phone |= {"number": site.phone.number} if contacts else {}
    return {"id": site.id, "name": site.name, "calendar": site.calendar, "office_calendar": site.office_calendar,
            "email": email, "phone": phone, "commitments": commitments}


def site_documents(config: Config, *, contacts: bool) -> list[dict[str, Any]]:
    by_site: dict[str, list[str]] = {s.id: [] for s in config.sites}
    for site_id, cid in site_commitments(config):
        by_site[site_id].append(cid)
    return [site_document(s, by_site[s.id], contacts=contacts) for s in config.sites]


def commitment_document(cid: str, commitment: Commitment) -> dict[str, Any]:
    within = commitment.within
    return {"id": cid, "channel": commitment.channel, "kind": commitment.kind,
            "within": {"unit": within.unit, "amount": within.amount} if within is not None else None,
            "criteria": dict(commitment.criteria) if commitment.criteria is not None else None,
            "threshold_seconds": commitment.threshold_seconds, "counts": list(commitment.answer_kinds),
            "during": commitment.during, "ring_cadence_seconds": commitment.ring_cadence_seconds,
            "target": commitment.target_ratio}


def commitment_documents(config: Config) -> list[dict[str, Any]]:
    return [commitment_document(cid, c) for cid, c in config.commitments.items()]
