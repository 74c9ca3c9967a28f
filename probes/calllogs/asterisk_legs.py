"""What Asterisk's CDR backends have in common: one row → one `Leg`, whatever the storage.

Both `Master.csv` and the SQL `cdr` table carry the same fields; the readers
turn their text or column values into `CdrFields` and this module applies
the rules once:

* ring time of a leg = `duration − billsec` (what Asterisk itself bills);
  the `answer`/`end` stamps only help to read ambiguous local times;
* dispositions: ANSWERED → answered, NO ANSWER → no_answer, BUSY → busy,
  FAILED and CONGESTION → failed (a technical failure inside the PBX or the
  network; `rejected` is kept for explicit declines, which Asterisk CDRs do
  not distinguish);
* the call key is `linkedid`, else `uniqueid` (in Asterisk ≥ 12 every leg
  of a call carries the caller's uniqueid, so both group queue legs), else a
  hash of non-personal fields (stamps, durations, channels, dialled number).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from probes.calllogs.grouping import Leg, merge_legs
from probes.calllogs.numbers import NumberKind, normalise_number, pseudonymise, redact
from probes.calllogs.records import (
    Batch,
    CallOutcome,
    CallRecord,
    FileCursor,
    RejectedRow,
    RejectReason,
    SqlCursor,
    key_problem,
)
from probes.calllogs.timeutil import LocalZone, resolve_start, zone_named

DISPOSITIONS = {
    "ANSWERED": CallOutcome.answered,
    "NO ANSWER": CallOutcome.no_answer,
    "NOANSWER": CallOutcome.no_answer,
    "BUSY": CallOutcome.busy,
    "FAILED": CallOutcome.failed,
    "CONGESTION": CallOutcome.failed,
}


class AsteriskOptions(BaseModel):
    """Settings shared by the Asterisk readers (a config source embeds them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = Field(default="Europe/Paris", description="Zone of the PBX clock that wrote the local stamps.")
    usegmtime: bool = Field(default=False, description="cdr.conf `usegmtime=yes`: stamps are already UTC.")
    country_code: str = Field(default="33", pattern=r"^[1-9][0-9]{0,2}$")
    group_grace_seconds: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=120.0, description="How far the scan must move past a call's last leg before the call is closed."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_named(value)  # raises on an unknown zone
        return value

    def zone(self) -> LocalZone:
        return LocalZone(zone_named("UTC" if self.usegmtime else self.timezone))


class CdrFields(NamedTuple):
    """One CDR row with typed values (naive local datetimes unless the backend gave aware ones).

    A NamedTuple rather than a frozen dataclass: one is built per row, and this is the hot path.
    """

    line_no: int
    start: datetime
    answer: datetime | None
    end: datetime | None
    duration: int
    billsec: int
    disposition: str
    dst: str
    src: str
    uniqueid: str
    linkedid: str
    sequence: Any
    channel: str
    dstchannel: str


def build_leg(
    row: CdrFields, options: AsteriskOptions, zone: LocalZone, caller_key: bytes | None, excerpt: str
) -> Leg | RejectedRow:
    """Apply the Asterisk rules to one row; a broken row becomes a `RejectedRow`, never an exception."""
    if row.duration < 0 or row.billsec < 0 or row.billsec > row.duration:
        return RejectedRow(row.line_no, RejectReason.duration, redact(excerpt))
    outcome = DISPOSITIONS.get(row.disposition) or DISPOSITIONS.get(row.disposition.strip().upper())
    if outcome is None:
        return RejectedRow(row.line_no, RejectReason.outcome, redact(excerpt))
    kind, dialled = normalise_number(row.dst, options.country_code)
    if kind is NumberKind.invalid:
        return RejectedRow(row.line_no, RejectReason.number, redact(excerpt))
    key = call_key(row)
    if (problem := key_problem(key)) is not None:  # a garbage linkedid or uniqueid (a SQL row can hold NULs)
        return RejectedRow(row.line_no, problem, redact(excerpt.replace("\0", "")))
    start = resolve_start(row.start, row.answer, row.end, row.duration, row.billsec, zone)
    ring = row.duration - row.billsec if outcome is CallOutcome.answered else row.duration
    caller = pseudonymise(row.src, caller_key, options.country_code) if caller_key else None
    # key, line_no, started_at, ring_seconds, duration, outcome, dialled, caller_hash, order (positional: per row)
    return Leg(key, row.line_no, start, float(ring), float(row.duration), outcome, dialled, caller,
               (_sortable(row.sequence),))


def call_key(row: CdrFields) -> str:
    if row.linkedid:
        return row.linkedid
    if row.uniqueid:
        return row.uniqueid
    # No identifier logged: hash what tells calls apart without personal data (channel names carry a counter).
    parts = (row.start.isoformat(), str(row.duration), str(row.billsec), row.disposition,
             row.dst, row.channel, row.dstchannel)
    return "h:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _sortable(sequence: Any) -> int:
    try:
        return int(sequence)
    except (TypeError, ValueError):
        return 0


class BatchGatherer:
    """What the Asterisk readers gather between two batches: calls closed, rows rejected or skipped."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.records: list[CallRecord] = []
        self.rejected: list[RejectedRow] = []
        self.rows = self.skipped = 0

    def _close(self, groups: list[list[Leg]]) -> None:
        """Merge each finished group of legs into one call (or count it skipped: not a public call)."""
        for legs in groups:
            record = merge_legs(self.source, legs[0].key, legs)
            if record is None:
                self.skipped += len(legs)
            else:
                self.records.append(record)

    def _hand_over(self, cursor: FileCursor | SqlCursor, restarted: bool = False) -> Batch:
        batch = Batch(tuple(self.records), tuple(self.rejected), cursor, self.rows, self.skipped, restarted)
        self.records, self.rejected, self.rows, self.skipped = [], [], 0, 0
        return batch
