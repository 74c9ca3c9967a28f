"""Assembling the legs of one call into one record, while streaming, with exact resume points.

A call that rings several phones (a queue, a ring group) leaves one CDR row
per leg, sharing a `linkedid`; legs are not always adjacent in the log.  The
grouper holds a call open until the scan clock has moved `grace` seconds past
its last leg, then merges it.  It also knows where a reader must resume so
that no record is ever emitted twice or emitted partially:

* the resume position is the one before the first leg of the oldest call
  still open (its legs will be read again), and
* calls already emitted whose legs might be met again after that position
  are remembered as `recent` keys, whose legs are skipped.

Pure logic: positions are opaque values supplied by the reader (byte offsets
for files, keysets for SQL).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

from probes.calllogs.records import CallOutcome, CallRecord, RecentKeys

P = TypeVar("P")

# Which outcome a multi-leg call had for the caller when nobody answered:
# any phone that rang until the caller gave up means "no answer" for them.
_PRIORITY = {CallOutcome.answered: 0, CallOutcome.no_answer: 1, CallOutcome.busy: 2,
             CallOutcome.rejected: 3, CallOutcome.failed: 4}


class Leg(NamedTuple):
    """One parsed CDR row.  `dialled` is E.164 or "" for an internal extension (a NamedTuple: one per row)."""

    key: str
    line_no: int
    started_at: datetime
    ring_seconds: float
    duration: float
    outcome: CallOutcome
    dialled: str
    caller_hash: str | None
    order: tuple = ()  # tie-breaker among legs starting in the same second (Asterisk `sequence`)


def merge_legs(source: str, key: str, legs: list[Leg]) -> CallRecord | None:
    """The call as the caller lived it, or None when no leg dialled a public number (an internal call)."""
    if len(legs) == 1:
        return _single(source, key, legs[0])
    legs = sorted(legs, key=lambda leg: (leg.started_at, leg.order, leg.line_no))
    first = legs[0]
    dialled = next((leg.dialled for leg in legs if leg.dialled), "")
    if not dialled:
        return None
    start = first.started_at
    answered = [leg for leg in legs if leg.outcome is CallOutcome.answered]
    ended_at = max(leg.started_at + timedelta(seconds=leg.duration) for leg in legs)
    if answered:
        ring = min(_offset(start, leg) + leg.ring_seconds for leg in answered)
        outcome, answered_at = CallOutcome.answered, start + timedelta(seconds=ring)
    else:
        ring = (ended_at - start).total_seconds()
        outcome, answered_at = min((leg.outcome for leg in legs), key=_PRIORITY.__getitem__), None
    caller = next((leg.caller_hash for leg in legs if leg.caller_hash), None)
    return CallRecord(source=source, record_key=key, dialled=dialled, caller_hash=caller, started_at=start,
                      answered_at=answered_at, ended_at=ended_at, ring_seconds=ring, outcome=outcome, legs=len(legs))


def _single(source: str, key: str, leg: Leg) -> CallRecord | None:
    """Most calls have one leg: the same result as the general case, without its bookkeeping."""
    if not leg.dialled:
        return None
    start = leg.started_at
    answered = leg.outcome is CallOutcome.answered
    return CallRecord(source, key, leg.dialled, leg.caller_hash, start,
                      start + seconds(leg.ring_seconds) if answered else None,
                      start + seconds(leg.duration), leg.ring_seconds if answered else leg.duration,
                      leg.outcome, 1)


_DELTAS: dict[float, timedelta] = {}


def seconds(value: float) -> timedelta:
    """`timedelta(seconds=value)`, remembered: CDR durations are whole seconds from a small set, and building a
    timedelta costs four times a dictionary look-up."""
    delta = _DELTAS.get(value)
    if delta is None:
        if len(_DELTAS) > 65_536:  # odd durations (fractions from an export): keep memory flat
            _DELTAS.clear()
        delta = _DELTAS[value] = timedelta(seconds=value)
    return delta


def _offset(start: datetime, leg: Leg) -> float:
    return (leg.started_at - start).total_seconds()


@dataclass(slots=True)
class _Open(Generic[P]):
    first_ordinal: int
    resume_at: P
    resume_clock: float  # scan clock at `resume_at`
    last_clock: float
    last_ordinal: int
    legs: list[Leg] = field(default_factory=list)


class LegGrouper(Generic[P]):
    """Streaming grouping of legs by key.  Feed legs in scan order; take completed groups.

    Every position comes with the scan clock there (the reader's notion of
    time: a leg's end for Master.csv, its start for SQL).  An emitted key is
    remembered while its last leg is less than `remember_seconds` of clock
    before the resume position, so a reader that re-scans some time before
    its cursor (SQL lookback) or meets late legs can skip it.
    """

    def __init__(self, grace_seconds: float, start_at: P, recent: RecentKeys = (),
                 remember_seconds: float | None = None, start_clock: float = float("-inf")) -> None:
        self._grace = grace_seconds
        self._remember = 2 * grace_seconds if remember_seconds is None else remember_seconds
        self._open: dict[str, _Open[P]] = {}
        self._due: list[tuple[float, str]] = []  # heap of (last clock, key); stale entries are skipped
        # key -> (ordinal of its last leg, clock of its last leg), for calls already emitted
        self._done: dict[str, tuple[int, float]] = {key: (-1, clock) for key, clock in recent}
        self._prune_at = 4096
        self._position, self._position_clock = start_at, start_clock
        self._ordinal = 0
        self._clock = float("-inf")

    def add(self, leg: Leg, resume_at: P, clock: float) -> list[list[Leg]]:
        """Take one leg; `resume_at` is the position just before it.  Returns groups now complete."""
        self._ordinal += 1
        if clock > self._clock:
            self._clock = clock
        done = self._done.get(leg.key)
        if done is not None:  # a late or re-read leg of a call already emitted: never a second record
            self._done[leg.key] = (self._ordinal, max(done[1], clock))
            return self._expire()
        group = self._open.get(leg.key)
        if group is None:
            group = self._open[leg.key] = _Open(self._ordinal, resume_at, self._position_clock, clock, self._ordinal,
                                                [leg])
        else:
            if clock > group.last_clock:
                group.last_clock = clock
            group.last_ordinal = self._ordinal
            group.legs.append(leg)
        heapq.heappush(self._due, (group.last_clock, leg.key))
        return self._expire()

    def advance(self, position: P, clock: float | None = None) -> None:
        """Record that everything up to `position` was read (rejected and skipped rows included)."""
        self._position = position
        if clock is not None:
            self._position_clock = clock

    def flush(self, before_clock: float | None = None) -> list[list[Leg]]:
        """Close every open group (the data is complete), or those whose last leg is before `before_clock − grace`."""
        if before_clock is None:
            self._due.clear()
            return self._close(list(self._open))
        return self._expire(before_clock)

    def cursor(self) -> tuple[P, RecentKeys]:
        """Position to persist, and the keys to skip after it."""
        self._prune()  # keeps a superset of what the cursor keeps; a reader asking often then scans little
        position, after, base = self._resume_point()
        horizon = base - self._remember
        recent = tuple((k, c) for k, (o, c) in self._done.items() if o >= after or c >= horizon)
        return position, recent

    def _resume_point(self) -> tuple[P, int, float]:
        if not self._open:
            return self._position, self._ordinal + 1, self._position_clock
        oldest = min(self._open.values(), key=lambda g: g.first_ordinal)
        return oldest.resume_at, oldest.first_ordinal, oldest.resume_clock

    def _expire(self, clock: float | None = None) -> list[list[Leg]]:
        limit = (self._clock if clock is None else clock) - self._grace
        if len(self._done) > self._prune_at:
            self._prune()
        due = self._due
        if not due or due[0][0] >= limit:  # the common case, one comparison: nothing to close yet
            return []
        ready: dict[str, None] = {}
        while due and due[0][0] < limit:
            last_clock, key = heapq.heappop(due)
            group = self._open.get(key)
            if group is not None and group.last_clock == last_clock:
                ready[key] = None
        return self._close(ready) if ready else []

    def _prune(self) -> None:
        """Forget emitted keys that can no longer meet a leg, so memory stays flat on long scans."""
        _, after, base = self._resume_point()
        horizon = min(base, self._clock) - self._remember
        self._done = {k: v for k, v in self._done.items() if v[1] >= horizon or v[0] >= after}
        self._prune_at = max(4096, 2 * len(self._done))

    def _close(self, keys: Iterable[str]) -> list[list[Leg]]:
        groups = []
        for key in keys:
            group = self._open.pop(key)
            self._done[key] = (group.last_ordinal, group.last_clock)
            groups.append(group.legs)
        return groups
