"""Operator call exports (CSV with a header) read through a column mapping from the config.

Operators and hosted PBXs export incoming calls in their own shape: French
headers, `;` delimiters, Windows-1252, date and time in separate columns,
durations as `00:01:35`, statuses like `Répondu` / `Non répondu`.
`GenericCsvMapping` says where each fact is; the reader turns every row into
a `CallRecord` (one row = one call) or a `RejectedRow`.

The record key is the export's own call id when one is mapped, else a hash
of the mapped non-personal fields (stamps, durations, dialled number,
status), so importing the same export twice adds nothing.  A header that
lacks a mapped column is a configuration error (`MappingError`), raised
before any row is read; bad rows never raise: a field over the csv
module's limit is rejected as `field_too_large`, a line with NUL bytes as
`nul_bytes` (whole: in an unquoted export a NUL may cut a row anywhere, so
what follows it cannot be trusted as a row).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from probes.calllogs.filelines import NUL, RawLine, checked_cursor, csv_reason, iter_lines, nul_rejection
from probes.calllogs.numbers import NumberKind, normalise_number, pseudonymise, redact
from probes.calllogs.records import Batch, CallOutcome, CallRecord, FileCursor, RejectedRow, RejectReason, key_problem
from probes.calllogs.timeutil import LocalZone, parse_seconds, resolve_call, zone_named

Columns = Annotated[str | tuple[str, ...], Field(description="A header name, or several joined with a space (date + time).")]


class MappingError(ValueError):
    """The file does not fit the mapping (a mapped column is missing from its header)."""


class GenericCsvMapping(BaseModel):
    """Where each fact of a call is in an operator's CSV export (header names, not positions)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    quotechar: Annotated[str, Field(min_length=1, max_length=1)] = '"'
    encoding: str = "utf-8"
    timezone: str = Field(default="Europe/Paris", description="Zone of stamps written without an offset.")
    timestamp_format: str = Field(default="iso", description="'iso', 'epoch' (seconds), or a strptime format.")
    country_code: str = Field(default="33", pattern=r"^[1-9][0-9]{0,2}$")

    id: str | None = Field(default=None, description="The export's own call identifier, if it has one.")
    start: Columns
    answer: Columns | None = None
    end: Columns | None = None
    ring_seconds: str | None = Field(default=None, description="Waiting time before answer (or before giving up).")
    duration: str | None = Field(default=None, description="Whole call length, ringing included.")
    talk_seconds: str | None = Field(default=None, description="Conversation length (0 when unanswered).")
    dialled: str
    caller: str | None = None
    outcome: str | None = None
    outcomes: dict[str, CallOutcome] = Field(
        default_factory=dict, description="Status value (case-insensitive) → answered|busy|no_answer|rejected|failed."
    )

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r} (e.g. 'utf-8', 'cp1252')") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_named(value)
        return value

    @model_validator(mode="after")
    def _derivable(self) -> GenericCsvMapping:
        if not (self.ring_seconds or self.answer or (self.duration and self.talk_seconds)):
            raise ValueError("cannot tell the ring time: map ring_seconds, answer, or duration with talk_seconds")
        if not (self.ring_seconds or self.end or self.duration):
            raise ValueError("cannot tell how long an unanswered call rang: map ring_seconds, end or duration")
        if self.outcome and not self.outcomes:
            raise ValueError("'outcome' names a column but 'outcomes' maps none of its values")
        if not self.outcome and not (self.answer or self.talk_seconds):
            raise ValueError("cannot tell answered calls: map outcome (with outcomes), answer or talk_seconds")
        return self

    def statuses(self) -> dict[str, CallOutcome]:
        return {key.strip().casefold(): value for key, value in self.outcomes.items()}


@dataclass(frozen=True, slots=True)
class _Plan:
    """The mapping resolved against one file's header: column positions."""

    width: int
    id: int | None
    start: tuple[int, ...]
    answer: tuple[int, ...] | None
    end: tuple[int, ...] | None
    ring: int | None
    duration: int | None
    talk: int | None
    dialled: int
    caller: int | None
    outcome: int | None

    @classmethod
    def resolve(cls, mapping: GenericCsvMapping, header: list[str]) -> _Plan:
        names = {name.strip(): index for index, name in enumerate(header)}
        missing: list[str] = []

        def pos(column: str | None) -> int | None:
            if column is None:
                return None
            if column not in names:
                missing.append(column)
                return -1
            return names[column]

        def many(columns: str | tuple[str, ...] | None) -> tuple[int, ...] | None:
            if columns is None:
                return None
            return tuple(pos(c) or 0 for c in ((columns,) if isinstance(columns, str) else columns))

        plan = cls(len(header), pos(mapping.id), many(mapping.start) or (), many(mapping.answer), many(mapping.end),
                   pos(mapping.ring_seconds), pos(mapping.duration), pos(mapping.talk_seconds),
                   pos(mapping.dialled) or 0, pos(mapping.caller), pos(mapping.outcome))
        if missing:
            raise MappingError(f"columns {missing} are mapped but not in the header {header}")
        return plan


class _Bad(Exception):
    def __init__(self, reason: RejectReason) -> None:
        self.reason = reason


def parse_row(
    fields: list[str], line_no: int, plan: _Plan, mapping: GenericCsvMapping, *,
    source: str, zone: LocalZone, statuses: dict[str, CallOutcome], caller_key: bytes | None,
) -> CallRecord | RejectedRow | None:
    """One split data row → a record, a rejection, or None for a call to an internal extension.  Pure."""
    try:
        return _record(fields, plan, mapping, source, zone, statuses, caller_key)
    except _Bad as bad:
        return RejectedRow(line_no, bad.reason, redact(mapping.delimiter.join(fields)))


def _record(fields: list[str], plan: _Plan, mapping: GenericCsvMapping, source: str, zone: LocalZone,
            statuses: dict[str, CallOutcome], caller_key: bytes | None) -> CallRecord | None:
    if len(fields) != plan.width:
        raise _Bad(RejectReason.columns)
    kind, dialled = normalise_number(fields[plan.dialled], mapping.country_code)
    if kind is NumberKind.invalid:
        raise _Bad(RejectReason.number)
    start = _stamp(fields, plan.start, mapping)
    if start is None:
        raise _Bad(RejectReason.timestamp)
    answer, end = _stamp(fields, plan.answer, mapping), _stamp(fields, plan.end, mapping)
    ring, duration, talk = (_seconds(fields, i) for i in (plan.ring, plan.duration, plan.talk))
    outcome = _outcome(fields, plan, statuses, answer, talk)
    if kind is NumberKind.internal:
        return None
    total = duration if duration is not None else (ring + talk if ring is not None and talk is not None else None)
    start_utc, answer_utc, end_utc = resolve_call(start, answer, end, total, talk, zone)
    ring = _ring(outcome, ring, start_utc, answer_utc, end_utc, duration, talk)
    ended = _ended(start_utc, end_utc, duration, ring, talk)
    answered_at = start_utc + timedelta(seconds=ring) if outcome is CallOutcome.answered else None
    caller = pseudonymise(fields[plan.caller], caller_key, mapping.country_code) if plan.caller is not None else None
    key = _key(fields, plan)
    if (problem := key_problem(key)) is not None:
        raise _Bad(problem)
    return CallRecord(source=source, record_key=key, dialled=dialled, caller_hash=caller,
                      started_at=start_utc, answered_at=answered_at, ended_at=ended, ring_seconds=ring,
                      outcome=outcome)


def _stamp(fields: list[str], columns: tuple[int, ...] | None, mapping: GenericCsvMapping) -> datetime | None:
    if columns is None:
        return None
    text = " ".join(fields[i].strip() for i in columns).strip()
    if not text:
        return None
    try:
        if mapping.timestamp_format == "iso":
            return datetime.fromisoformat(text)
        if mapping.timestamp_format == "epoch":
            return datetime.fromtimestamp(float(text), UTC)
        return datetime.strptime(text, mapping.timestamp_format)
    except (ValueError, OverflowError, OSError):
        raise _Bad(RejectReason.timestamp) from None


def _seconds(fields: list[str], index: int | None) -> float | None:
    if index is None or not fields[index].strip():
        return None
    try:
        value = parse_seconds(fields[index])
    except ValueError:
        raise _Bad(RejectReason.duration) from None
    if value < 0:
        raise _Bad(RejectReason.duration)
    return value


def _outcome(fields: list[str], plan: _Plan, statuses: dict[str, CallOutcome],
             answer: datetime | None, talk: float | None) -> CallOutcome:
    if plan.outcome is not None:
        outcome = statuses.get(fields[plan.outcome].strip().casefold())
        if outcome is None:
            raise _Bad(RejectReason.outcome)
        return outcome
    return CallOutcome.answered if answer is not None or (talk or 0) > 0 else CallOutcome.no_answer


def _ring(outcome: CallOutcome, ring: float | None, start: datetime, answer: datetime | None,
          end: datetime | None, duration: float | None, talk: float | None) -> float:
    """Seconds the caller waited: before the answer, or before giving up."""
    if ring is not None:
        return ring
    if outcome is CallOutcome.answered:
        if answer is not None:
            value = (answer - start).total_seconds()
        elif duration is not None and talk is not None:
            value = duration - talk
        else:
            raise _Bad(RejectReason.duration)
    elif duration is not None:
        value = duration
    elif end is not None:
        value = (end - start).total_seconds()
    else:
        raise _Bad(RejectReason.duration)
    if value < 0:
        raise _Bad(RejectReason.duration)
    return value


def _ended(start: datetime, end: datetime | None, duration: float | None, ring: float, talk: float | None) -> datetime:
    if end is not None:
        if end < start:
            raise _Bad(RejectReason.timestamp)
        return end
    if duration is not None:
        return start + timedelta(seconds=duration)
    return start + timedelta(seconds=ring + (talk or 0.0))


def _key(fields: list[str], plan: _Plan) -> str:
    if plan.id is not None and fields[plan.id].strip():
        return fields[plan.id].strip()
    # The caller column is deliberately left out: a key must not be a reversible digest of personal data.
    indexes = [*plan.start, *(plan.answer or ()), *(plan.end or ()),
               *(i for i in (plan.ring, plan.duration, plan.talk, plan.dialled, plan.outcome) if i is not None)]
    text = "\x1f".join(fields[i].strip() for i in indexes)
    return "h:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def iter_generic_csv(
    path: str | os.PathLike[str],
    source: str,
    mapping: GenericCsvMapping,
    *,
    cursor: FileCursor | None = None,
    caller_key: bytes | None = None,
    batch_rows: int = 5000,
    now: datetime | None = None,
) -> Iterator[Batch]:
    """Stream an export from `cursor` in batches; `now` set means the file may still grow (see Master.csv reader)."""
    cursor, restarted = checked_cursor(path, cursor or FileCursor(), lines=2)
    quote = mapping.quotechar.encode(mapping.encoding)
    with open(path, "rb") as handle:
        lines = iter_lines(handle, 0, 0, complete=now is None, quote=quote)
        header_line = next(lines, None)
        if header_line is None:
            yield Batch((), (), cursor, 0, 0, restarted)
            return
        plan = _Plan.resolve(mapping, _header(header_line, mapping))
        if cursor.offset < header_line.end:
            cursor = FileCursor(header_line.end, header_line.lines_after, cursor.fingerprint)
        lines = iter_lines(handle, cursor.offset, cursor.line_no, complete=now is None, quote=quote)
        yield from _batches(lines, plan, mapping, source, cursor, caller_key, batch_rows, restarted)


def _batches(lines: Iterator[RawLine], plan: _Plan, mapping: GenericCsvMapping, source: str, cursor: FileCursor,
             caller_key: bytes | None, batch_rows: int, restarted: bool) -> Iterator[Batch]:
    zone, statuses = LocalZone(zone_named(mapping.timezone)), mapping.statuses()
    records: list[CallRecord] = []
    rejected: list[RejectedRow] = []
    rows = skipped = 0
    for line in lines:
        rows += 1
        result = _parse_line(line, plan, mapping, source, zone, statuses, caller_key)
        if isinstance(result, CallRecord):
            records.append(result)
        elif isinstance(result, RejectedRow):
            rejected.append(result)
        elif result is None:
            skipped += 1
        cursor = FileCursor(line.end, line.lines_after, cursor.fingerprint)
        if rows >= batch_rows:
            yield Batch(tuple(records), tuple(rejected), cursor, rows, skipped, restarted)
            records, rejected, rows, skipped, restarted = [], [], 0, 0, False
    yield Batch(tuple(records), tuple(rejected), cursor, rows, skipped, restarted)


_BLANK: Any = object()


def _parse_line(line: RawLine, plan: _Plan, mapping: GenericCsvMapping, source: str, zone: LocalZone,
                statuses: dict[str, CallOutcome], caller_key: bytes | None) -> CallRecord | RejectedRow | None | Any:
    if NUL in line.data:
        return nul_rejection(line, mapping.encoding)
    try:
        text = line.data.decode(mapping.encoding)
    except UnicodeDecodeError:
        return RejectedRow(line.line_no, RejectReason.encoding,
                           redact(line.data.decode(mapping.encoding, errors="backslashreplace")))
    if not text.strip():
        return _BLANK  # blank lines (often at the end of an export) are not rows
    try:
        fields = _split(text, mapping)
    except csv.Error as error:  # a field over the size limit, a bare CR: one row lost, never the reader
        return RejectedRow(line.line_no, csv_reason(error), redact(text))
    return parse_row(fields, line.line_no, plan, mapping, source=source, zone=zone,
                     statuses=statuses, caller_key=caller_key)


def _header(line: RawLine, mapping: GenericCsvMapping) -> list[str]:
    try:
        return _split(line.data.decode(mapping.encoding).lstrip("\ufeff"), mapping)
    except UnicodeDecodeError as error:
        raise MappingError(f"the header is not valid {mapping.encoding}: {error}") from None
    except csv.Error as error:
        raise MappingError(f"the header cannot be read as CSV ({error}): is this the right file?") from None


def _split(text: str, mapping: GenericCsvMapping) -> list[str]:
    return next(csv.reader((text,), delimiter=mapping.delimiter, quotechar=mapping.quotechar), [])


def read_generic_csv(path: str | os.PathLike[str], source: str, mapping: GenericCsvMapping, **kwargs: Any) -> tuple[
        list[CallRecord], list[RejectedRow], FileCursor]:
    """The whole export at once: records, rejected rows, final cursor."""
    records: list[CallRecord] = []
    rejected: list[RejectedRow] = []
    cursor = kwargs.get("cursor") or FileCursor()
    for batch in iter_generic_csv(path, source, mapping, **kwargs):
        records.extend(batch.records)
        rejected.extend(batch.rejected)
        cursor = batch.cursor
    return records, rejected, cursor
