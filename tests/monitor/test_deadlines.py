"""deadline() for every unit, and properties of deadlines and business delays over random instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.calendar import BusinessCalendar, deadline
from monitor.config.models import WEEKDAYS, CalendarConfig, Within, parse_closure

PARIS = ZoneInfo("Europe/Paris")

CONFIGS = {
    "offices": CalendarConfig(closures=("2026-12-24", "2027-08-02..2027-08-13", "12-31")),
    "moselle": CalendarConfig(holidays={"country": "FR", "subdivision": "57"}),
    "six_days": CalendarConfig(working_days=("mon", "tue", "wed", "thu", "fri", "sat"), holidays=None),
    "museum": CalendarConfig(
        opening_hours={"tue-fri": ("10:00-12:30", "14:00-18:00"), "sat-sun": ("11:00-19:00",)},
        closures=("12-25",),
    ),
    "late_museum": CalendarConfig(opening_hours={"wed-sun": ("01:30-02:45", "18:00-24:00")}),
}
CALENDARS = {name: BusinessCalendar(cfg, "Europe/Paris") for name, cfg in CONFIGS.items()}
OPEN_CALENDARS = {name: cal for name, cal in CALENDARS.items() if cal.has_opening_hours}

# Random instants over 2025-2028, which covers both 2026 DST changes.
instants = st.datetimes(datetime(2025, 1, 1), datetime(2028, 6, 30), timezones=st.just(UTC))
calendars = st.sampled_from(sorted(CALENDARS))
open_calendars = st.sampled_from(sorted(OPEN_CALENDARS))
PROPERTY = settings(max_examples=150, deadline=None)


def paris(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=PARIS)


def naive_working_days_deadline(config: CalendarConfig, tz: str, start: datetime, n: int) -> datetime:
    """Reference: walk day by day, asking the holidays package about each day."""
    zone = ZoneInfo(tz)
    source = config.holidays
    public = holidays.country_holidays(source.country, subdiv=source.subdivision) if source else {}
    closures = [parse_closure(c) for c in config.closures]
    weekdays = {WEEKDAYS.index(d) for d in config.working_days}

    def closed(day: date) -> bool:
        return any(c[0] <= day <= c[1] if isinstance(c[0], date) else (day.month, day.day) == c for c in closures)

    day = start.astimezone(zone).date()
    while n:
        day += timedelta(days=1)
        if day.weekday() in weekdays and day not in public and not closed(day):
            n -= 1
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)


# ---------------------------------------------------------------- deadline()


def test_it_dispatches_working_days_to_the_calendar() -> None:
    due = deadline(Within(working_days=5), datetime.fromisoformat("2026-04-30T10:00+02:00"), CALENDARS["offices"])
    assert due.isoformat() == "2026-05-12T00:00:00+02:00"


def test_it_dispatches_business_hours_to_the_calendar() -> None:
    due = deadline(Within(business_hours=3), paris(2026, 6, 9, 11), CALENDARS["museum"])
    assert due == paris(2026, 6, 9, 15, 30)


def test_it_adds_plain_seconds_in_real_time_across_the_spring_jump() -> None:
    due = deadline(Within(seconds=120), datetime.fromisoformat("2026-03-29T01:59:00+01:00"), CALENDARS["offices"])
    assert due.isoformat() == "2026-03-29T03:01:00+02:00"


def test_it_adds_plain_seconds_in_real_time_when_the_start_is_in_the_calendar_zone() -> None:
    # Wall-clock arithmetic on a zoneinfo datetime would give 03:30+01:00 here.
    due = deadline(Within(seconds=3600), paris(2026, 10, 25, 2, 30, 0), CALENDARS["offices"])
    assert due.isoformat() == "2026-10-25T02:30:00+01:00"


def test_it_turns_rings_into_seconds_at_the_ring_cadence() -> None:
    start = datetime(2026, 6, 9, 10, tzinfo=UTC)
    assert deadline(Within(rings=5), start, CALENDARS["offices"]) == start + timedelta(seconds=25)
    assert deadline(Within(rings=5), start, CALENDARS["offices"], ring_cadence_seconds=6) == start + timedelta(seconds=30)


def test_it_expresses_a_plain_deadline_in_the_calendar_zone() -> None:
    due = deadline(Within(seconds=25), datetime(2026, 6, 9, 10, tzinfo=UTC), CALENDARS["offices"])
    assert due.isoformat() == "2026-06-09T12:00:25+02:00"


def test_it_refuses_a_naive_start_for_plain_units() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        deadline(Within(seconds=25), datetime(2026, 6, 9, 10), CALENDARS["offices"])


# ---------------------------------------------------------------- properties


@PROPERTY
@given(name=calendars, a=instants, b=instants, n=st.integers(1, 30))
def test_it_never_moves_a_working_days_deadline_earlier_for_a_later_start(name: str, a: datetime, b: datetime, n: int) -> None:
    a, b = sorted((a, b))
    cal = CALENDARS[name]
    assert cal.working_days_deadline(a, n) <= cal.working_days_deadline(b, n)


@PROPERTY
@given(name=open_calendars, a=instants, b=instants, hours=st.floats(0.01, 200))
def test_it_never_moves_a_business_hours_deadline_earlier_for_a_later_start(name: str, a: datetime, b: datetime, hours: float) -> None:
    a, b = sorted((a, b))
    cal = CALENDARS[name]
    assert cal.business_hours_deadline(a, hours) <= cal.business_hours_deadline(b, hours)


@PROPERTY
@given(name=calendars, start=instants, n=st.integers(1, 30))
def test_it_ends_a_working_days_deadline_at_the_midnight_after_a_working_day(name: str, start: datetime, n: int) -> None:
    cal = CALENDARS[name]
    due = cal.working_days_deadline(start, n)
    assert due.timetz().replace(tzinfo=None) == time(0, 0)
    assert cal.is_working_day(cal.local_day(due - timedelta(microseconds=1)))
    assert cal.local_day(due) >= cal.local_day(start) + timedelta(days=2)


@PROPERTY
@given(name=calendars, start=instants, n=st.integers(1, 30))
def test_it_agrees_with_a_naive_day_by_day_walk(name: str, start: datetime, n: int) -> None:
    fast = CALENDARS[name].working_days_deadline(start, n)
    slow = naive_working_days_deadline(CONFIGS[name], "Europe/Paris", start, n)
    assert fast.astimezone(UTC) == slow.astimezone(UTC)
    assert fast.isoformat() == slow.isoformat()


@PROPERTY
@given(name=calendars, a=instants, b=instants, c=instants)
def test_it_adds_business_delays_up(name: str, a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    cal = CALENDARS[name]
    whole = cal.business_delay(a, c)
    assert whole == pytest.approx(cal.business_delay(a, b) + cal.business_delay(b, c), abs=1e-6)
    assert 0 <= whole <= (c - a).total_seconds() + 1e-6


@PROPERTY
@given(name=calendars, start=instants, n=st.integers(1, 10))
def test_it_counts_exactly_n_working_days_after_the_start_day(name: str, start: datetime, n: int) -> None:
    cal = CALENDARS[name]
    day_after = cal.wall_to_utc(cal.local_day(start) + timedelta(days=1), 0)
    due = cal.working_days_deadline(start, n)
    days = [d for d in _local_days(cal.local_day(day_after), cal.local_day(due)) if cal.is_working_day(d)]
    assert len(days) == n
    seconds = sum((cal.wall_to_utc(d, 1440) - cal.wall_to_utc(d, 0)).total_seconds() for d in days)
    assert cal.business_delay(day_after, due) == pytest.approx(seconds, abs=1e-6)


@PROPERTY
@given(name=open_calendars, start=instants, hours=st.floats(0.01, 200))
def test_it_lands_a_business_hours_deadline_inside_or_at_the_end_of_a_slot(name: str, start: datetime, hours: float) -> None:
    cal = CALENDARS[name]
    due = cal.business_hours_deadline(start, hours)
    day = cal.local_day(due)
    slots = cal.opening_slots(day - timedelta(days=1)) + cal.opening_slots(day)
    assert any(a < due <= b for a, b in slots)
    assert cal.open_seconds_between(start, due) == pytest.approx(hours * 3600, abs=1e-3)


@PROPERTY
@given(name=open_calendars, instant=instants)
def test_it_finds_a_next_opening_that_is_open_and_not_before_the_instant(name: str, instant: datetime) -> None:
    cal = CALENDARS[name]
    found = cal.next_opening(instant)
    assert found is not None and found >= instant and cal.is_open(found)
    assert cal.open_seconds_between(instant, found) == 0


def _local_days(first: date, last_exclusive: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last_exclusive - first).days)]
