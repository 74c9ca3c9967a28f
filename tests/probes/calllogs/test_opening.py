"""The opening-hours tracker of imports answers exactly what the calendar answers, in time order or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.calendar import BusinessCalendar
from monitor.config.models import CalendarConfig
from probes.calllogs.opening import OpeningTracker

MUSEUM = BusinessCalendar(CalendarConfig.model_validate({
    "opening_hours": {"tue-wed": ["10:00-12:30", "13:30-18:00"], "thu": ["10:00-21:45"],
                      "fri-sun": ["10:00-18:00"]},
    "holidays": {"country": "FR"}, "closures": ["2026-08-01..2026-08-15", "12-24"],
}), "Europe/Paris")
NEVER_OPEN = BusinessCalendar(CalendarConfig.model_validate({"opening_hours": {"mon": ["10:00-11:00"]},
                                                             "closures": ["2026-01-01..2027-12-31"]}),
                              "Europe/Paris")
START = datetime(2026, 3, 20, tzinfo=UTC)  # spans both DST changes of 2026, holidays and the August closure
SECONDS = st.integers(min_value=0, max_value=300 * 86400)


@settings(max_examples=60, deadline=None)
@given(st.lists(SECONDS, min_size=1, max_size=300), st.booleans())
def test_it_answers_like_the_calendar_for_any_instants(offsets: list[int], in_order: bool) -> None:
    tracker = OpeningTracker(MUSEUM)
    instants = [START + timedelta(seconds=s) for s in (sorted(offsets) if in_order else offsets)]
    assert [tracker.is_open(t) for t in instants] == [MUSEUM.is_open(t) for t in instants]


def test_it_answers_like_the_calendar_minute_by_minute_across_the_autumn_change() -> None:
    tracker = OpeningTracker(MUSEUM)
    instants = [datetime(2026, 10, 24, tzinfo=UTC) + timedelta(seconds=s) for s in range(0, 4 * 86400, 59)]
    assert [tracker.is_open(t) for t in instants] == [MUSEUM.is_open(t) for t in instants]


def test_it_answers_closed_for_a_calendar_that_does_not_open_within_its_search() -> None:
    tracker = OpeningTracker(NEVER_OPEN)
    assert [tracker.is_open(START + timedelta(days=d)) for d in range(3)] == [False] * 3
