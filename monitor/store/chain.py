"""The tamper-evident hash chain over the event log (pure).

Each event's hash covers its own sequence number, probe, instant, type and
data *and* the previous event's hash.  Editing a row changes its hash;
deleting one leaves a gap in `seq` and a `prev_hash` that no longer matches;
swapping two rows breaks both.  `verify` walks the rows in `seq` order and
returns the first break, so an auditor knows exactly where history changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.clock import iso_utc

GENESIS = "0" * 64


def canonical_json(data: Any) -> str:
    """One spelling per value, so the same data always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot go into an event")


def event_hash(prev_hash: str, seq: int, probe_id: str | None, at: datetime, type_: str, data: str) -> str:
    """`data` is the canonical JSON text exactly as stored."""
    payload = canonical_json([seq, probe_id, iso_utc(at), type_, data])
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


@dataclass(frozen=True)
class ChainRow:
    seq: int
    probe_id: str | None
    at: datetime
    type: str
    data: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    events: int
    last_seq: int
    last_hash: str
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class Verifier:
    """Checks rows fed one at a time in ascending `seq`, so a million events need no memory."""

    def __init__(self) -> None:
        self.count = 0
        self.expected_seq = 1
        self.prev = GENESIS
        self.broken: ChainBreak | None = None

    def feed(self, row: ChainRow) -> bool:
        """False once the chain is broken (the caller can stop reading)."""
        if self.broken:
            return False
        self.count += 1
        self.broken = _check_row(row, self.expected_seq, self.prev)
        if self.broken is None:
            self.expected_seq, self.prev = row.seq + 1, row.hash
        return self.broken is None

    def report(self, head_seq: int | None = None, head_hash: str | None = None) -> ChainReport:
        last_seq = self.expected_seq - 1
        broken = self.broken or _check_tip(last_seq, self.prev, head_seq, head_hash)
        return ChainReport(self.count, last_seq, self.prev, broken)


def verify(rows: Iterable[ChainRow], head_seq: int | None = None, head_hash: str | None = None) -> ChainReport:
    """Check rows given in ascending `seq`; compare the tip with the stored head when given."""
    verifier = Verifier()
    for row in rows:
        if not verifier.feed(row):
            break
    return verifier.report(head_seq, head_hash)


def _check_tip(last_seq: int, last_hash: str, head_seq: int | None, head_hash: str | None) -> ChainBreak | None:
    if head_seq is None or (head_seq == last_seq and head_hash == last_hash):
        return None
    if head_seq > last_seq:
        return ChainBreak(last_seq + 1, f"missing: the chain stops at event {last_seq} but its head records "
                                        f"event {head_seq} (rows deleted at the end)")
    return ChainBreak(head_seq, "the chain head does not match the last event (rows appended or replaced)")


def _check_row(row: ChainRow, expected_seq: int, prev: str) -> ChainBreak | None:
    if row.seq != expected_seq:
        return ChainBreak(expected_seq, f"missing (the next event present is {row.seq}): a row was deleted")
    if row.prev_hash != prev:
        return ChainBreak(row.seq, "does not follow the previous event (rows deleted, re-ordered or replaced)")
    if event_hash(prev, row.seq, row.probe_id, row.at, row.type, row.data) != row.hash:
        return ChainBreak(row.seq, "its content does not match its hash: the row was edited")
    return None
