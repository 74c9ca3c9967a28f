"""Sites × commitments at a glance: what `qualimon status` prints (and the status page shows).

Each row joins the compliance of the period (from `monitor.compliance`) with
what is still open now: probes awaiting an answer (`open`) and those whose
deadline passed with no answer yet (`overdue`, still watched for a late one).
On PostgreSQL it also says which instance of the fleet holds which
singleton task (`fleet_view`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.clock import SystemClock
from monitor.compliance import Compliance, compliance
from monitor.config.models import Config
from monitor.derived import overdue as overdue_counts
from monitor.fleet.tasks import fleet_tasks
from monitor.fleet.view import FleetView
from monitor.store.store import Store


@dataclass(frozen=True)
class StatusRow:
    compliance: Compliance
    open: int
    overdue: int

    def public(self) -> dict[str, Any]:
        return {**self.compliance.public(), "open": self.open, "overdue": self.overdue}


def site_commitments(config: Config) -> list[tuple[str, str]]:
    """Every (site, commitment) pair that can have probes, in config order."""
    pairs = []
    for site in config.sites:
        channels = config.site_channels(site)
        pairs += [(site.id, cid) for cid, commitment in config.commitments.items() if commitment.channel in channels]
    return pairs


async def compliance_rows(store: Store, config: Config, start: datetime | None, end: datetime | None, *,
                          site: str | None = None, commitment: str | None = None) -> list[Compliance]:
    """Compliance of every (site, commitment) of the config over probes whose clock started in [start, end).

    The one computation behind the API, `qualimon status`, the report and the status page."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for (s, cid, verdict), n in (await store.verdict_counts(start, end, site=site, commitment=commitment)).items():
        counts[(s, cid)][verdict] = n
    rows = []
    for s, cid in site_commitments(config):
        if (site is None or s == site) and (commitment is None or cid == commitment):
            target = config.commitments[cid].target_ratio
            rows.append(compliance(s, cid, counts[(s, cid)], target, config.compliance.min_samples,
                                   config.compliance.confidence))
    return rows


async def status_rows(store: Store, config: Config, days: int = 30, now: datetime | None = None) -> list[StatusRow]:
    now = now or SystemClock().now()
    overdue = await overdue_counts(store, now)
    return [StatusRow(c, c.pending + c.review, overdue.get((c.site, c.commitment), 0))
            for c in await compliance_rows(store, config, now - timedelta(days=days), None)]


def render_table(rows: list[StatusRow], days: int) -> str:
    header = ["site", "commitment", "n", "met", "missed", "void", "review", "ratio", "interval", "target", "status",
              "needed", "open", "overdue"]
    lines = [header]
    for row in rows:
        c = row.compliance
        ratio = f"{c.ratio:.0%}" if c.ratio is not None else "-"
        ci = f"{c.ci_low:.0%}–{c.ci_high:.0%}" if c.ci_low is not None else "-"
        lines.append([c.site, c.commitment, str(c.n), str(c.met), str(c.missed), str(c.void), str(c.review), ratio, ci,
                      f"{c.target:.0%}", c.status, "-" if c.needed is None else str(c.needed), str(row.open),
                      str(row.overdue)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 6, 7, 9, 11, 12, 13}
    out = [f"Compliance over the last {days} days (void probes excluded from ratios)"]
    for line in lines:
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
    if not rows:
        out.append("(no site has probes configured)")
    return "\n".join(out)


async def fleet_view(store: Store, config: Config) -> FleetView:
    """Who holds which task now, seen from outside the fleet; on SQLite, nobody else can be running."""
    if not store.postgres:
        return FleetView("", "single", instances=0)
    from monitor.fleet.postgres import expected, read_view

    async with store.read() as conn:
        raw = await conn.get_raw_connection()
        view = await read_view(raw.driver_connection, failover_seconds=config.fleet.failover_seconds)
    return expected(fleet_tasks(config), view)
