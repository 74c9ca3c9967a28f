"""Business calendar of a site: working days, opening hours and deadlines (docs/design.md §2).

Pure arithmetic, no I/O.  A `BusinessCalendar` answers "is this a working
day?", "is the site open now?", "when is this answer due?" and "how much
business time passed between sending and answering?" in the calendar's own
time zone, DST included.  Instants going in must be timezone-aware; instants
coming out are aware too (UTC for intervals, the calendar zone for deadlines).

Verdicts are recomputed over many probes, so each calendar year is
precomputed once (lazily) into sorted working-day ordinals, prefix sums of
their real lengths in seconds, and the UTC start of every local day; a
deadline or a business delay is then a couple of bisections.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from monitor.config.models import WEEKDAYS, CalendarConfig, Config, TimeSlot, Within, parse_closure

Interval = tuple[datetime, datetime]

# How far `next_opening` and business-hours deadlines look before giving up:
# a calendar closed for more than a year is treated as never opening.
SEARCH_DAYS = 400
# How many years a working-days deadline may span before we call the calendar
# empty (no working weekday, or everything closed).
MAX_YEARS = 50


@dataclass(frozen=True)
class _Year:
    """Precomputed facts about one calendar year."""

    first_ordinal: int  # ordinal of 1 January
    working: tuple[int, ...]  # sorted ordinals of the working days
    working_set: frozenset[int]
    worked_before: tuple[float, ...]  # worked_before[i]: real seconds in working[:i]
    day_starts: tuple[datetime, ...]  # UTC start of each local day, then of 1 January next year

    def start_of(self, ordinal: int) -> datetime:
        return self.day_starts[ordinal - self.first_ordinal]


class BusinessCalendar:
    """Working days and opening hours of one configured calendar, in one time zone."""

    def __init__(self, config: CalendarConfig, tz: str) -> None:
        self.config = config
        self.zone = ZoneInfo(tz)
        self._working_weekdays = frozenset(WEEKDAYS.index(d) for d in config.working_days)
        self._weekly: dict[int, tuple[TimeSlot, ...]] = config.weekly_slots()
        closures = [parse_closure(c) for c in config.closures]
        self._closed_ranges = [c for c in closures if isinstance(c[0], date)]
        self._closed_every_year = frozenset(c for c in closures if isinstance(c[0], int))
        self._holidays_by_year: dict[int, frozenset[date]] = {}
        self._years: dict[int, _Year] = {}
        self._slots_by_ordinal: dict[int, tuple[Interval, ...]] = {}

    def __repr__(self) -> str:
        return f"BusinessCalendar(working_days={self.config.working_days}, tz={self.zone.key!r})"

    # ------------------------------------------------------------------ days

    def local_day(self, instant: datetime) -> date:
        """The calendar-zone date on which `instant` falls."""
        return _aware(instant, "instant").astimezone(self.zone).date()

    def is_working_day(self, day: date) -> bool:
        _plain_date(day)
        return day.toordinal() in self._year(day.year).working_set

    def is_public_holiday(self, day: date) -> bool:
        return day in self._holidays(day.year)

    def is_closure(self, day: date) -> bool:
        if (day.month, day.day) in self._closed_every_year:
            return True
        return any(first <= day <= last for first, last in self._closed_ranges)

    def opens_on(self, day: date) -> bool:
        """Whether the opening hours apply on `day` (closures always close)."""
        if day.weekday() not in self._weekly or self.is_closure(day):
            return False
        return self.config.open_on_holidays or not self.is_public_holiday(day)

    def _is_working_uncached(self, day: date) -> bool:
        return day.weekday() in self._working_weekdays and not self.is_public_holiday(day) and not self.is_closure(day)

    def _holidays(self, year: int) -> frozenset[date]:
        cached = self._holidays_by_year.get(year)
        if cached is None:
            source = self.config.holidays
            if source is None:
                cached = frozenset()
            else:
                found = holidays_lib.country_holidays(source.country, subdiv=source.subdivision, years=year)
                cached = frozenset(found.keys())
            self._holidays_by_year[year] = cached
        return cached

    def _year(self, year: int) -> _Year:
        data = self._years.get(year)
        if data is None:
            data = self._years[year] = self._build_year(year)
        return data

    def _build_year(self, year: int) -> _Year:
        first = date(year, 1, 1).toordinal()
        last = date(year + 1, 1, 1).toordinal()  # exclusive
        starts = tuple(self.wall_to_utc(date.fromordinal(o), 0) for o in range(first, last + 1))
        working = tuple(o for o in range(first, last) if self._is_working_uncached(date.fromordinal(o)))
        worked_before = [0.0]
        for o in working:
            length = (starts[o + 1 - first] - starts[o - first]).total_seconds()
            worked_before.append(worked_before[-1] + length)
        return _Year(first, working, frozenset(working), tuple(worked_before), starts)

    def _day_start(self, ordinal: int) -> datetime:
        return self._year(date.fromordinal(ordinal).year).start_of(ordinal)

    # ---------------------------------------------------------- wall clock

    def wall_to_utc(self, day: date, minutes: int) -> datetime:
        """First instant at which the local clock reads `minutes` after midnight of `day` (1440 = 24:00).

        An ambiguous wall time (clock set back) is its first occurrence; a
        wall time skipped by a DST jump maps to the jump itself, which is
        when a site "opening at 02:30" on that night would actually open.
        """
        if minutes >= 1440:
            day, minutes = day + timedelta(days=minutes // 1440), minutes % 1440
        wall = datetime.combine(day, time(minutes // 60, minutes % 60))
        utc = wall.replace(tzinfo=self.zone).astimezone(UTC)
        if utc.astimezone(self.zone).replace(tzinfo=None) == wall:
            return utc
        return self._end_of_gap(utc)

    def _end_of_gap(self, later: datetime) -> datetime:
        # zoneinfo maps a skipped wall time past the jump; find the jump by
        # bisection on whole seconds (transitions are on whole seconds).
        after = later.astimezone(self.zone).utcoffset()
        hi = int(later.timestamp())
        lo = hi - 86400
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, UTC).astimezone(self.zone).utcoffset() == after:
                hi = mid
            else:
                lo = mid
        return datetime.fromtimestamp(hi, UTC)

    # -------------------------------------------------------- opening hours

    @property
    def has_opening_hours(self) -> bool:
        return bool(self._weekly)

    def opening_slots(self, day: date) -> list[Interval]:
        """Opening slots of the local `day`, as UTC instants; empty when closed."""
        _plain_date(day)
        return list(self._slots(day.toordinal()))

    def _slots(self, ordinal: int) -> tuple[Interval, ...]:
        cached = self._slots_by_ordinal.get(ordinal)
        if cached is None:
            cached = self._slots_by_ordinal[ordinal] = self._compute_slots(date.fromordinal(ordinal))
        return cached

    def _compute_slots(self, day: date) -> tuple[Interval, ...]:
        if not self.opens_on(day):
            return ()
        pairs = (self._slot_on(day, slot) for slot in self._weekly[day.weekday()])
        # A slot wholly inside a DST gap has no real duration: drop it.
        return tuple((start, end) for start, end in pairs if end > start)

    def _slot_on(self, day: date, slot: TimeSlot) -> Interval:
        return self.wall_to_utc(day, slot.start_minutes), self.wall_to_utc(day, slot.end_minutes)

    def is_open(self, instant: datetime) -> bool:
        utc = _utc(instant, "instant")
        ordinal = self.local_day(utc).toordinal()
        return any(start <= utc < end for start, end in self._slots(ordinal))

    def next_opening(self, instant: datetime) -> datetime | None:
        """`instant` itself when open, else the next slot start; None if closed for SEARCH_DAYS days."""
        utc = _utc(instant, "instant")
        first = self.local_day(utc).toordinal()
        for ordinal in range(first, first + SEARCH_DAYS):
            for start, end in self._slots(ordinal):
                if end > utc:
                    return max(start, utc).astimezone(self.zone)
        return None

    def open_intervals(self, start: datetime, end: datetime) -> list[Interval]:
        """Opening slots clipped to [start, end), in UTC, in order."""
        lo, hi = _utc(start, "start"), _utc(end, "end")
        result: list[Interval] = []
        for ordinal in self._ordinals_between(lo, hi):
            result.extend(_clip(self._slots(ordinal), lo, hi))
        return result

    def open_seconds_between(self, start: datetime, end: datetime) -> float:
        """Seconds inside opening slots between two instants; 0 if end <= start."""
        return sum((b - a).total_seconds() for a, b in self.open_intervals(start, end))

    def window_intervals(self, start: datetime, end: datetime, slot: TimeSlot, *, minus_open: bool) -> list[Interval]:
        """A daily local window (e.g. 08:00-20:00, every day) clipped to [start, end), in UTC.

        With `minus_open`, the opening slots are cut out of it: what remains
        is the time at which a caller would plausibly ring a closed site.
        """
        lo, hi = _utc(start, "start"), _utc(end, "end")
        result: list[Interval] = []
        for ordinal in self._ordinals_between(lo, hi):
            window = self._slot_on(date.fromordinal(ordinal), slot)
            pieces = _subtract(window, self._slots(ordinal)) if minus_open else [window]
            result.extend(_clip(pieces, lo, hi))
        return result

    def _ordinals_between(self, lo: datetime, hi: datetime) -> range:
        if hi <= lo:
            return range(0)
        return range(self.local_day(lo).toordinal(), self.local_day(hi).toordinal() + 1)

    # ------------------------------------------------------------- deadlines

    def working_days_deadline(self, start: datetime, n: int) -> datetime:
        """End (24:00 local) of the n-th working day strictly after the local day of `start`."""
        if n < 1:
            raise ValueError(f"working_days must be at least 1, got {n}")
        day = self.local_day(_aware(start, "start"))
        ordinal = day.toordinal()
        remaining = n
        for year in range(day.year, day.year + MAX_YEARS):
            data = self._year(year)
            i = bisect_right(data.working, ordinal)
            if i + remaining <= len(data.working):
                # The table of a year also holds the start of 1 January next year.
                return data.start_of(data.working[i + remaining - 1] + 1).astimezone(self.zone)
            remaining -= len(data.working) - i
        raise ValueError(f"{self!r} has fewer than {n} working days in the {MAX_YEARS} years after {day}")

    def business_hours_deadline(self, start: datetime, hours: float) -> datetime:
        """Instant at which `hours` of opening time have run since `start`."""
        if not self.has_opening_hours:
            raise ValueError("a business_hours deadline needs a calendar with opening_hours")
        if hours <= 0:
            raise ValueError(f"business hours must be positive, got {hours}")
        utc = _utc(start, "start")
        remaining = timedelta(hours=hours)
        ordinal = self.local_day(utc).toordinal()
        closed_days = 0
        while closed_days < SEARCH_DAYS:
            slots = [(max(a, utc), b) for a, b in self._slots(ordinal) if b > utc]
            closed_days = 0 if slots else closed_days + 1
            for a, b in slots:
                if b - a >= remaining:
                    return (a + remaining).astimezone(self.zone)
                remaining -= b - a
            ordinal += 1
        raise ValueError(f"{self!r} stays closed for {SEARCH_DAYS} days after {utc.isoformat()}")

    def business_delay(self, start: datetime, end: datetime) -> float:
        """Seconds elapsed inside working days (whole local days) between two instants; 0 if end <= start."""
        lo, hi = _utc(start, "start"), _utc(end, "end")
        if hi <= lo:
            return 0.0
        lo_year, lo_seconds = self._worked_in_year_before(lo)
        hi_year, hi_seconds = self._worked_in_year_before(hi)
        whole_years = sum(self._year(y).worked_before[-1] for y in range(lo_year, hi_year))
        return whole_years + hi_seconds - lo_seconds

    def _worked_in_year_before(self, utc: datetime) -> tuple[int, float]:
        """(local year, working seconds from its 1 January up to `utc`)."""
        day = self.local_day(utc)
        data = self._year(day.year)
        ordinal = day.toordinal()
        seconds = data.worked_before[bisect_left(data.working, ordinal)]
        if ordinal in data.working_set:
            seconds += (utc - data.start_of(ordinal)).total_seconds()
        return day.year, seconds


def deadline(within: Within, start: datetime, calendar: BusinessCalendar, ring_cadence_seconds: float = 5.0) -> datetime:
    """When an answer to something sent at `start` is due under `within`, in the calendar's zone."""
    if within.working_days is not None:
        return calendar.working_days_deadline(start, within.working_days)
    if within.business_hours is not None:
        return calendar.business_hours_deadline(start, within.business_hours)
    if within.seconds is not None:
        seconds = within.seconds
    elif within.rings is not None:
        seconds = within.rings * ring_cadence_seconds
    else:
        raise ValueError(f"unknown deadline unit {within.unit!r}")
    # Add in UTC: adding a timedelta to a zoneinfo datetime is wall-clock
    # arithmetic and would be an hour off across a DST change.
    return (_utc(start, "start") + timedelta(seconds=seconds)).astimezone(calendar.zone)


def calendars_from(config: Config) -> dict[str, BusinessCalendar]:
    """One calendar per configured name, each in its own (or the top-level) time zone."""
    return {name: BusinessCalendar(cal, config.calendar_tz(name)) for name, cal in config.calendars.items()}


# ---------------------------------------------------------------- helpers


def _aware(instant: datetime, name: str) -> datetime:
    if not isinstance(instant, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {instant.isoformat()}")
    return instant


def _utc(instant: datetime, name: str) -> datetime:
    # Everything is compared and added in UTC: aware datetimes sharing a
    # zoneinfo tzinfo compare and subtract by wall clock, ignoring DST.
    return _aware(instant, name).astimezone(UTC)


def _plain_date(day: date) -> None:
    # A datetime is a date too, but which local day it means is ambiguous.
    if isinstance(day, datetime) or not isinstance(day, date):
        raise TypeError(f"expected a date, got {type(day).__name__}; use local_day(instant) for an instant")


def _clip(intervals: list[Interval] | tuple[Interval, ...], lo: datetime, hi: datetime) -> list[Interval]:
    clipped = ((max(a, lo), min(b, hi)) for a, b in intervals)
    return [(a, b) for a, b in clipped if b > a]


def _subtract(window: Interval, holes: tuple[Interval, ...]) -> list[Interval]:
    """Parts of `window` outside the sorted, disjoint `holes`."""
    pieces: list[Interval] = []
    cursor, end = window
    for a, b in holes:
        if a > cursor:
            pieces.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        pieces.append((cursor, end))
    return [(a, b) for a, b in pieces if b > a]
