"""Compliance of a site with a commitment over a period (pure).

`ratio` = met / (met + missed): void probes (our own failures), pending ones
and those in `review` (waiting for an auditor) are left out.  The Wilson
score interval gives the bounds (95 % unless `compliance.confidence` says
otherwise), which stay honest for small samples and ratios near 0 or 1.  `status` is `compliant` / `non_compliant`, or
`insufficient_data` when there are fewer decided samples than `min_samples`
and the interval straddles the target (so more samples could still change
the answer).

Sample sizes (`needed`, `qualimon plan-size`).  A result is *concluded* when
the interval leaves the target: compliant when its low bound reaches the
target, non-compliant when its high bound is below it.  `to_conclude` counts
the further decided probes that would conclude each way if they all went
that way (all met, all missed); `needed` is the count in the direction the
results so far point (compliant when the ratio is at or above the target or
nothing is decided yet), 0 once concluded, None when no number of probes can
conclude (a target of 100 % can never be proved).  Wilson rather than
Clopper–Pearson: it is the interval the compliance rows already show (so a
row and its `needed` agree), it has a closed form, and its coverage stays
near the nominal level where Clopper–Pearson's exact interval is
conservative and would ask for more probes than a decision needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist

Z95 = 1.959963984540054
MAX_NEEDED = 100_000  # beyond this many probes a decision is out of reach for any monitoring budget


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
    needed: int | None = None  # decided probes still needed to conclude (see the module's docstring)
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
                "ratio": self.ratio, "ci_low": self.ci_low, "ci_high": self.ci_high, "target": self.target,
                "status": self.status, "needed": self.needed}


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
               min_samples: int, confidence: float = 0.95) -> Compliance:
    met, missed = counts.get("met", 0), counts.get("missed", 0)
    z = z_for(confidence)
    bounds = wilson(met, met + missed, z)
    low, high = bounds if bounds else (None, None)
    return Compliance(site, commitment, met, missed, counts.get("pending", 0), counts.get("void", 0), target,
                      low, high, _status(met, met + missed, bounds, target, min_samples),
                      needed(met, met + missed, target, z), counts.get("review", 0))


@cache
def z_for(confidence: float) -> float:
    """The normal quantile of a two-sided interval at `confidence` (1.96 at 0.95)."""
    return Z95 if confidence == 0.95 else NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class ToConclude:
    compliant: int | None        # further probes, all met, that would conclude compliant (None: impossible)
    non_compliant: int | None    # further probes, all missed, that would conclude non-compliant
    needed: int | None           # in the direction the results point; 0 once concluded


def to_conclude(met: int, n: int, target: float, z: float = Z95) -> ToConclude:
    """How many more decided probes conclude each way, given `met` of `n` so far."""
    compliant = _fewest(lambda k: _low(met + k, n + k, z) >= target)
    non_compliant = _fewest(lambda k: _high(met, n + k, z) < target)
    if compliant == 0 or non_compliant == 0:
        return ToConclude(compliant, non_compliant, 0)
    leading = non_compliant if n and met / n < target else compliant
    return ToConclude(compliant, non_compliant, leading)


def needed(met: int, n: int, target: float, z: float = Z95) -> int | None:
    return to_conclude(met, n, target, z).needed


def _low(successes: int, n: int, z: float) -> float:
    bounds = wilson(successes, n, z)
    return bounds[0] if bounds else 0.0


def _high(successes: int, n: int, z: float) -> float:
    bounds = wilson(successes, n, z)
    return bounds[1] if bounds else 1.0


def _fewest(concluded: Callable[[int], bool]) -> int | None:
    """The least k in [0, MAX_NEEDED] with `concluded(k)` (monotone in k), None when there is none."""
    if concluded(0):
        return 0
    if not concluded(MAX_NEEDED):
        return None
    low, high = 0, 1
    while not concluded(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if concluded(middle):
            high = middle
        else:
            low = middle
    return high


def _status(met: int, n: int, bounds: tuple[float, float] | None, target: float, min_samples: int) -> str:
    if bounds is None:
        return "insufficient_data"
    straddles = bounds[0] < target <= bounds[1]
    if n < min_samples and straddles:
        return "insufficient_data"
    return "compliant" if met / n >= target else "non_compliant"
