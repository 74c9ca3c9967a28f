"""What the audit report reads from the store, in bounded memory.

- Compliance comes from `compliance_rows` only, so the report shows exactly
  the figures of the API, `qualimon status` and the status page.
- Delay histograms are filled by streaming the period's decided verdicts
  once (fixed bins, see `monitor.web.charts`), whatever the history's size.
- Missed probes are read per site, at most `limit` of them; the page says
  how many more there are and points to `qualimon export` for the rest.
- Evidence is streamed row by row to files (see `evidence.py`) for the
  probes listed, never held all at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from monitor.compliance import Compliance
from monitor.config.models import Config
from monitor.grading import GradedAnswer, graded_answers, quality_commitments
from monitor.store.schema import Probe, Verdict
from monitor.store.store import Store, in_period
from monitor.web.charts import DelayHistogram, Measure, measure_for
from monitor.web.results import Reply, pick_reply, replies_for

STREAM_BATCH = 5000


@dataclass
class Histograms:
    """Delay histograms per (site, commitment) and pooled per commitment over the sites reported."""

    measures: dict[str, Measure]
    by_site: dict[tuple[str, str], DelayHistogram] = field(default_factory=dict)
    network: dict[str, DelayHistogram] = field(default_factory=dict)

    def get(self, site: str, commitment: str) -> DelayHistogram:
        return self.by_site.get((site, commitment)) or self.empty(commitment)

    def empty(self, commitment: str) -> DelayHistogram:
        return self.measures[commitment].histogram()

    def add(self, site: str, commitment: str, verdict: str, delay: float | None) -> None:
        if (site, commitment) not in self.by_site:
            self.by_site[(site, commitment)] = self.empty(commitment)
        if commitment not in self.network:
            self.network[commitment] = self.empty(commitment)
        self.by_site[(site, commitment)].add(delay, verdict)
        self.network[commitment].add(delay, verdict)


async def delay_histograms(store: Store, config: Config, start: datetime, end: datetime,
                           site: str | None = None) -> Histograms:
    hists = Histograms({cid: measure_for(c) for cid, c in config.commitments.items() if c.within is not None})
    query = (select(Verdict.site, Verdict.commitment, Verdict.verdict, Verdict.delay_seconds,
                    Verdict.business_delay_seconds)
             .where(in_period(Verdict.started_at, start, end), Verdict.verdict.in_(("met", "missed"))))
    if site is not None:
        query = query.where(Verdict.site == site)
    async with store.read() as conn:
        result = await conn.stream(query.execution_options(yield_per=STREAM_BATCH))
        async for row in result:
            measure = hists.measures.get(row.commitment)
            if measure is None:  # a commitment removed from the config since: not reported
                continue
            delay = row.delay_seconds if measure.column == "delay_seconds" else row.business_delay_seconds
            hists.add(row.site, row.commitment, row.verdict, delay)
    return hists


@dataclass(frozen=True)
class MissedProbe:
    probe_id: str
    commitment: str
    channel: str
    started_at: datetime | None
    deadline: datetime | None
    answered_at: datetime | None
    delay_seconds: float | None
    late: bool
    reason: str | None
    reply: Reply | None


async def missed_probes(store: Store, site: str, start: datetime, end: datetime, limit: int) -> list[MissedProbe]:
    """The site's first `limit` missed verdicts of the period, in the order their clocks started."""
    query = (select(Verdict).where(Verdict.site == site, in_period(Verdict.started_at, start, end),
                                   Verdict.verdict == "missed")
             .order_by(Verdict.started_at, Verdict.probe_id, Verdict.commitment).limit(limit))
    async with store.read() as conn:
        rows = (await conn.execute(query)).all()
    replies = await replies_for(store, sorted({r.probe_id for r in rows}))
    return [MissedProbe(r.probe_id, r.commitment, r.channel, r.started_at, r.deadline, r.answered_at,
                        r.delay_seconds, r.late, r.reason, pick_reply(replies.get(r.probe_id, []), r.answered_at))
            for r in rows]


async def graded_for_site(store: Store, config: Config, site: str, start: datetime, end: datetime,
                          limit: int) -> tuple[list[GradedAnswer], int]:
    """The site's graded answers of the period (clock started in it), at most `limit`, and how many there are."""
    cids = list(quality_commitments(config))
    if not cids:
        return [], 0
    where = (Verdict.site == site, in_period(Verdict.started_at, start, end), Verdict.commitment.in_(cids),
             Verdict.answered_at.is_not(None))
    async with store.read() as conn:
        ids = list(dict.fromkeys(r.probe_id for r in (await conn.execute(
            select(Verdict.probe_id).where(*where).order_by(Verdict.started_at, Verdict.probe_id))).all()))
    probes = await store.probes_where(Probe.id.in_(ids[:limit])) if ids else []
    return await graded_answers(store, config, probes), len(ids)


def by_site(rows: list[Compliance]) -> dict[str, list[Compliance]]:
    grouped: dict[str, list[Compliance]] = defaultdict(list)
    for row in rows:
        grouped[row.site].append(row)
    return grouped
