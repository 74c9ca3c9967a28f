"""Compliance of a site with a commitment over a period (pure).

`ratio` = met / (met + missed): void probes (our own failures), pending ones
and those in `review` (a held message awaits an auditor) are left out.  The
Wilson score interval gives the 95 % bounds, which
stay honest for small samples and ratios near 0 or 1.  `status` is
`compliant` / `non_compliant`, or `insufficient_data` when there are fewer
decided samples than `min_samples` and the interval straddles the target
(so more samples could still change the answer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Compliance:
    site: str
    commitment: str
    met: int
    missed: int
    pending: int
    void: int
    target: float
    ci_low: float | None
    ci_high: float | None
    status: str
    review: int = 0  # held for an auditor: counted like pending


    @property
    def n(self) -> int:
        return self.met + self.missed

    @property
    def ratio(self) -> float | None:
        return self.met / self.n if self.n else None

    def public(self) -> dict[str, object]:
        return {"site": self.site, "commitment": self.commitment, "n": self.n, "met": self.met,
                "missed": self.missed, "pending": self.pending, "review": self.review, "void": self.void,
                "ratio": self.ratio,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "target": self.target, "status": self.status}


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 or 1 the bound is exactly 0 or 1; floating point would give 1e-17 or 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def compliance(site: str, commitment: str, counts: Mapping[str, int], target: float,
               min_samples: int) -> Compliance:
    met, missed = counts.get("met", 0), counts.get("missed", 0)
    bounds = wilson(met, met + missed)
    low, high = bounds if bounds else (None, None)
    return Compliance(site, commitment, met, missed, counts.get("pending", 0), counts.get("void", 0), target,
                      low, high, _status(met, met + missed, bounds, target, min_samples), counts.get("review", 0))


def _status(met: int, n: int, bounds: tuple[float, float] | None, target: float, min_samples: int) -> str:
    if bounds is None:
        return "insufficient_data"
    straddles = bounds[0] < target <= bounds[1]
    if n < min_samples and straddles:
        return "insufficient_data"
    return "compliant" if met / n >= target else "non_compliant"
