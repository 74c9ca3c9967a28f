"""`qualimon plan-size`: how many more decided probes each site × commitment needs to conclude.

For the period asked (default: the current quarter, the period audits
conclude on) it reads the compliance rows (`status.compliance_rows`, the one
computation behind the API, the status page and the report) and, for each,
the further decided probes that would conclude compliant if they were all
met, non-compliant if they were all missed, and `needed`, the count in the
direction the results point (`monitor.compliance.to_conclude`: Wilson
interval at `compliance.confidence`).  With the site's monthly rate of the
commitment's channel it also says how many months of probing that is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.compliance import Compliance, ToConclude, to_conclude, z_for
from monitor.config.models import Config
from monitor.report.period import Period, parse_period
from monitor.status import compliance_rows
from monitor.store.store import Store


@dataclass(frozen=True)
class PlanSize:
    compliance: Compliance
    conclude: ToConclude
    per_month: int | None      # the site's planned probes per month for the commitment's channel; None: auto

    @property
    def months(self) -> float | None:
        """Months of probing at the planned rate before the result can conclude."""
        needed = self.conclude.needed
        if needed is None or not self.per_month:
            return None
        return needed / self.per_month

    def public(self) -> dict[str, Any]:
        c = self.compliance
        return {"site": c.site, "commitment": c.commitment, "n": c.n, "met": c.met, "ratio": c.ratio,
                "ci_low": c.ci_low, "ci_high": c.ci_high, "target": c.target, "status": c.status,
                "to_compliant": self.conclude.compliant, "to_non_compliant": self.conclude.non_compliant,
                "needed": self.conclude.needed, "per_month": self.per_month,
                "months": None if self.months is None else round(self.months, 1)}


def current_quarter(now: datetime, tz: str) -> Period:
    today = now.astimezone(ZoneInfo(tz)).date()
    return parse_period(f"{today.year}-Q{(today.month - 1) // 3 + 1}")


async def plan_size(store: Store, config: Config, period: Period) -> list[PlanSize]:
    start, end = period.bounds(config.timezone)
    z = z_for(config.compliance.confidence)
    rows = await compliance_rows(store, config, start, end)
    return [PlanSize(c, to_conclude(c.met, c.n, c.target, z), _per_month(config, c.site, c.commitment))
            for c in rows]


def _per_month(config: Config, site_id: str, commitment_id: str) -> int | None:
    commitment = config.commitments[commitment_id]
    section = config.site(site_id).section(commitment.channel)
    slots = config.channels[commitment.channel].plan(section) if section is not None else ()
    chosen = [s for s in slots if commitment.during in ("any", s.purpose)]
    if any(s.auto for s in chosen):
        return None
    return sum(s.per_month for s in chosen)


def render(rows: list[PlanSize], period: Period, confidence: float) -> str:
    header = ["site", "commitment", "n", "met", "ratio", "target", "status", "if all met", "if all missed",
              "needed", "per month", "months"]
    lines = [header]
    for row in rows:
        c = row.compliance
        lines.append([c.site, c.commitment, str(c.n), str(c.met), "-" if c.ratio is None else f"{c.ratio:.0%}",
                      f"{c.target:.0%}", c.status, _count(row.conclude.compliant), _count(row.conclude.non_compliant),
                      _count(row.conclude.needed), "auto" if row.per_month is None else str(row.per_month),
                      _months(row)])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    numeric = {2, 3, 4, 5, 7, 8, 9, 10, 11}
    out = [f"Probes still needed to conclude, {period.describe()}: Wilson interval at {confidence:.0%} "
           "against each target",
           "(if all met / if all missed: further decided probes that would conclude compliant / non-compliant; "
           "needed: in the direction the results point; 0: concluded; -: no number can)"]
    for line in lines:
        pairs = enumerate(zip(line, widths, strict=True))
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in pairs]
        out.append("  ".join(cells).rstrip())
    if not rows:
        out.append("(no site has probes configured)")
    return "\n".join(out)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _months(row: PlanSize) -> str:
    months = row.months
    if months is None:
        return "-"
    return "0" if months == 0 else f"{math.ceil(months * 10) / 10:g}"

