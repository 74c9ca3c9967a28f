"""Planner benchmark: 10,000 sites × 12 probes/month (4 emails + 8 calls), two months planned.

Measures the wall time and peak memory of one full planning pass on a fresh
SQLite database (and PostgreSQL when reachable), beside a naive baseline in
the same run: one transaction per bucket and no sharing of the eligible-time
computation between sites on the same calendar.

    .venv/bin/python bench/bench_planner.py [--sites 10000] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import tempfile
import time
import multiprocessing
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitor.calendar import calendars_from  # noqa: E402
from support import scratch_postgres  # noqa: E402
from monitor.clock import FakeClock  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.planner import Planner  # noqa: E402
from monitor.store import migrate  # noqa: E402
from monitor.store.store import Store  # noqa: E402

HEADER = """
database: {url}
calendars:
  offices: {{holidays: {{country: FR}}}}
  museum:
    opening_hours: {{tue-sun: ["10:00-12:30", "13:30-18:00"]}}
    holidays: {{country: FR}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
  phone.answer: {{channel: phone, within: {{rings: 5}}, during: open}}
mailboxes:
  mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: /tmp/unused}}
phone_lines:
  mystery: {{sip: {{proxy: "sip:trunk.example.net", from: "sip:+33199001000@trunk.example.net"}}}}
sites:
"""
SITE = ('  - {{id: site-{i}, name: "Site {i}", calendar: museum, office_calendar: offices, '
        'email: {{address: "accueil{i}@example.org", per_month: 4}}, '
        'phone: {{number: "+3319900{n:04d}", per_month: 8}}}}\n')


def config_text(url: str, sites: int) -> str:
    return HEADER.format(url=url) + "".join(SITE.format(i=i, n=i % 10000) for i in range(sites))


class NaivePlanner(Planner):
    """No interval cache: every site recomputes its calendar windows."""

    def intervals(self, bucket, month):  # type: ignore[no-untyped-def]
        self._interval_cache.clear()
        return super().intervals(bucket, month)


async def plan_once(url: str, sites: int, naive: bool) -> tuple[float, float, float, int]:
    """Seconds, peak RSS of the process (MiB), how much planning added to it (MiB), probes added."""
    await asyncio.to_thread(migrate.upgrade, url)
    config = parse_config(config_text(url, sites), environ={})
    store = Store.open(url)
    clock = FakeClock(datetime(2026, 6, 1, tzinfo=ZoneInfo("Europe/Paris")))
    cls = NaivePlanner if naive else Planner
    planner = cls(store, config, calendars_from(config), clock, rng=random.Random(1))
    planner.chunk = 1 if naive else planner.chunk
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    added = await planner.plan()
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await store.close()
    return elapsed, peak / 1024, (peak - rss_before) / 1024, added


def _child(url: str, sites: int, naive: bool, out: "multiprocessing.Queue[tuple[float, float, float, int]]") -> None:
    out.put(asyncio.run(plan_once(url, sites, naive)))


async def one_run(url: str, sites: int, naive: bool) -> tuple[float, float, float, int]:
    """Each run in its own process, so its peak memory is its own."""
    queue: multiprocessing.Queue[tuple[float, float, float, int]] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_child, args=(url, sites, naive, queue))
    child.start()
    result = await asyncio.to_thread(queue.get)
    child.join()
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--postgres", action="store_true", help="also run on the local PostgreSQL")
    args = parser.parse_args()
    print(f"planner: {args.sites} sites x 12 probes/month, June and July 2026")
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for naive in (False, True):
            url = f"sqlite+aiosqlite:///{tmp}/{'naive' if naive else 'fast'}.db"
            results[naive] = await one_run(url, args.sites, naive)
            label = "naive baseline" if naive else "qualimon"
            elapsed, peak, growth, added = results[naive]
            print(f"  sqlite   {label:15s} {elapsed:7.2f} s  peak RSS {peak:6.0f} MiB (+{growth:.0f} planning)  "
                  f"{added} probes")
        print(f"  sqlite  speed-up {results[True][0] / results[False][0]:.1f}x")
        if args.postgres:
            for naive in (False, True):
                async with scratch_postgres() as url:
                    if url is None:
                        print("  postgresql: skipped")
                        break
                    elapsed, peak, growth, added = await one_run(url, args.sites, naive)
                label = "naive baseline" if naive else "qualimon"
                print(f"  postgres {label:15s} {elapsed:7.2f} s  peak RSS {peak:6.0f} MiB (+{growth:.0f} planning)  "
                      f"{added} probes")


if __name__ == "__main__":
    asyncio.run(main())
