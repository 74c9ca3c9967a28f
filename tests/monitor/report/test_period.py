"""Report periods: the names auditors use, whole local days, clear errors."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from monitor.report import PeriodError, parse_period


@pytest.mark.parametrize(("text", "label", "first", "last"), [
    ("2026-Q3", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
    ("2026-q1", "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
    ("2026-Q4", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
    ("2026-07", "2026-07", date(2026, 7, 1), date(2026, 7, 31)),
    ("2028-02", "2028-02", date(2028, 2, 1), date(2028, 2, 29)),
    ("2026-12", "2026-12", date(2026, 12, 1), date(2026, 12, 31)),
    ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31)),
    (" 2026-07-01..2026-09-30 ", "2026-07-01..2026-09-30", date(2026, 7, 1), date(2026, 9, 30)),
    ("2026-05-11..2026-05-11", "2026-05-11..2026-05-11", date(2026, 5, 11), date(2026, 5, 11)),
])
def test_it_reads_each_form_of_period(text: str, label: str, first: date, last: date) -> None:
    period = parse_period(text)
    assert (period.label, period.first, period.last) == (label, first, last)


def test_bounds_are_local_midnights_in_utc_across_a_dst_change() -> None:
    start, end = parse_period("2026-Q1").bounds("Europe/Paris")
    assert start == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)   # UTC+1 in winter
    assert end == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)      # UTC+2 after 29 March


def test_a_range_includes_its_last_day() -> None:
    start, end = parse_period("2026-07-01..2026-07-01").bounds("UTC")
    assert (end - start).days == 1


@pytest.mark.parametrize(("text", "message"), [
    ("2026-Q5", "period '2026-Q5': the quarter must be Q1 to Q4"),
    ("2026-Q0", "period '2026-Q0': the quarter must be Q1 to Q4"),
    ("2026-13", "period '2026-13': the month must be 01 to 12"),
    ("2026-00", "period '2026-00': the month must be 01 to 12"),
    ("1900", "period '1900': the year must be from 1970 to 9998"),
    ("2026-09-30..2026-07-01", ("period '2026-09-30..2026-07-01': the last day 2026-07-01 is before the first day "
                               "2026-09-30")),
    ("2026-02-30..2026-03-01", "period '2026-02-30..2026-03-01': '2026-02-30' is not a calendar date (YYYY-MM-DD)"),
    ("Q3 2026", ("period 'Q3 2026' is not understood: use YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD "
                "(e.g. 2026-Q3)")),
    ("", "period '' is not understood: use YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD (e.g. 2026-Q3)"),
])
def test_it_refuses_what_it_cannot_read_and_says_what_it_expects(text: str, message: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_period(text)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)  # the CLI turns ValueErrors into exit 2 with the message
