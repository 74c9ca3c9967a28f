"""Open or closed at an instant, for calls met in time order: one calendar lookup per change of state.

An import asks the same question for every call, and calls come in time
order, so nearly every call falls in the same stretch of opening (a slot) or
closing (the night, a Monday) as the one before.  `OpeningTracker` keeps that
stretch as a pair of UTC instants and answers with two comparisons; outside
it, it asks the calendar (exactly what `BusinessCalendar.is_open` answers)
and keeps the new stretch.  A closed stretch is kept from the instant asked
(its true start would need a search backwards), which costs a lookup only
for a call earlier than the one before.  Pure: the calendar is passed in.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Protocol


class OpeningCalendar(Protocol):
    """What the tracker needs of a calendar; `monitor.calendar.BusinessCalendar` fits."""

    def local_day(self, instant: datetime) -> date: ...

    def opening_slots(self, day: date) -> list[tuple[datetime, datetime]]: ...

    def next_opening(self, instant: datetime) -> datetime | None: ...


class OpeningTracker:
    """`is_open(utc)` of one calendar, remembering the stretch of the last answer."""

    __slots__ = ("_calendar", "_low", "_high", "_open")

    def __init__(self, calendar: OpeningCalendar) -> None:
        self._calendar = calendar
        self._low: datetime | None = None
        self._high: datetime | None = None
        self._open = False

    def is_open(self, instant: datetime) -> bool:
        """`instant` is an aware UTC datetime (as in `CallRecord`)."""
        low = self._low
        if low is not None and low <= instant < self._high:  # type: ignore[operator]
            return self._open
        return self._look_up(instant)

    def _look_up(self, instant: datetime) -> bool:
        calendar = self._calendar
        for start, end in calendar.opening_slots(calendar.local_day(instant)):
            if start <= instant < end:
                self._low, self._high, self._open = start, end, True
                return True
        following = calendar.next_opening(instant)
        if following is None:  # closed for longer than the calendar searches: keep nothing
            self._low = None
        else:
            self._low, self._high, self._open = instant, following, False
        return False
