"""Graded answers as auditors read them: the API's grading list, the grading sheet, the CSV and the report.

An answer's grading is rebuilt from the probe's events (`verdicts.facts_from`:
the `assessment` written with the answer, the `grade` events of auditors), so
every reader shows exactly what the verdicts were computed from.  `status`
is `to_review` while a criterion is uncertain and undecided, or while no
auditor has looked at the answer, `confirmed` otherwise (`monitor.quality`).

The list is keyset-paginated like the probe list, in (planned_at, id) order
over probes that have a graded answer; filtering on `status` happens after
reading, so a page scans at most `SCAN_LIMIT` probes and may come back short
(even empty) with a `next_cursor` to continue from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, select, tuple_

from monitor import quality
from monitor.clock import iso_utc
from monitor.config.models import Commitment, Config
from monitor.history import load_details
from monitor.store.records import EventRecord, ProbeRecord, VerdictRecord
from monitor.store.schema import Probe, Verdict
from monitor.store.store import Store, aware_utc
from monitor.verdicts import facts_from, first_counted

SCAN_LIMIT = 2000
Position = tuple[datetime, str]  # (planned_at, id), as the probe list's cursors
SHEET_PATH = "/probes/{id}/grading"


@dataclass(frozen=True)
class GradedAnswer:
    probe: ProbeRecord
    answered_at: datetime
    grading: quality.Grading
    criteria: tuple[str, ...]                       # the channel's, in its order
    commitments: dict[str, Commitment]              # the quality commitments that judge it
    verdicts: dict[str, VerdictRecord]

    @property
    def status(self) -> str:
        return quality.review_status(self.grading, self.criteria)

    @property
    def standings(self) -> list[quality.Standing]:
        return quality.standings(self.grading, self.criteria)

    @property
    def answer(self) -> str:
        return str((self.grading.assessment or {}).get("answer", ""))

    @property
    def request(self) -> str | None:
        body = self.probe.details.get("body")
        return body if isinstance(body, str) else None

    @property
    def deciders(self) -> list[str]:
        return sorted({d.by for d in self.grading.decisions})


def quality_commitments(config: Config, channel: str | None = None) -> dict[str, Commitment]:
    return {cid: c for cid, c in config.commitments.items() if c.is_quality and channel in (None, c.channel)}


def graded_answer(config: Config, probe: ProbeRecord, events: Sequence[EventRecord],
                  verdicts: dict[str, VerdictRecord]) -> GradedAnswer | None:
    """The answer the probe's quality commitments grade, None when there is none (yet)."""
    spec = config.channels.get(probe.channel)
    commitments = {cid: c for cid, c in quality_commitments(config, probe.channel).items()
                   if c.during in ("any", probe.purpose)}
    if spec is None or not spec.criteria or not commitments:
        return None
    answers = facts_from(probe, events).answers
    for commitment in commitments.values():
        answer = first_counted(commitment, answers)
        if answer is not None:
            grading = answer.grading or quality.Grading(answer.seq)
            return GradedAnswer(probe, answer.at, grading, tuple(spec.criteria), commitments,
                                {cid: v for cid, v in verdicts.items() if cid in commitments})
    return None


async def graded_answers(store: Store, config: Config, probes: Sequence[ProbeRecord]) -> list[GradedAnswer]:
    if not probes:
        return []
    events, verdicts = await load_details(store, [p.id for p in probes])
    found = (graded_answer(config, p, events.get(p.id, []), verdicts.get(p.id, {})) for p in probes)
    return [g for g in found if g is not None]


def document(graded: GradedAnswer) -> dict[str, Any]:
    """One item of GET /api/v1/grading (and the body POST /probes/{id}/grade answers with)."""
    assessment = graded.grading.assessment or {}
    return {
        "probe": graded.probe.id, "site": graded.probe.site, "channel": graded.probe.channel,
        "planned_at": iso_utc(graded.probe.planned_at), "answered_at": iso_utc(graded.answered_at),
        "response_seq": graded.grading.response_seq or None, "status": graded.status,
        "assessed": graded.grading.assessment is not None,
        "language": assessment.get("language"), "template": assessment.get("template"),
        "uncertain": quality.uncertain(graded.grading, graded.criteria),
        "decided_by": graded.deciders,
        "criteria": {s.name: s.public() for s in graded.standings},
        "commitments": {cid: _verdict(graded, cid, c) for cid, c in graded.commitments.items()},
        "sheet": SHEET_PATH.format(id=graded.probe.id),
    }


def _verdict(graded: GradedAnswer, cid: str, commitment: Commitment) -> dict[str, Any]:
    record = graded.verdicts.get(cid)
    return {"verdict": record.verdict if record else "pending", "reason": record.reason if record else None,
            "score": quality.score(graded.grading, commitment.graded_criteria),
            "required": list(commitment.required_criteria)}


def csv_cells(graded: GradedAnswer | None) -> tuple[str, str, str]:
    """(score, criteria, decided_by) cells of a CSV row: `signed=not_met(alice)` marks an auditor's decision."""
    if graded is None:
        return "", "", ""
    parts = []
    for s in graded.standings:
        value = "unknown" if s.met is None else ("met" if s.met else "not_met")
        mark = f"({s.decided_by})" if s.decided_by else ("?" if not s.certain else "")
        parts.append(f"{s.name}={value}{mark}")
    scores = [quality.score(graded.grading, c.graded_criteria) for c in graded.commitments.values()]
    first = next((s for s in scores if s is not None), None)
    return ("" if first is None else repr(first)), "; ".join(parts), ", ".join(graded.deciders)


@dataclass(frozen=True)
class Unsure:
    """An answer whose quality verdict waits for an auditor (the machine is unsure of a required criterion)."""

    probe_id: str
    site: str
    commitment: str
    answered_at: datetime
    reason: str | None


async def awaiting_review(store: Store, config: Config, limit: int = 20) -> tuple[int, list[Unsure]]:
    """How many answers wait for an auditor, and the `limit` latest of them."""
    cids = list(quality_commitments(config))
    if not cids:
        return 0, []
    where = (Verdict.commitment.in_(cids), Verdict.verdict == "review", Verdict.answered_at.is_not(None))
    async with store.read() as conn:
        total = (await conn.execute(select(func.count()).select_from(Verdict).where(*where))).scalar_one()
        rows = (await conn.execute(select(Verdict.probe_id, Verdict.site, Verdict.commitment, Verdict.answered_at,
                                          Verdict.reason).where(*where)
                                   .order_by(Verdict.answered_at.desc()).limit(limit))).all()
    return int(total), [Unsure(r.probe_id, r.site, r.commitment, aware_utc(r.answered_at), r.reason) for r in rows]


def graded_reply_kinds(config: Config) -> dict[str, set[str]]:
    """channel → the answer kinds a quality commitment grades (those that have a grading sheet)."""
    kinds: dict[str, set[str]] = {}
    for commitment in quality_commitments(config).values():
        kinds.setdefault(commitment.channel, set()).update(commitment.answer_kinds)
    return kinds


async def grading_page(store: Store, config: Config, status: str | None, *, site: str | None = None,
                       start: datetime | None = None, end: datetime | None = None, after: Position | None = None,
                       limit: int = 100) -> tuple[list[GradedAnswer], Position | None]:
    """Graded answers in (planned_at, id) order after `after`, `status` ∈ to_review | confirmed | None (all)."""
    cids = list(quality_commitments(config))
    if not cids:
        return [], None
    answered = select(Verdict.probe_id).where(Verdict.probe_id == Probe.id, Verdict.commitment.in_(cids),
                                              Verdict.answered_at.is_not(None))
    conditions: list[Any] = [exists(answered)]
    if site is not None:
        conditions.append(Probe.site == site)
    if start is not None:
        conditions.append(Probe.planned_at >= start)
    if end is not None:
        conditions.append(Probe.planned_at < end)
    found: list[GradedAnswer] = []
    scanned = 0
    while scanned < SCAN_LIMIT:
        page_conditions = list(conditions)
        if after is not None:
            page_conditions.append(tuple_(Probe.planned_at, Probe.id) > tuple_(*after))
        size = min(max(limit, 200), SCAN_LIMIT - scanned)
        rows = await store.probes_where(*page_conditions, limit=size + 1)
        more = len(rows) > size
        rows = rows[:size]
        scanned += len(rows)
        for graded in await graded_answers(store, config, rows):
            if status is None or graded.status == status:
                found.append(graded)
                if len(found) == limit:
                    position = (graded.probe.planned_at, graded.probe.id)
                    last = (rows[-1].planned_at, rows[-1].id)
                    return found, position if (more or position != last) else None
        if not rows or not more:
            return found, None
        after = (rows[-1].planned_at, rows[-1].id)
    return found, after
