"""Report periods as auditors name them: `2026-Q3`, `2026-07`, `2026`, or `2026-07-01..2026-09-30`.

A period is a range of whole local days, both ends included as written;
`bounds()` turns it into the half-open UTC interval `[start, end)` of
instants that `compliance_rows` and the verdict queries use, with the
first and the day after the last taken at local midnight in the config's
time zone (so a quarter straddling a DST change is still exactly its days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

FORMS = "YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD..YYYY-MM-DD"


class PeriodError(ValueError):
    """A period the report cannot use; the message says what was expected."""


@dataclass(frozen=True)
class Period:
    label: str
    first: date    # first day, included
    last: date     # last day, included

    def bounds(self, tz: str) -> tuple[datetime, datetime]:
        zone = ZoneInfo(tz)
        start = datetime.combine(self.first, time(), tzinfo=zone)
        end = datetime.combine(self.last + timedelta(days=1), time(), tzinfo=zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def describe(self) -> str:
        return f"{self.label} ({self.first.isoformat()} to {self.last.isoformat()} inclusive)"


def parse_period(text: str) -> Period:
    raw = text.strip()
    for pattern, parse in _FORMS:
        match = pattern.fullmatch(raw)
        if match:
            return parse(raw, *match.groups())
    raise PeriodError(f"period {text!r} is not understood: use {FORMS} (e.g. 2026-Q3)")


def _year(raw: str, year: str) -> Period:
    y = _checked_year(raw, year)
    return Period(raw, date(y, 1, 1), date(y, 12, 31))


def _quarter(raw: str, year: str, quarter: str) -> Period:
    y, q = _checked_year(raw, year), int(quarter)
    if not 1 <= q <= 4:
        raise PeriodError(f"period {raw!r}: the quarter must be Q1 to Q4")
    first = date(y, 3 * q - 2, 1)
    return Period(f"{y}-Q{q}", first, _month_end(y, 3 * q))


def _month(raw: str, year: str, month: str) -> Period:
    y, m = _checked_year(raw, year), int(month)
    if not 1 <= m <= 12:
        raise PeriodError(f"period {raw!r}: the month must be 01 to 12")
    return Period(f"{y}-{m:02d}", date(y, m, 1), _month_end(y, m))


def _range(raw: str, first: str, last: str) -> Period:
    start, end = _day(raw, first), _day(raw, last)
    if end < start:
        raise PeriodError(f"period {raw!r}: the last day {last} is before the first day {first}")
    return Period(f"{start.isoformat()}..{end.isoformat()}", start, end)


def _checked_year(raw: str, year: str) -> int:
    y = int(year)
    if not 1970 <= y <= 9998:
        raise PeriodError(f"period {raw!r}: the year must be from 1970 to 9998")
    return y


def _day(raw: str, text: str) -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise PeriodError(f"period {raw!r}: {text!r} is not a calendar date (YYYY-MM-DD)") from None
    _checked_year(raw, str(day.year))
    return day


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


_FORMS = (
    (re.compile(r"(\d{4})"), _year),
    (re.compile(r"(\d{4})-[Qq](\d)"), _quarter),
    (re.compile(r"(\d{4})-(\d{2})"), _month),
    (re.compile(r"(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})"), _range),
)
