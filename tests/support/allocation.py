"""A simulated quarter of a mystery-user network: `per_month: auto` against the same budget spread uniformly.

Each site has a true rate of meeting its commitment, drawn from a mix that
looks like a real network (many sites comfortably above a 90 % target, many
near it, a few far below).  Every month the planner's `allocate` shares the
budget from the results so far (`monitor.compliance.to_conclude`, as the
planner does from the compliance rows), the probes are drawn, and at the end
of the quarter a site is *decided* when its Wilson interval leaves the target.
Used by tests/monitor/test_planner_auto.py and bench/bench_allocation.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from monitor.compliance import to_conclude, wilson
from monitor.planner import Claim, allocate


@dataclass(frozen=True)
class Network:
    sites: int = 600
    per_site: int = 10        # the budget: probes per site per month
    months: int = 3           # a quarter
    target: float = 0.9
    cap: int = 40             # max_per_month of every auto site
    minimum: int = 1          # planner.auto.min_per_month

    @property
    def budget(self) -> int:
        return self.sites * self.per_site


def true_rates(network: Network, rng: random.Random) -> list[float]:
    rates = []
    for _ in range(network.sites):
        draw = rng.random()
        if draw < 0.30:
            rates.append(rng.uniform(0.97, 1.0))    # comfortably compliant
        elif draw < 0.60:
            rates.append(rng.uniform(0.90, 0.96))   # just above the target
        elif draw < 0.85:
            rates.append(rng.uniform(0.78, 0.90))   # just below
        else:
            rates.append(rng.uniform(0.40, 0.75))   # clearly failing
    return rates


def decided_share(network: Network, mode: str, seed: int) -> float:
    """Share of sites whose result is concluded after `network.months` months; mode is auto or uniform."""
    rng = random.Random(seed)
    rates = true_rates(network, rng)
    met = [0] * network.sites
    n = [0] * network.sites
    spent = 0
    for month in range(network.months):
        shares = _shares(network, mode, met, n, month)
        spent += sum(shares)
        for site, count in enumerate(shares):
            for _ in range(count):
                n[site] += 1
                met[site] += rng.random() < rates[site]
    assert spent <= network.budget * network.months  # the same budget, never more
    return sum(_concluded(met[i], n[i], network.target) for i in range(network.sites)) / network.sites


def _shares(network: Network, mode: str, met: list[int], n: list[int], month: int) -> list[int]:
    if mode == "uniform":
        return [network.per_site] * network.sites
    claims = [Claim(str(i), to_conclude(met[i], n[i], network.target).needed, network.cap)
              for i in range(network.sites)]
    given = allocate(network.budget, claims, network.minimum, network.months - month)
    return [given[str(i)] for i in range(network.sites)]


def _concluded(met: int, n: int, target: float) -> bool:
    bounds = wilson(met, n)
    return bounds is not None and (bounds[0] >= target or bounds[1] < target)
