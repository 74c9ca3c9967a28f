"""Turning the wall-clock times of PBX logs into UTC instants, deterministically.

Asterisk writes `Master.csv` and (by default) its SQL `cdr` rows in the
PBX's local time, without an offset.  Twice a year that is not enough:

* In the autumn hour that happens twice (Europe/Paris, 25 Oct 2026,
  02:00–03:00 local) a time is ambiguous.  We pick, among the two readings of
  each ambiguous stamp of a row, the combination whose `end − start` best
  matches the row's own `duration` (and `end − answer` its `billsec`);
  remaining ties take the *earlier* reading (PEP 495 `fold=0`).  A call that
  starts at 02:59:50 in summer time and ends at 02:00:10 in winter time is
  therefore read as the 20 s it lasted.
* In the spring hour that never happens (29 Mar 2026, 02:00–03:00) a PBX
  clock cannot produce a stamp, but a drifted or hand-edited log can; such a
  stamp is read with the offset in force *before* the gap (`fold=0`), so
  02:30 becomes 01:30 UTC, as Python's zoneinfo does.  It is not rejected:
  the rest of the row is still good data.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import product
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HMS = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)")


def to_utc(naive: datetime, zone: tzinfo, fold: int = 0) -> datetime:
    """A naive local time in `zone` as an aware UTC instant; aware inputs are only converted."""
    if naive.tzinfo is not None:
        return naive.astimezone(UTC)
    return naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)


def readings(naive: datetime, zone: tzinfo) -> tuple[datetime, ...]:
    """Every UTC instant a local time can denote: one, or two in a repeated hour."""
    first = to_utc(naive, zone, 0)
    if naive.tzinfo is not None or zone is UTC:
        return (first,)
    second = to_utc(naive, zone, 1)
    if second == first:
        return (first,)
    # In a gap both folds exist but neither is real: keep fold=0 only (see module docstring).
    back = second.astimezone(zone).replace(tzinfo=None)
    return (first, second) if back == naive else (first,)


class LocalZone:
    """`readings` for one zone, with each wall-clock hour's UTC start cached.

    Log rows arrive in time order, so nearly every stamp falls in the hour
    of the stamp before (checked first, with two comparisons) or in one
    already seen; an hour that contains a transition is never cached and
    each of its stamps is computed exactly.  A stamp is turned into UTC by
    adding its distance from the hour's start to that start's UTC instant,
    which is exact and ten times cheaper than `replace(tzinfo=…)`.
    """

    _HOUR = timedelta(hours=1)

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._hours: dict[tuple[int, int, int, int], tuple[datetime, datetime] | None] = {}
        self._last: tuple[datetime, datetime, datetime] | None = None  # wall start, wall end, UTC start

    def readings(self, naive: datetime) -> tuple[datetime, ...]:
        if naive.tzinfo is not None:
            return (naive.astimezone(UTC),)
        last = self._last
        if last is not None and last[0] <= naive < last[1]:
            return (last[2] + (naive - last[0]),)
        key = (naive.year, naive.month, naive.day, naive.hour)
        try:
            hour = self._hours[key]
        except KeyError:
            hour = self._hours[key] = self._steady_hour(naive)
            if len(self._hours) > 100_000:  # a long backfill: forget old hours, keep memory flat
                self._hours.clear()
        if hour is None:
            return readings(naive, self.zone)
        wall, utc = hour
        self._last = (wall, wall + self._HOUR, utc)
        return (utc + (naive - wall),)

    def _steady_hour(self, naive: datetime) -> tuple[datetime, datetime] | None:
        """The hour's wall-clock start and its UTC instant, or None if a transition or an ambiguity falls inside it."""
        start = naive.replace(minute=0, second=0, microsecond=0)
        first = readings(start, self.zone)
        last = readings(naive.replace(minute=59, second=59, microsecond=999999), self.zone)
        if len(first) != 1 or len(last) != 1:
            return None
        before = start - first[0].replace(tzinfo=None)
        after = naive.replace(minute=59, second=59, microsecond=999999) - last[0].replace(tzinfo=None)
        return (start, first[0]) if before == after else None


def resolve_call(
    start: datetime, answer: datetime | None, end: datetime | None,
    duration: float | None, talk: float | None, zone: tzinfo | LocalZone,
) -> tuple[datetime, datetime | None, datetime | None]:
    """UTC (start, answer, end), choosing readings of ambiguous stamps that agree with the durations (when known)."""
    local = zone if isinstance(zone, LocalZone) else LocalZone(zone)
    options = [local.readings(start), _maybe(answer, local), _maybe(end, local)]
    if all(len(o) == 1 for o in options):
        return options[0][0], options[1][0], options[2][0]
    best: tuple[float, tuple[datetime, datetime | None, datetime | None]] | None = None
    for s, a, e in product(*options):  # at most 8 combinations, only in the repeated hour
        error = _mismatch(s, a, e, duration, talk)
        if best is None or error < best[0]:
            best = (error, (s, a, e))
    assert best is not None
    return best[1]


def _maybe(value: datetime | None, local: LocalZone) -> Sequence[datetime | None]:
    return (None,) if value is None else local.readings(value)


def resolve_start(
    start: datetime, answer: datetime | None, end: datetime | None,
    duration: float | None, talk: float | None, local: LocalZone,
) -> datetime:
    """Only the UTC start: the other stamps are read only when the start itself is ambiguous (the hot path)."""
    first = local.readings(start)
    if len(first) == 1:
        return first[0]
    return resolve_call(start, answer, end, duration, talk, local)[0]


def _mismatch(s: datetime, a: datetime | None, e: datetime | None, duration: float | None,
              talk: float | None) -> float:
    # Without durations, only the order of the stamps can tell: a call does not end before it starts.
    error = sum(1e9 for x, y in ((s, a), (a, e), (s, e)) if x is not None and y is not None and y < x)
    if e is not None and duration is not None:
        error += abs((e - s).total_seconds() - duration)
    if e is not None and a is not None and talk is not None:
        error += abs((e - a).total_seconds() - talk)
    if a is not None and duration is not None and talk is not None:
        error += abs((a - s).total_seconds() - (duration - talk))
    return error


def parse_seconds(text: str) -> float:
    """`42`, `42.5`, `42,5` (French decimal comma), `1:05`, `00:01:05` → seconds; ValueError otherwise."""
    text = text.strip()
    match = _HMS.fullmatch(text)
    if match:
        hours, minutes, seconds = match.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))
    value = float(text.replace(",", "."))
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{text!r} is not a number of seconds")
    return value


def zone_named(name: str) -> tzinfo:
    """The zone called `name`; a ValueError naming it when the tz database has no such zone."""
    if name.upper() in ("UTC", "GMT", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone of the tz database (e.g. 'Europe/Paris')") from None

