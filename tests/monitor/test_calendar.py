"""Business calendar: working days, opening hours, deadlines and delays in Europe/Paris."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from monitor.calendar import BusinessCalendar, calendars_from
from monitor.config.models import CalendarConfig, Config, parse_slot

PARIS = ZoneInfo("Europe/Paris")
HOUR = 3600.0


def calendar(**settings: object) -> BusinessCalendar:
    return BusinessCalendar(CalendarConfig(**settings), "Europe/Paris")


def museum(**settings: object) -> BusinessCalendar:
    return calendar(opening_hours={"tue-sun": ("10:00-18:00",)}, **settings)


def paris(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=PARIS)


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


# ------------------------------------------------------------ working days


def test_it_skips_may_day_and_victory_day_in_the_30_april_chain() -> None:
    due = calendar().working_days_deadline(datetime.fromisoformat("2026-04-30T10:00+02:00"), 5)
    assert due.isoformat() == "2026-05-12T00:00:00+02:00"


def test_it_gives_the_end_of_monday_next_week_for_a_monday_start_without_holidays() -> None:
    due = calendar().working_days_deadline(paris(2026, 6, 8, 10), 5)
    assert due.isoformat() == "2026-06-16T00:00:00+02:00"


def test_it_gives_the_end_of_friday_for_a_saturday_start() -> None:
    due = calendar().working_days_deadline(paris(2026, 6, 13, 11), 5)
    assert due.isoformat() == "2026-06-20T00:00:00+02:00"


def test_it_skips_ascension_day() -> None:
    # Thu 14 May is a holiday: Fri 15 is day 1, Thu 21 day 5.
    assert calendar().working_days_deadline(paris(2026, 5, 13, 9), 5) == paris(2026, 5, 22)


def test_it_skips_whit_monday() -> None:
    # Fri 22 is day 1, Mon 25 is a holiday, Tue 26 day 2, Wed 27 day 3.
    assert calendar().working_days_deadline(paris(2026, 5, 21, 9), 3) == paris(2026, 5, 28)


def test_it_counts_a_start_at_local_midnight_as_that_day() -> None:
    assert calendar().working_days_deadline(paris(2026, 6, 8, 0, 0), 1) == paris(2026, 6, 10)
    assert calendar().working_days_deadline(paris(2026, 6, 7, 23, 59, 59), 1) == paris(2026, 6, 9)


def test_it_judges_the_start_day_in_the_calendar_zone_not_the_start_offset() -> None:
    # 22:00 UTC on Sunday is already Monday 00:00 in Paris.
    assert calendar().working_days_deadline(utc(2026, 6, 7, 22), 1) == paris(2026, 6, 10)


def test_it_ends_a_deadline_at_local_midnight_across_the_march_dst_change() -> None:
    due = calendar().working_days_deadline(datetime.fromisoformat("2026-03-27T10:00+01:00"), 1)
    assert due.isoformat() == "2026-03-31T00:00:00+02:00"


def test_it_ends_a_deadline_at_local_midnight_across_the_october_dst_change() -> None:
    due = calendar().working_days_deadline(paris(2026, 10, 23, 10), 1)
    assert due.isoformat() == "2026-10-27T00:00:00+01:00"
    assert due == utc(2026, 10, 26, 23)


def test_it_crosses_the_new_year() -> None:
    # Thu 31 Dec 2026 start: Fri 1 Jan holiday, Mon 4 .. Fri 8 Jan are days 1-5.
    assert calendar().working_days_deadline(paris(2026, 12, 31, 15), 5) == paris(2027, 1, 9)


def test_it_counts_holidays_as_working_days_when_holidays_is_null() -> None:
    assert calendar(holidays=None).is_working_day(date(2026, 5, 1))
    assert not calendar().is_working_day(date(2026, 5, 1))


def test_it_honours_working_saturdays() -> None:
    cal = calendar(working_days=("mon", "tue", "wed", "thu", "fri", "sat"))
    assert cal.working_days_deadline(paris(2026, 6, 12, 10), 1) == paris(2026, 6, 14)


def test_it_refuses_a_zero_working_days_deadline() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        calendar().working_days_deadline(paris(2026, 6, 8), 0)


def test_it_says_when_a_calendar_has_no_working_day() -> None:
    with pytest.raises(ValueError, match="fewer than 1 working days"):
        calendar(working_days=()).working_days_deadline(paris(2026, 6, 8), 1)


# ------------------------------------------------------------ subdivisions


def test_it_closes_good_friday_and_26_december_in_moselle_only() -> None:
    national, moselle = calendar(), calendar(holidays={"country": "FR", "subdivision": "57"})
    good_friday, saint_stephen = date(2026, 4, 3), date(2025, 12, 26)  # both Fridays
    assert national.is_working_day(good_friday) and national.is_working_day(saint_stephen)
    assert not moselle.is_working_day(good_friday) and not moselle.is_working_day(saint_stephen)


def test_it_knows_alsace_by_name_as_the_holidays_package_calls_it() -> None:
    # The holidays package calls Bas-Rhin + Haut-Rhin "6AE" (alias "Alsace"), not "67"/"68".
    for name in ("Alsace", "6AE", "Moselle"):
        cal = calendar(holidays={"country": "FR", "subdivision": name})
        assert not cal.is_working_day(date(2026, 4, 3))


def test_it_skips_good_friday_and_easter_monday_in_an_alsace_chain() -> None:
    start = paris(2026, 4, 2, 10)
    assert calendar().working_days_deadline(start, 1) == paris(2026, 4, 4)
    alsace = calendar(holidays={"country": "FR", "subdivision": "Alsace"})
    assert alsace.working_days_deadline(start, 1) == paris(2026, 4, 8)


# ----------------------------------------------------------------- closures


def test_it_closes_a_single_day_a_range_and_a_recurring_day() -> None:
    cal = calendar(closures=("2026-12-24", "2026-08-03..2026-08-14", "12-31"))
    assert not cal.is_working_day(date(2026, 12, 24))
    assert cal.is_working_day(date(2027, 12, 24))
    assert not cal.is_working_day(date(2026, 8, 3)) and not cal.is_working_day(date(2026, 8, 14))
    assert cal.is_working_day(date(2026, 7, 31)) and cal.is_working_day(date(2026, 8, 17))
    assert not cal.is_working_day(date(2026, 12, 31)) and not cal.is_working_day(date(2027, 12, 31))


def test_it_skips_a_closed_fortnight_in_a_chain() -> None:
    cal = calendar(closures=("2026-08-03..2026-08-14",))
    assert cal.working_days_deadline(paris(2026, 7, 31, 10), 1) == paris(2026, 8, 18)


def test_it_keeps_a_museum_closed_on_a_closure_even_when_it_opens_on_holidays() -> None:
    cal = museum(open_on_holidays=True, closures=("05-01",))
    assert cal.opening_slots(date(2026, 5, 1)) == []
    assert cal.opening_slots(date(2026, 5, 8)) != []  # Victory Day, a holiday but open


def test_it_closes_a_museum_on_holidays_unless_told_otherwise() -> None:
    assert museum().opening_slots(date(2026, 7, 14)) == []
    assert museum(open_on_holidays=True).opening_slots(date(2026, 7, 14)) == [(utc(2026, 7, 14, 8), utc(2026, 7, 14, 16))]


def test_it_applies_opening_hours_apart_from_working_days() -> None:
    cal = museum()  # works Mon-Fri, opens Tue-Sun
    assert cal.opening_slots(date(2026, 6, 13)) != [] and not cal.is_working_day(date(2026, 6, 13))
    assert cal.opening_slots(date(2026, 6, 8)) == [] and cal.is_working_day(date(2026, 6, 8))


# ------------------------------------------------------------------- DST


def test_it_maps_opening_slots_to_utc_around_the_march_change() -> None:
    cal = museum()
    assert cal.opening_slots(date(2026, 3, 28)) == [(utc(2026, 3, 28, 9), utc(2026, 3, 28, 17))]
    assert cal.opening_slots(date(2026, 3, 29)) == [(utc(2026, 3, 29, 8), utc(2026, 3, 29, 16))]


def test_it_maps_opening_slots_to_utc_around_the_october_change() -> None:
    cal = museum()
    assert cal.opening_slots(date(2026, 10, 24)) == [(utc(2026, 10, 24, 8), utc(2026, 10, 24, 16))]
    assert cal.opening_slots(date(2026, 10, 25)) == [(utc(2026, 10, 25, 9), utc(2026, 10, 25, 17))]


def test_it_opens_a_slot_skipped_by_the_spring_jump_at_the_jump() -> None:
    cal = calendar(opening_hours={"sun": ("00:00-02:30", "02:30-04:00")})
    # 02:30 does not exist on 29 March: the clock jumps 02:00 -> 03:00 at 01:00 UTC.
    assert cal.opening_slots(date(2026, 3, 29)) == [
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 1)),
        (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)),
    ]


def test_it_gives_a_slot_its_repeated_hour_in_the_autumn() -> None:
    cal = calendar(opening_hours={"sun": ("02:00-03:00",)})
    assert cal.opening_slots(date(2026, 10, 25)) == [(utc(2026, 10, 25, 0), utc(2026, 10, 25, 2))]


def test_it_counts_the_real_23_hours_of_the_spring_day() -> None:
    cal = calendar(working_days=("sat", "sun", "mon"), holidays=None)
    assert cal.business_delay(paris(2026, 3, 29), paris(2026, 3, 30)) == 23 * HOUR
    assert cal.business_delay(paris(2026, 3, 28, 12), paris(2026, 3, 30, 12)) == 47 * HOUR


def test_it_counts_the_real_25_hours_of_the_autumn_day() -> None:
    cal = calendar(working_days=("sat", "sun", "mon"), holidays=None)
    assert cal.business_delay(paris(2026, 10, 25), paris(2026, 10, 26)) == 25 * HOUR
    assert cal.business_delay(paris(2026, 10, 24, 12), paris(2026, 10, 26, 12)) == 49 * HOUR


# ---------------------------------------------------------- business delay


def test_it_leaves_the_weekend_out_of_a_business_delay() -> None:
    assert calendar().business_delay(paris(2026, 3, 27, 18), paris(2026, 3, 30, 9)) == 15 * HOUR


def test_it_leaves_holidays_out_of_a_business_delay() -> None:
    # Thu 30 April 12:00 -> Mon 4 May 12:00: 12 h on Thursday, 12 h on Monday.
    assert calendar().business_delay(paris(2026, 4, 30, 12), paris(2026, 5, 4, 12)) == 24 * HOUR


def test_it_gives_no_business_delay_for_an_answer_before_the_start() -> None:
    assert calendar().business_delay(paris(2026, 6, 9), paris(2026, 6, 8)) == 0.0


def test_it_adds_whole_years_to_a_long_business_delay() -> None:
    cal = calendar(working_days=("mon", "tue", "wed", "thu", "fri", "sat", "sun"), holidays=None)
    assert cal.business_delay(paris(2025, 6, 1), paris(2027, 6, 1)) == (utc(2027, 5, 31, 22) - utc(2025, 5, 31, 22)).total_seconds()


# ------------------------------------------------------------ opening hours


def test_it_opens_several_slots_a_day() -> None:
    cal = calendar(opening_hours={"mon-fri": ("10:00-12:30", "14:00-18:00")})
    assert cal.is_open(paris(2026, 6, 8, 11)) and not cal.is_open(paris(2026, 6, 8, 13))
    assert cal.open_seconds_between(paris(2026, 6, 8), paris(2026, 6, 9)) == 6.5 * HOUR
    assert cal.open_seconds_between(paris(2026, 6, 8, 12), paris(2026, 6, 8, 15)) == 1.5 * HOUR


def test_it_treats_a_slot_as_open_at_its_start_and_closed_at_its_end() -> None:
    cal = museum()
    assert cal.is_open(paris(2026, 6, 9, 10)) and not cal.is_open(paris(2026, 6, 9, 18))


def test_it_closes_a_24_00_slot_at_the_next_local_midnight() -> None:
    cal = calendar(opening_hours={"fri": ("18:00-24:00",)})
    assert cal.opening_slots(date(2026, 6, 12)) == [(utc(2026, 6, 12, 16), utc(2026, 6, 12, 22))]
    assert cal.is_open(paris(2026, 6, 12, 23, 59)) and not cal.is_open(paris(2026, 6, 13))


def test_it_refuses_naive_datetimes() -> None:
    cal = museum()
    with pytest.raises(ValueError, match="instant must be timezone-aware"):
        cal.is_open(datetime(2026, 6, 9, 12))
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        cal.working_days_deadline(datetime(2026, 6, 9, 12), 1)
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        cal.business_delay(paris(2026, 6, 9), datetime(2026, 6, 10))


def test_it_wants_a_date_not_an_instant_for_day_questions() -> None:
    with pytest.raises(TypeError, match="expected a date"):
        calendar().is_working_day(paris(2026, 6, 9))


# ------------------------------------------------------------ next opening


def test_it_returns_the_instant_itself_when_open() -> None:
    now = paris(2026, 6, 9, 11, 30)
    assert museum().next_opening(now) == now


def test_it_returns_the_next_slot_between_two_slots() -> None:
    cal = calendar(opening_hours={"mon-fri": ("10:00-12:30", "14:00-18:00")})
    assert cal.next_opening(paris(2026, 6, 8, 13)) == paris(2026, 6, 8, 14)


def test_it_returns_tuesday_morning_from_a_closed_monday() -> None:
    assert museum().next_opening(paris(2026, 6, 8, 12)) == paris(2026, 6, 9, 10)


def test_it_skips_a_holiday_when_looking_for_the_next_opening() -> None:
    # Ascension, Thu 14 May 2026.
    assert museum().next_opening(paris(2026, 5, 13, 19)) == paris(2026, 5, 15, 10)
    assert museum(open_on_holidays=True).next_opening(paris(2026, 5, 13, 19)) == paris(2026, 5, 14, 10)


def test_it_returns_none_when_the_calendar_never_opens() -> None:
    assert calendar().next_opening(paris(2026, 6, 8)) is None


def test_it_returns_the_next_opening_in_the_calendar_zone() -> None:
    found = museum().next_opening(utc(2026, 6, 8, 12))
    assert found is not None and found.utcoffset() == timedelta(hours=2)


# ---------------------------------------------------------- business hours


def test_it_runs_business_hours_across_a_closed_monday() -> None:
    # Sunday 16:00 + 4 h: 2 h on Sunday, Monday closed, 2 h on Tuesday.
    assert museum().business_hours_deadline(paris(2026, 6, 14, 16), 4) == paris(2026, 6, 16, 12)


def test_it_starts_business_hours_at_the_opening_when_sent_before() -> None:
    assert museum().business_hours_deadline(paris(2026, 6, 9, 7), 8) == paris(2026, 6, 9, 18)


def test_it_ends_business_hours_at_the_end_of_a_slot_rather_than_the_next_start() -> None:
    cal = calendar(opening_hours={"mon-fri": ("10:00-12:00", "14:00-18:00")})
    assert cal.business_hours_deadline(paris(2026, 6, 8, 10), 2) == paris(2026, 6, 8, 12)
    assert cal.business_hours_deadline(paris(2026, 6, 8, 10), 2.5) == paris(2026, 6, 8, 14, 30)


def test_it_refuses_business_hours_without_opening_hours() -> None:
    with pytest.raises(ValueError, match="needs a calendar with opening_hours"):
        calendar().business_hours_deadline(paris(2026, 6, 8), 1)


# ---------------------------------------------------------- planner windows


def test_it_clips_open_intervals_to_the_range() -> None:
    got = museum().open_intervals(paris(2026, 6, 8), paris(2026, 6, 10, 12))
    assert got == [(utc(2026, 6, 9, 8), utc(2026, 6, 9, 16)), (utc(2026, 6, 10, 8), utc(2026, 6, 10, 10))]


def test_it_cuts_opening_hours_out_of_the_out_of_hours_window() -> None:
    got = museum().window_intervals(paris(2026, 6, 8), paris(2026, 6, 10), parse_slot("08:00-21:00"), minus_open=True)
    assert got == [
        (utc(2026, 6, 8, 6), utc(2026, 6, 8, 19)),  # closed Monday: the whole window
        (utc(2026, 6, 9, 6), utc(2026, 6, 9, 8)),
        (utc(2026, 6, 9, 16), utc(2026, 6, 9, 19)),
    ]


def test_it_keeps_the_whole_window_when_not_cutting_opening_hours() -> None:
    got = museum().window_intervals(paris(2026, 6, 9, 12), paris(2026, 6, 10, 9), parse_slot("08:00-20:00"), minus_open=False)
    assert got == [(utc(2026, 6, 9, 10), utc(2026, 6, 9, 18)), (utc(2026, 6, 10, 6), utc(2026, 6, 10, 7))]


def test_it_gives_no_intervals_for_an_empty_range() -> None:
    assert museum().open_intervals(paris(2026, 6, 10), paris(2026, 6, 9)) == []


# ------------------------------------------------------------- from config


def test_it_builds_one_calendar_per_name_in_its_own_zone() -> None:
    config = Config(
        timezone="Europe/Paris",
        calendars={"offices": {}, "reunion": {"timezone": "Indian/Reunion", "holidays": {"country": "FR", "subdivision": "974"}}},
        commitments={},
        sites=(),
    )
    calendars = calendars_from(config)
    assert calendars["offices"].zone.key == "Europe/Paris"
    assert calendars["reunion"].zone.key == "Indian/Reunion"
    due = calendars["reunion"].working_days_deadline(datetime(2026, 6, 8, 10, tzinfo=timezone(timedelta(hours=4))), 1)
    assert due.isoformat() == "2026-06-10T00:00:00+04:00"
