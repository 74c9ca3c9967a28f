"""`per_month: auto` against uniform planning: share of sites decided after a quarter, same budget.

`.venv/bin/python bench/bench_allocation.py [--sites 600] [--per-site 10] [--seeds 10]` simulates
a network (tests/support/allocation.py: true rates drawn from a realistic mix around a 90 % target),
plans each month with the planner's `allocate` from the results so far, or gives every site the same
share, and counts the sites whose Wilson interval has left the target after three months.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.allocation import Network, decided_share


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=600)
    parser.add_argument("--per-site", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    network = Network(sites=args.sites, per_site=args.per_site)
    rows = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        uniform = decided_share(network, "uniform", seed)
        auto = decided_share(network, "auto", seed)
        rows.append((seed, uniform, auto, time.perf_counter() - started))
        print(f"seed {seed}: uniform {uniform:.1%}  auto {auto:.1%}  ({rows[-1][3]:.1f} s)", flush=True)
    uniform_mean = statistics.mean(r[1] for r in rows)
    auto_mean = statistics.mean(r[2] for r in rows)
    print(f"\n{network.sites} sites, {network.per_site} probes/site/month ({network.budget} a month), "
          f"{network.months} months, target {network.target:.0%}, max_per_month {network.cap}, "
          f"min_per_month {network.minimum}")
    print("| planning | sites decided after a quarter (mean of seeds) | min | max |")
    print("|---|---:|---:|---:|")
    print(f"| uniform ({network.per_site}/site/month) | {uniform_mean:.1%} | {min(r[1] for r in rows):.1%} | "
          f"{max(r[1] for r in rows):.1%} |")
    print(f"| per_month: auto | {auto_mean:.1%} | {min(r[2] for r in rows):.1%} | {max(r[2] for r in rows):.1%} |")
    print(f"| **ratio** | **{auto_mean / uniform_mean:.2f}×** | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
