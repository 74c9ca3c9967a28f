"""Figures derived from the database, computed in the background and kept in memory.

The refresh task of the service calls `compute_snapshot` every few seconds;
metrics (and the status page) read the last snapshot, so a scrape never waits
on the database and keeps showing the last known values when it is down.  In
a fleet one instance refreshes for all: the figures are the database's, so
they include what every instance did (the last sends too, see `last_sent`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from monitor.compliance import compliance
from monitor.config.models import Config
from monitor.metrics import DerivedSnapshot
from monitor.store.schema import Probe, Verdict, WatcherCursor
from monitor.store.store import Store, aware_utc
from monitor.verdicts import PENDING, REVIEW

#: The compliance windows the metrics export (`monitor.metrics.definitions.WINDOWS`).
WINDOWS = {"30d": timedelta(days=30)}
#: How far back the planned instants of the probes whose sends each refresh reads go: the sends of
#: the other instances of a fleet reach the watchdog this way, through the planned_at index instead
#: of a scan of every probe (~4,000 probes a day at 10,000 sites).  A probe sent more than this after
#: its planned instant (a dispatcher down for days) reaches the gauge at the next full read.
RECENT_SENDS = timedelta(days=2)


async def compute_snapshot(store: Store, config: Config, now: datetime, *,
                           with_last_sent: bool = True) -> DerivedSnapshot:
    """`with_last_sent`: read the last send of every site (a full scan, to restore the "no probe in
    7 days" watchdog after a restart); otherwise only those of probes planned in the last
    `RECENT_SENDS` (an index range), which is enough to keep it current (timestamps only rise)."""
    ratio: dict[tuple[str, str, str], float] = {}
    samples: dict[tuple[str, str, str, str], int] = {}
    for window, span in WINDOWS.items():
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for (site, cid, verdict), n in (await store.verdict_counts(now - span)).items():
            counts[(site, cid)][verdict] = n
            sample = (site, cid, window, PENDING if verdict == REVIEW else verdict)  # no per-site series for review
            samples[sample] = samples.get(sample, 0) + n
        for (site, cid), by_verdict in counts.items():
            commitment = config.commitments.get(cid)
            if commitment is None:
                continue
            result = compliance(site, cid, by_verdict, commitment.target_ratio, config.compliance.min_samples,
                                config.compliance.confidence)
            ratio[(site, cid, window)] = result.ratio or 0.0
    open_counts = await store.open_counts(now)
    return DerivedSnapshot(
        compliance_ratio=ratio,
        samples=samples,
        probes_open={key: n for key, (n, _) in open_counts.items()},
        probes_overdue=await overdue(store, now),
        oldest_open_probe_age_seconds={key: max(0.0, (now - oldest).total_seconds())
                                       for key, (_, oldest) in open_counts.items() if oldest is not None},
        last_probe_sent=await last_sent(store, None if with_last_sent else now - RECENT_SENDS),
        calllog_last_ingest=await last_ingest(store) if with_last_sent else {},
        **await review_figures(store),
    )


async def review_figures(store: Store) -> dict[str, Any]:
    """Messages awaiting an auditor per mailbox, and verdicts in review per commitment."""
    waiting = await store.awaiting_review()
    oldest: dict[tuple[str], float] = {}
    for (mailbox, _), (_, arrived) in waiting.items():
        oldest[(mailbox,)] = min(oldest.get((mailbox,), arrived.timestamp()), arrived.timestamp())
    async with store.read() as conn:
        rows = await conn.execute(select(Verdict.commitment, func.count()).where(Verdict.verdict == REVIEW)
                                  .group_by(Verdict.commitment))
        in_review = {(cid,): n for cid, n in rows}
    return {"awaiting_review": {key: n for key, (n, _) in waiting.items()}, "oldest_awaiting_review": oldest,
            "verdicts_in_review": in_review}


async def overdue(store: Store, now: datetime) -> dict[tuple[str, str], int]:
    """Past the deadline with no qualifying answer: already missed but still watched, or not yet swept."""
    counts = dict(await store.overdue_counts())
    async with store.read() as conn:
        rows = await conn.execute(
            select(Verdict.site, Verdict.commitment, func.count())
            .where(Verdict.verdict == "pending", Verdict.deadline <= now)
            .group_by(Verdict.site, Verdict.commitment))
        for site, cid, n in rows:
            counts[(site, cid)] = counts.get((site, cid), 0) + n
    return counts


async def last_ingest(store: Store) -> dict[str, datetime]:
    """Call-log source → when its cursor last moved (restores the freshness gauge after a restart)."""
    async with store.read() as conn:
        rows = await conn.execute(select(WatcherCursor.name, WatcherCursor.updated_at)
                                  .where(WatcherCursor.name.like("calllog:%")))
        return {name.removeprefix("calllog:"): at for name, at in rows}


async def last_sent(store: Store, planned_since: datetime | None = None) -> dict[tuple[str, str], datetime]:
    """(site, channel) → its last send; with `planned_since`, among the probes planned since then."""
    query = select(Probe.site, Probe.channel, func.max(Probe.sent_at)).where(Probe.sent_at.is_not(None))
    if planned_since is not None:
        query = query.where(Probe.planned_at >= planned_since)
    async with store.read() as conn:
        rows = await conn.execute(query.group_by(Probe.site, Probe.channel))
        return {(site, channel): aware_utc(at) for site, channel, at in rows if at is not None}
