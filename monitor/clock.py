"""Time sources.  Everything that needs 'now' takes a `Clock`, so tests never sleep on the wall clock."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0, **delta: float) -> datetime:
        self._now += timedelta(seconds=seconds, **delta)
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = instant.astimezone(timezone.utc)


def utc(instant: datetime) -> datetime:
    """Normalise an aware datetime to UTC; refuse naive ones, which would silently mean local time."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: qualimon stores instants in UTC and needs an offset")
    return instant.astimezone(timezone.utc)


def iso_utc(instant: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the API and exports show instants."""
    if instant is None:
        return None
    text = utc(instant).isoformat()
    return text.replace("+00:00", "Z")
