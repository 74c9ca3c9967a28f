"""The values every call-log reader produces: records, rejected rows, cursors, batches.

A `CallRecord` is one incoming call as the site's caller lived it (a queue
call that rang three phones is one record with `legs=3`).  A `RejectedRow`
is a line (or SQL row) that could not be read; readers never raise on bad
data, they hand these back so the runner can count them in
`qualimon_calllog_rows_rejected_total{source,reason}` and go on.

Cursors are plain, JSON-serialisable values: the lead persists the cursor of
each `Batch` *after* storing that batch's records, and the next read resumes
from it without yielding any record twice.  A stored cursor that is not one
this package could have written (a huge or negative offset, a keyset value
beyond a database's int64, broken JSON) raises `CursorError` on reading,
never later in the middle of a query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
import math
from math import ceil
from typing import Any, NamedTuple

INT64_MAX = 2**63 - 1
MAX_KEY_LENGTH = 128  # the store's `calls.record_key` column: a longer key would fail its whole batch, for ever


def key_problem(key: str) -> RejectReason | None:
    """Why a record key cannot be stored (too long, or a NUL PostgreSQL refuses in text), or None."""
    if len(key) > MAX_KEY_LENGTH:
        return RejectReason.field_too_large
    return RejectReason.nul_bytes if "\0" in key else None
_MAX_TEXT = 1024  # longest uniqueid, tie-breaker or record key a cursor may hold (Asterisk's are <= 150)


class CursorError(ValueError):
    """A stored cursor that cannot be resumed from; the message says which part is wrong (never its value)."""


class CallOutcome(StrEnum):
    """How the call ended for the caller; values are the `outcome` label of `qualimon_calls_total`."""

    answered = "answered"
    busy = "busy"
    no_answer = "no_answer"
    rejected = "rejected"
    failed = "failed"


class RejectReason(StrEnum):
    """Why a row was not turned into a record; values are the `reason` label of the rejected-rows counter."""

    columns = "columns"  # wrong number of fields, unbalanced quotes, missing mapped column
    encoding = "encoding"  # bytes that are not valid in the declared encoding
    timestamp = "timestamp"  # unparseable or impossible instant
    duration = "duration"  # negative, non-numeric, or talk time longer than the call
    number = "number"  # empty or malformed dialled number
    outcome = "outcome"  # disposition / status value nobody mapped
    field_too_large = "field_too_large"  # a field over the csv module's limit (128 KiB): a crashed writer's garbage
    nul_bytes = "nul_bytes"  # NUL bytes in the line: a hole left by a crash (file length kept, data lost)


class CallRecord(NamedTuple):
    """One incoming call, all instants UTC-aware.

    `caller_hash` is a keyed pseudonym (HMAC-SHA256 of the caller number,
    see `numbers.pseudonymise`) or None when no key is configured: the raw
    caller number is personal data and never leaves the parser.  It must
    not be used as a metric label either.

    A NamedTuple rather than a frozen dataclass: one is built per call on the
    import's hot path, and a frozen dataclass costs three times as much to build.
    """

    source: str
    record_key: str
    dialled: str
    caller_hash: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    ring_seconds: float
    outcome: CallOutcome
    legs: int = 1

    def rings(self, cadence_seconds: float = 5.0) -> int:
        """docs/design.md §2: ceil(ring_seconds / cadence), at least 1 for an answered call."""
        counted = ceil(self.ring_seconds / cadence_seconds - 1e-9)
        return max(1, counted) if self.outcome is CallOutcome.answered else max(0, counted)


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """A row that was skipped; `excerpt` is short and has phone-number-like digit runs redacted."""

    line_no: int
    reason: RejectReason
    excerpt: str


RecentKeys = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class FileCursor:
    """Where to resume a file: the next unread byte and how many lines lie before it.

    `fingerprint` identifies the file by its first line, so a rotated or
    replaced file is read again from the start.  `recent` holds the keys of
    calls already emitted whose legs may still be met after `offset` (legs
    of one call are not always adjacent), each with the scan clock of its
    last leg; a resumed read skips those legs instead of emitting a partial
    duplicate.
    """

    offset: int = 0
    line_no: int = 0
    fingerprint: str = ""
    recent: RecentKeys = ()

    def to_json(self) -> str:
        return json.dumps({"offset": self.offset, "line_no": self.line_no,
                           "fingerprint": self.fingerprint, "recent": [list(r) for r in self.recent]})

    @classmethod
    def from_json(cls, text: str) -> FileCursor:
        data = _object(text)
        return cls(offset=_count(data.get("offset"), "offset"), line_no=_count(data.get("line_no"), "line_no"),
                   fingerprint=_text(data.get("fingerprint", ""), "fingerprint"), recent=_recent(data.get("recent", ())))


SqlKey = tuple[datetime, str, Any]


@dataclass(frozen=True, slots=True)
class SqlCursor:
    """Where to resume an SQL `cdr` table: the keyset `(start, uniqueid, tie-breaker)` of the last row consumed.

    `start` is the table's own (naive, PBX-local) value, so ordering never
    depends on our time-zone conversion.
    """

    after: SqlKey | None = None
    recent: RecentKeys = ()

    def to_json(self) -> str:
        after = None if self.after is None else [self.after[0].isoformat(), self.after[1], self.after[2]]
        return json.dumps({"after": after, "recent": [list(r) for r in self.recent]})

    @classmethod
    def from_json(cls, text: str) -> SqlCursor:
        data = _object(text)
        return cls(after=_sql_key(data.get("after")), recent=_recent(data.get("recent", ())))


@dataclass(frozen=True, slots=True)
class Batch:
    """What one step of a reader yields.

    `rows` counts the source rows consumed by this step (for progress bars),
    `skipped` the valid rows that are not calls to a public number (internal
    extension-to-extension calls): neither records nor rejections.
    """

    records: tuple[CallRecord, ...]
    rejected: tuple[RejectedRow, ...]
    cursor: Any  # FileCursor | SqlCursor
    rows: int = 0
    skipped: int = 0
    restarted: bool = field(default=False)  # the file was rotated: reading began again at offset 0

    @classmethod
    def joined(cls, parts: list[Batch]) -> Batch:
        """Consecutive batches of one read as one, with the last one's cursor."""
        if len(parts) == 1:
            return parts[0]
        return cls(tuple(r for part in parts for r in part.records), tuple(r for part in parts for r in part.rejected),
                   parts[-1].cursor, sum(p.rows for p in parts), sum(p.skipped for p in parts),
                   any(p.restarted for p in parts))


def _object(text: Any) -> dict[str, Any]:
    try:
        data = json.loads(text)  # ValueError also for an integer of more than 4300 digits
    except (TypeError, ValueError) as error:
        raise CursorError(f"not a JSON cursor ({str(error)[:80]})") from None
    if not isinstance(data, dict):
        raise CursorError("not a JSON object")
    return data


def _count(value: Any, name: str) -> int:
    """A byte offset or a line count: what a file position can be, and what `seek` and int64 columns take."""
    if type(value) is not int or not 0 <= value <= INT64_MAX:
        raise CursorError(f"{name} is not an integer between 0 and 2**63-1")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise CursorError(f"{name} is not a text of at most {_MAX_TEXT} characters")
    return value


def _sql_key(raw: Any) -> SqlKey | None:
    """`[start, uniqueid, tie-breaker]`: the tie-breaker is what the keyset compares on the server (int64 or text)."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 3:
        raise CursorError("after is not [start, uniqueid, tie-breaker]")
    try:
        start = datetime.fromisoformat(_text(raw[0], "after.start"))
    except ValueError:
        raise CursorError("after.start is not an ISO 8601 date and time") from None
    tie = raw[2]
    if isinstance(tie, bool) or not (tie is None or isinstance(tie, str) and len(tie) <= _MAX_TEXT
                                     or isinstance(tie, int) and -INT64_MAX - 1 <= tie <= INT64_MAX):
        raise CursorError("after's tie-breaker is neither a 64-bit integer nor a short text")
    return start, _text(raw[1], "after.uniqueid"), tie


def _recent(raw: Any) -> RecentKeys:
    if not isinstance(raw, list | tuple):
        raise CursorError("recent is not a list")
    recent = []
    for item in raw:
        if not (isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], int | float)
                and not isinstance(item[1], bool)):
            raise CursorError("recent holds something else than [record key, clock] pairs")
        try:
            clock = float(item[1])
        except OverflowError:
            clock = math.inf
        if not math.isfinite(clock):
            raise CursorError("recent holds a clock that is not a finite number")
        recent.append((_text(item[0], "a recent record key"), clock))
    return tuple(recent)
