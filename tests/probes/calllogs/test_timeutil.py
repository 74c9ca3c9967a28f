"""Reading PBX wall-clock stamps across DST changes, and duration texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.calllogs.timeutil import LocalZone, parse_seconds, readings, resolve_call, zone_named

PARIS = ZoneInfo("Europe/Paris")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_it_reads_an_ordinary_local_time_with_its_single_offset() -> None:
    assert readings(datetime(2026, 6, 16, 10, 5), PARIS) == (utc("2026-06-16 08:05:00"),)


def test_it_sees_both_readings_of_a_time_in_the_repeated_autumn_hour() -> None:
    assert readings(datetime(2026, 10, 25, 2, 30), PARIS) == (utc("2026-10-25 00:30:00"), utc("2026-10-25 01:30:00"))


def test_it_reads_a_time_in_the_spring_gap_with_the_offset_before_the_gap() -> None:
    assert readings(datetime(2026, 3, 29, 2, 30), PARIS) == (utc("2026-03-29 01:30:00"),)


def test_it_picks_the_readings_that_match_the_logged_duration_across_the_autumn_change() -> None:
    start, _, end = resolve_call(datetime(2026, 10, 25, 2, 59, 50), None, datetime(2026, 10, 25, 2, 0, 10),
                                 20, 0, PARIS)
    assert (start, end) == (utc("2026-10-25 00:59:50"), utc("2026-10-25 01:00:10"))


def test_it_takes_the_earlier_reading_when_the_durations_cannot_tell() -> None:
    start, answer, end = resolve_call(datetime(2026, 10, 25, 2, 30), datetime(2026, 10, 25, 2, 30, 6),
                                      datetime(2026, 10, 25, 2, 31), 60, 54, PARIS)
    assert (start, answer, end) == (utc("2026-10-25 00:30:00"), utc("2026-10-25 00:30:06"), utc("2026-10-25 00:31:00"))


def test_it_never_lets_a_call_end_before_it_starts_when_no_duration_is_known() -> None:
    start, _, end = resolve_call(datetime(2026, 10, 25, 2, 50), None, datetime(2026, 10, 25, 2, 5), None, None, PARIS)
    assert start < end


def test_it_converts_stamps_that_already_carry_an_offset_without_guessing() -> None:
    aware = datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert resolve_call(aware, None, None, 0, 0, PARIS)[0] == aware.astimezone(UTC)


@pytest.mark.parametrize(("text", "seconds"), [
    ("42", 42), ("42.5", 42.5), ("42,5", 42.5), ("1:05", 65), ("00:01:35", 95), ("1:00:00", 3600), (" 7 ", 7),
])
def test_it_reads_durations_written_as_seconds_or_clock_times(text: str, seconds: float) -> None:
    assert parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "nan", "inf"])
def test_it_refuses_durations_that_are_not_numbers(text: str) -> None:
    with pytest.raises(ValueError):
        parse_seconds(text)


# Each zone with the local midnight before its 2026 changes: an hour shift (Paris, St John's), a half hour (Lord Howe).
CHANGES = {"Europe/Paris": ("2026-03-29", "2026-10-25"), "America/St_Johns": ("2026-03-08", "2026-11-01"),
           "Australia/Lord_Howe": ("2026-04-05", "2026-10-04"), "UTC": ("2026-03-29", "2026-10-25")}


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(list(CHANGES)), st.integers(0, 1), st.booleans(),
       st.lists(st.integers(min_value=0, max_value=6 * 36000), min_size=1, max_size=200))
def test_the_cached_zone_reads_every_stamp_like_the_exact_conversion(zone: str, change: int, in_order: bool,
                                                                     tenths: list[int]) -> None:
    local, day = LocalZone(zone_named(zone)), datetime.fromisoformat(CHANGES[zone][change])
    stamps = [day + timedelta(seconds=t / 10) for t in (sorted(tenths) if in_order else tenths)]
    assert [local.readings(s) for s in stamps] == [readings(s, zone_named(zone)) for s in stamps]
    assert all(r.tzinfo is UTC for s in stamps for r in local.readings(s))
