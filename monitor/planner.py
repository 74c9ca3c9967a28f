"""The planner: when each site gets its mystery emails and calls.

For every site, channel and month (the current one and `months_ahead` more)
it draws `per_month` instants at random, spread over the month (one per
equal share of the eligible time, so they never bunch up), and stores them
as `planned` probes:

- emails at times a person would write (`planner.email_window`, any day);
- calls inside the site's opening hours (`purpose: open`), and
  `out_of_hours_per_month` calls outside them, within
  `planner.out_of_hours_window` (evenings and closed days; `purpose: closed`).

Planning is idempotent: the `plans` table remembers the `per_month` each
bucket was planned with, so re-running (or restarting) changes nothing.
When a bucket is first planned mid-month, or its `per_month` changes, only
the rest of the month is planned, in proportion to the eligible time left;
probes already claimed or sent are never touched, surplus future ones are
cancelled (an event says why), and nothing is ever planned in the past.

`per_month: auto` (with `max_per_month`).  The sites that ask for it share
`planner.auto.budget.<channel>` probes a month, allocated once, when the
month is first planned (an auto site is never planned ahead: its next month
depends on the results of this one), by `allocate`:

1. every auto site gets `planner.auto.min_per_month` (capped by its
   `max_per_month`), decided or not, so no site goes unwatched;
2. each site's *need* is the decided probes still needed to conclude its
   commitments over `planner.auto.period` (the largest `needed` of the
   commitments the channel's probes feed, less the probes already waiting
   for a verdict; 0 when all are concluded, none when none can be);
3. sites that can still conclude within the period at their maximum rate
   get, in the order of the smallest need first, their need spread over the
   months left in the period (need ÷ months left, rounded up), up to their
   `max_per_month`, while the budget lasts;
4. what is left goes one probe at a time, round robin, to the undecided
   sites (smallest need first), then to every site, up to each maximum.

So sites near their target, which a few more probes can decide, get more;
sites far above or below it are decided after a few probes and keep the
minimum; sites so close to the target that the period cannot decide them
only get what is left.  tests/monitor/test_planner_auto.py simulates a
quarter of a 600-site network: with the same budget, `auto` decides about
twice as many sites as the same probes spread uniformly.
"""

from __future__ import annotations

import logging
import math
import random
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from zoneinfo import ZoneInfo

from monitor.calendar import BusinessCalendar
from monitor.clock import Clock
from monitor.compliance import Compliance
from monitor.config.models import Config, Site, parse_slot
from monitor.report.period import Period, parse_period
from monitor.status import compliance_rows
from monitor.store.records import CANCELLED, PLANNED, NewProbe
from monitor.store.store import Store

log = logging.getLogger("qualimon.planner")

Interval = tuple[datetime, datetime]
LEAD = timedelta(minutes=1)  # never plan closer to now than this: the dispatcher must see it as future
SITES_PER_TRANSACTION = 200


@dataclass(frozen=True)
class Bucket:
    site: str
    channel: str
    purpose: str
    per_month: int
    calendar: str
    when: str = "window"   # PlanSlot.when: window | open | closed
    spaced: bool = False   # keep planner.min_gap_minutes between two probes of the site
    auto_max: int | None = None  # per_month: auto — allocated by `allocate`, at most this many

    @property
    def key(self) -> tuple[str, str, str]:
        return self.site, self.channel, self.purpose


# ---------------------------------------------------------------- pure parts


def buckets_of(config: Config, site: Site) -> Iterator[Bucket]:
    """Each channel of the site says how its probes are planned (ChannelSpec.plan)."""
    for channel in config.site_channels(site):
        calendar = config.calendar_id_for(site, channel)
        for slot in config.channels[channel].plan(site.section(channel)):
            yield Bucket(site.id, channel, slot.purpose, slot.per_month, calendar, slot.when, slot.spaced,
                         slot.auto_max)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def month_bounds(first: date, tz: ZoneInfo) -> Interval:
    start = datetime.combine(first, datetime.min.time(), tz).astimezone(timezone.utc)
    end = datetime.combine(next_month(first), datetime.min.time(), tz).astimezone(timezone.utc)
    return start, end


def length(intervals: Sequence[Interval]) -> float:
    return sum((b - a).total_seconds() for a, b in intervals)


def clip(intervals: Sequence[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(a, start), min(b, end)) for a, b in intervals if b > start and a < end]


class Timeline:
    """Eligible intervals laid end to end, so an offset into them maps to an instant by bisection."""

    def __init__(self, intervals: Sequence[Interval]):
        self.intervals = list(intervals)
        self.ends = list(accumulate((b - a).total_seconds() for a, b in self.intervals))
        self.total = self.ends[-1] if self.ends else 0.0

    def at(self, offset: float) -> datetime:
        i = min(bisect_right(self.ends, offset), len(self.intervals) - 1)
        before = self.ends[i - 1] if i else 0.0
        start, end = self.intervals[i]
        return min(start + timedelta(seconds=offset - before), end - timedelta(seconds=1))


def draw(timeline: Timeline | Sequence[Interval], count: int, rng: random.Random,
         avoid: Sequence[datetime] = (), min_gap: timedelta = timedelta(0)) -> list[datetime]:
    """`count` instants, one uniformly inside each of `count` equal shares of the eligible time."""
    if not isinstance(timeline, Timeline):
        timeline = Timeline(timeline)
    if count <= 0 or timeline.total <= 0:
        return []
    share = timeline.total / count
    chosen: list[datetime] = []
    for i in range(count):
        instant = timeline.at(share * (i + rng.random()))
        for _ in range(8 if min_gap else 0):  # a few redraws to keep calls apart, never an endless loop
            if all(abs(instant - other) >= min_gap for other in (*avoid, *chosen)):
                break
            instant = timeline.at(share * (i + rng.random()))
        chosen.append(instant.replace(microsecond=0))
    return sorted(chosen)


def prorated(per_month: int, month_time: float, time_left: float) -> int:
    """How many probes the rest of the month should get: its share of the eligible time."""
    if month_time <= 0:
        return 0
    return round(per_month * min(1.0, time_left / month_time))


# ---------------------------------------------------------------- per_month: auto


@dataclass(frozen=True)
class Claim:
    """One auto site's call on the budget."""

    site: str
    need: int | None   # decided probes still needed to conclude this period; 0: concluded; None: cannot
    cap: int           # its max_per_month


def allocate(budget: int, claims: Sequence[Claim], minimum: int, months_left: int) -> dict[str, int]:
    """Share `budget` probes of one month among `claims` by the rule in this module's docstring."""
    floor = {c.site: min(minimum, c.cap) for c in claims}
    if sum(floor.values()) > budget:  # not even the minimum for all: one each, in order, while it lasts
        return _round_robin(dict.fromkeys(floor, 0), sorted(claims, key=lambda c: c.site), budget, floor)
    given = dict(floor)
    left = budget - sum(given.values())
    months = max(1, months_left)
    reachable = sorted((c for c in claims if c.need and c.need <= c.cap * months), key=_by_need)
    for claim in reachable:
        extra = max(0, min(math.ceil(claim.need / months), claim.cap) - given[claim.site])  # type: ignore[operator]
        extra = min(extra, left)
        given[claim.site] += extra
        left -= extra
    undecided = sorted((c for c in claims if c.need != 0), key=_by_need)
    caps = {c.site: c.cap for c in claims}
    given = _round_robin(given, undecided, left, caps)
    return _round_robin(given, sorted(claims, key=lambda c: c.site), budget - sum(given.values()), caps)


def _by_need(claim: Claim) -> tuple[int, str]:
    return (claim.need if claim.need is not None else 1 << 62), claim.site


def _round_robin(given: dict[str, int], order: Sequence[Claim], left: int,
                 caps: Mapping[str, int]) -> dict[str, int]:
    while left > 0:
        moved = False
        for claim in order:
            if left > 0 and given[claim.site] < caps[claim.site]:
                given[claim.site] += 1
                left -= 1
                moved = True
        if not moved:
            break
    return given


def need_of(rows: Sequence[Compliance]) -> int | None:
    """A site's need from the compliance rows of the commitments its probes feed (see `allocate`)."""
    needs = [max(0, row.needed - row.pending) for row in rows if row.needed is not None]
    if not needs:
        return None if rows else 0
    return max(needs)


def period_of(kind: str, day: date) -> Period:
    """The month, quarter or year containing `day`."""
    if kind == "month":
        return parse_period(f"{day.year}-{day.month:02d}")
    if kind == "quarter":
        return parse_period(f"{day.year}-Q{(day.month - 1) // 3 + 1}")
    return parse_period(f"{day.year}")


def months_left(period: Period, month: date) -> int:
    """Months from `month` to the end of `period`, both included."""
    return (period.last.year - month.year) * 12 + period.last.month - month.month + 1


# ---------------------------------------------------------------- the planner


class Planner:
    def __init__(self, store: Store, config: Config, calendars: dict[str, BusinessCalendar], clock: Clock,
                 rng: random.Random | None = None):
        self.store = store
        self.config = config
        self.calendars = calendars
        self.clock = clock
        self.rng = rng or random.Random(config.planner.seed)
        self.email_window = parse_slot(config.planner.email_window)
        self.out_of_hours_window = parse_slot(config.planner.out_of_hours_window)
        self.min_gap = timedelta(minutes=config.planner.min_gap_minutes)
        self.chunk = SITES_PER_TRANSACTION
        self._interval_cache: dict[tuple[str, str, date], list[Interval]] = {}
        self._rest_cache: dict[tuple[int, datetime], tuple[Timeline, float]] = {}

    def months(self, now: datetime) -> list[date]:
        first = month_start(now.astimezone(ZoneInfo(self.config.timezone)).date())
        months = [first]
        for _ in range(self.config.planner.months_ahead):
            months.append(next_month(months[-1]))
        return months

    async def plan(self) -> int:
        """Bring every bucket of the current and coming months in line with the config; returns probes added."""
        now = self.clock.now()
        self._rest_cache.clear()  # keyed by `now`: only useful within one pass
        added = 0
        for month in self.months(now):
            added += await self._plan_month(month, now)
        return added

    async def _plan_month(self, month: date, now: datetime) -> int:
        label = month.strftime("%Y-%m")
        done = await self.store.plans(label)
        buckets = [b for site in self.config.sites for b in buckets_of(self.config, site)]
        if any(b.auto_max is not None for b in buckets):
            buckets = await self._settle_auto(buckets, month, done, now)
        todo = [b for b in buckets if done.get((b.site, b.channel, b.purpose)) != b.per_month]
        added = 0
        for i in range(0, len(todo), self.chunk):
            added += await self._plan_buckets(todo[i:i + self.chunk], month, label, now,
                                              first_time={k for k in done})
        if todo:
            log.info("planned %s: %d buckets updated, %d probes added", label, len(todo), added)
        return added

    async def _settle_auto(self, buckets: list[Bucket], month: date, done: Mapping[tuple[str, str, str], int],
                           now: datetime) -> list[Bucket]:
        """Auto buckets get the month's allocation: kept once made, made for those that have none yet;
        none of a month still to come (it is allocated when it begins, from the results by then)."""
        if month != self.months(now)[0]:
            return [b for b in buckets if b.auto_max is None]
        fresh = [b for b in buckets if b.auto_max is not None and b.key not in done]
        allocated = await self._allocate(fresh, done, month, now) if fresh else {}
        return [b if b.auto_max is None else replace(b, per_month=allocated.get(b.key, done.get(b.key, 0)))
                for b in buckets]

    async def _allocate(self, fresh: list[Bucket], done: Mapping[tuple[str, str, str], int], month: date,
                        now: datetime) -> dict[tuple[str, str, str], int]:
        settings = self.config.planner.auto
        period = period_of(settings.period, month)
        start, _ = period.bounds(self.config.timezone)
        rows: dict[tuple[str, str], Compliance] = {
            (c.site, c.commitment): c for c in await compliance_rows(self.store, self.config, start, now)}
        spent: dict[str, int] = defaultdict(int)
        for site in self.config.sites:  # what this month's earlier allocations already took
            for b in buckets_of(self.config, site):
                if b.auto_max is not None and b.key in done:
                    spent[b.channel] += done[b.key]
        allocated: dict[tuple[str, str, str], int] = {}
        for channel in sorted({b.channel for b in fresh}):
            mine = [b for b in fresh if b.channel == channel]
            claims = [Claim(b.site, need_of(self._fed(b, rows)), b.auto_max or 0) for b in mine]
            budget = max(0, settings.budget.get(channel, 0) - spent[channel])
            shares = allocate(budget, claims, settings.min_per_month, months_left(period, month))
            allocated |= {b.key: shares[b.site] for b in mine}
            log.info("auto allocation %s %s: %d sites share %d probes (%s)", month.strftime("%Y-%m"), channel,
                     len(mine), budget, period.label)
        return allocated

    def _fed(self, bucket: Bucket, rows: Mapping[tuple[str, str], Compliance]) -> list[Compliance]:
        """The compliance rows of the commitments this bucket's probes are judged on."""
        return [rows[(bucket.site, cid)] for cid, c in self.config.commitments_for(bucket.channel).items()
                if c.during in ("any", bucket.purpose) and (bucket.site, cid) in rows]

    async def _plan_buckets(self, buckets: list[Bucket], month: date, label: str, now: datetime,
                            first_time: set[tuple[str, str, str]]) -> int:
        changes = [(b, *await self._changes(b, month, label, now, known=(b.site, b.channel, b.purpose)
                                            in first_time)) for b in buckets]
        # One transaction and a handful of statements per chunk of sites: per-bucket statements
        # made planning 10,000 sites take minutes on SQLite.
        async with self.store.write() as tx:
            await tx.insert_probes([p for _, new, _ in changes for p in new], now)
            for bucket, _, cancel in changes:
                await tx.cancel_planned(cancel, now, f"per_month changed to {bucket.per_month}")
            await tx.set_plans(label, [(b.site, b.channel, b.purpose, b.per_month) for b in buckets], now)
        return sum(len(new) for _, new, _ in changes)

    async def _changes(self, bucket: Bucket, month: date, label: str, now: datetime,
                       known: bool) -> tuple[list[NewProbe], list[str]]:
        rest, month_time = self._rest(self.intervals(bucket, month), now)
        wanted = prorated(bucket.per_month, month_time, rest.total)
        start, end = month_bounds(month, self._tz(bucket))
        existing = await self.store.planned_slots(bucket.site, bucket.channel, bucket.purpose, start, end) \
            if known else []
        live = [p for p in existing if p.status != CANCELLED]
        future = [p for p in live if p.status == PLANNED and p.planned_at >= now + LEAD]
        if wanted < len(future):
            surplus = self.rng.sample(future, len(future) - wanted)
            return [], [p.id for p in surplus]
        instants = draw(rest, wanted - len(future), self.rng, avoid=[p.planned_at for p in live],
                        min_gap=self._gap(bucket))
        # The key numbers every probe ever planned in the bucket (cancelled ones too): two planners
        # racing on one database compute the same keys, and the unique index stops the second.
        serial = len(existing)
        new = [NewProbe(site=bucket.site, channel=bucket.channel, planned_at=instant, purpose=bucket.purpose,
                        plan_key=f"{bucket.site}/{bucket.channel}/{bucket.purpose}/{label}/{serial + i}")
               for i, instant in enumerate(instants)]
        return new, []

    def _rest(self, whole: list[Interval], now: datetime) -> tuple[Timeline, float]:
        """The eligible time left after `now` (and the month's total), shared by every site on one calendar."""
        key = (id(whole), now)
        if key not in self._rest_cache:
            rest = clip(whole, now + LEAD, whole[-1][1] if whole else now)
            self._rest_cache[key] = (Timeline(rest), length(whole))
        return self._rest_cache[key]

    def _gap(self, bucket: Bucket) -> timedelta:
        return self.min_gap if bucket.spaced else timedelta(0)

    def _tz(self, bucket: Bucket) -> ZoneInfo:
        return ZoneInfo(self.config.calendar_tz(bucket.calendar))

    def intervals(self, bucket: Bucket, month: date) -> list[Interval]:
        """Eligible time of a bucket over a whole month; shared by every site on the same calendar."""
        key = (bucket.calendar, bucket.when, month)
        if key not in self._interval_cache:
            start, end = month_bounds(month, self._tz(bucket))
            calendar = self.calendars[bucket.calendar]
            if bucket.when == "window":
                found = calendar.window_intervals(start, end, self.email_window, minus_open=False)
            elif bucket.when == "open":
                found = calendar.open_intervals(start, end)
            else:
                found = calendar.window_intervals(start, end, self.out_of_hours_window, minus_open=True)
            self._interval_cache[key] = list(found)
        return self._interval_cache[key]
