"""Deadline computation speed: `working_days: 5` over random starts in 2026-2027.

Compares `BusinessCalendar.working_days_deadline` (per-year working-day
ordinals + bisect) with a naive day-by-day walk in the same run, checks they
agree, and prints calls/second and the ratio.  Run:

    .venv/bin/python bench/bench_deadline.py [--calls N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time as clock
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.calendar import BusinessCalendar  # noqa: E402
from monitor.config.models import WEEKDAYS, CalendarConfig, parse_closure  # noqa: E402

TZ = "Europe/Paris"
CONFIG = CalendarConfig(closures=("2026-12-24", "12-31"))


def naive_deadline(config: CalendarConfig, tz: str) -> Callable[[datetime, int], datetime]:
    """Day-by-day reference; the holidays object caches its years, as a careful naive version would."""
    zone = ZoneInfo(tz)
    source = config.holidays
    public = holidays.country_holidays(source.country, subdiv=source.subdivision) if source else {}
    closures = [parse_closure(c) for c in config.closures]
    weekdays = {WEEKDAYS.index(d) for d in config.working_days}

    def closed(day: date) -> bool:
        return any(c[0] <= day <= c[1] if isinstance(c[0], date) else (day.month, day.day) == c for c in closures)

    def compute(start: datetime, n: int) -> datetime:
        day = start.astimezone(zone).date()
        while n:
            day += timedelta(days=1)
            if day.weekday() in weekdays and day not in public and not closed(day):
                n -= 1
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)

    return compute


def random_starts(count: int, seed: int = 2026) -> list[datetime]:
    rng = random.Random(seed)
    lo = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    hi = datetime(2028, 1, 1, tzinfo=UTC).timestamp()
    return [datetime.fromtimestamp(rng.uniform(lo, hi), UTC) for _ in range(count)]


def calls_per_second(compute: Callable[[datetime, int], datetime], starts: list[datetime]) -> float:
    began = clock.perf_counter()
    for start in starts:
        compute(start, 5)
    return len(starts) / (clock.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()

    fast = BusinessCalendar(CONFIG, TZ).working_days_deadline
    slow = naive_deadline(CONFIG, TZ)
    starts = random_starts(args.calls)
    # Warm both caches (years of working days, holiday years) and check agreement.
    for start in starts[:5000]:
        assert fast(start, 5) == slow(start, 5), start

    fast_rate = calls_per_second(fast, starts)
    slow_rate = calls_per_second(slow, starts)
    print(f"python {sys.version.split()[0]}, {len(starts)} random starts 2026-2027, working_days: 5, {TZ}")
    print(f"fast (bisect):   {fast_rate:>12,.0f} calls/s  ({1e6 / fast_rate:.2f} us/call)")
    print(f"naive (day walk): {slow_rate:>11,.0f} calls/s  ({1e6 / slow_rate:.2f} us/call)")
    print(f"ratio fast/naive: {fast_rate / slow_rate:.1f}x")


if __name__ == "__main__":
    main()
