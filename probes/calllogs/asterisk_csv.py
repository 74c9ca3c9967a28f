"""Asterisk `cdr_csv` logs (`/var/log/asterisk/cdr-csv/Master.csv`): pure row parsing and a streaming reader.

Column order, from Asterisk's `cdr/cdr_csv.c` (no header line):

    accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp,
    lastdata, start, answer, end, duration, billsec, disposition, amaflags,
    [uniqueid]                       if cdr.conf [csv] loguniqueid=yes
    [userfield]                      if loguserfield=yes
    [peeraccount, linkedid, sequence] if newcdrcolumns=yes

Stamps are `YYYY-MM-DD HH:MM:SS` in the PBX's local time (UTC with
`usegmtime=yes`); an unanswered leg has an empty `answer`.  Set the three
flags as in the PBX's cdr.conf to check every row's width; left unset, each
row's layout is inferred from its width (16–21; 17 is read as `uniqueid`),
which also copes with a file that spans a cdr.conf change.

Success: every well-formed row ends up in exactly one `CallRecord` (legs
with the same `linkedid` merged) or is counted as `skipped` (internal
call); every other row is a `RejectedRow` with its reason.  No line stops
the reader: a field over the csv module's limit is `field_too_large`, and a
line with NUL bytes is `nul_bytes`.  NULs are what a crash leaves where the
lost end of the file was (the file system kept its length, not its data);
the PBX then appends its next row right after them, on the same physical
line, so the text after the last NUL is still read as a row.  A NUL inside
a real row cannot pass for one: Asterisk quotes its text fields, so what
follows a NUL there has an odd number of quotes or too few columns.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from itertools import islice
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from probes.calllogs.asterisk_legs import AsteriskOptions, BatchGatherer, CdrFields, build_leg
from probes.calllogs.filelines import NUL, RawLine, checked_cursor, csv_reason, iter_lines, nul_rejection
from probes.calllogs.grouping import Leg, LegGrouper
from probes.calllogs.numbers import redact
from probes.calllogs.records import Batch, CallRecord, FileCursor, RejectedRow, RejectReason
from probes.calllogs.timeutil import LocalZone

CHUNK_LINES = 256  # lines split by one csv reader
BASE_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
                "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")


class MasterCsvOptions(AsteriskOptions):
    """How the PBX writes Master.csv: the cdr.conf [csv] flags (None = infer per row) and the shared settings."""

    loguniqueid: bool | None = None
    loguserfield: bool | None = None
    newcdrcolumns: bool | None = None

    def fixed_layout(self) -> Layout | None:
        flags = (self.loguniqueid, self.loguserfield, self.newcdrcolumns)
        if any(flag is None for flag in flags):
            return None
        return Layout.of(bool(self.loguniqueid), bool(self.loguserfield), bool(self.newcdrcolumns))


@dataclass(frozen=True, slots=True)
class Layout:
    """Positions of the optional trailing columns (None when not logged)."""

    width: int
    uniqueid: int | None
    linkedid: int | None
    sequence: int | None

    @classmethod
    def of(cls, uniqueid: bool, userfield: bool, new: bool) -> Layout:
        at = len(BASE_COLUMNS)
        uid = at if uniqueid else None
        at += int(uniqueid) + int(userfield)
        if new:  # peeraccount, linkedid, sequence
            return cls(at + 3, uid, at + 1, at + 2)
        return cls(at, uid, None, None)


# Widths a row may have when the flags are not given, most common reading first.
INFERRED = {16: Layout.of(False, False, False), 17: Layout.of(True, False, False),
            18: Layout.of(True, True, False), 19: Layout.of(False, False, True),
            20: Layout.of(True, False, True), 21: Layout.of(True, True, True)}


def parse_fields(fields: list[str], line_no: int, layout: Layout | None, excerpt: str) -> CdrFields | RejectedRow:
    """One split Master.csv row → typed fields, or the reason it is unusable.  Pure."""
    shape = layout or INFERRED.get(len(fields))
    if shape is None or len(fields) != shape.width:
        return RejectedRow(line_no, RejectReason.columns, redact(excerpt))
    # Inline and positional from here: this runs once per row, and each call or keyword costs.
    try:
        start = _ISO(fields[9].strip())
        answer, end = fields[10].strip(), fields[11].strip()
        answer, end = _ISO(answer) if answer else None, _ISO(end) if end else None
    except ValueError:
        return RejectedRow(line_no, RejectReason.timestamp, redact(excerpt))
    try:
        duration, billsec = int(fields[12]), int(fields[13])
    except ValueError:
        return RejectedRow(line_no, RejectReason.duration, redact(excerpt))
    uniqueid, linkedid, sequence = shape.uniqueid, shape.linkedid, shape.sequence
    # line_no, start, answer, end, duration, billsec, disposition, dst, src, uniqueid, linkedid, sequence, channel,
    # dstchannel
    return CdrFields(line_no, start, answer, end, duration, billsec, fields[14], fields[2], fields[1],
                     "" if uniqueid is None else fields[uniqueid].strip(),
                     "" if linkedid is None else fields[linkedid].strip(),
                     "" if sequence is None else fields[sequence].strip(), fields[5], fields[6])


def parse_line(
    line: RawLine, options: MasterCsvOptions, layout: Layout | None, zone: LocalZone, caller_key: bytes | None
) -> Leg | RejectedRow:
    """One raw Master.csv line → a leg, or the reason it is unusable.  Pure."""
    split = split_line(line)
    if isinstance(split, RejectedRow):
        return split
    return leg_of(line.line_no, *split, options, layout, zone, caller_key)


def split_line(line: RawLine) -> tuple[str, list[str]] | RejectedRow:
    """A line's text and fields, or why it cannot be split (bytes, unbalanced quotes, the csv module's refusal)."""
    text = _text(line)
    if isinstance(text, RejectedRow):
        return text
    try:
        return text, next(csv.reader((text,)), [])
    except csv.Error as error:  # a field over the size limit, a bare CR: one row lost, never the reader
        return RejectedRow(line.line_no, csv_reason(error), redact(text))


def split_lines(lines: list[RawLine]) -> list[tuple[str, list[str]] | RejectedRow]:
    """`split_line` of each line, with one csv reader for all of them: a quarter cheaper than a reader per line.

    A reader fed several lines would join a line that ends inside quotes with the next one; `line_num` shows
    it, and so does any csv error: those lines are split again one by one, so the result is the same.
    """
    texts = [_text(line) for line in lines]
    reader = csv.reader(text for text in texts if type(text) is str)
    split: list[tuple[str, list[str]] | RejectedRow] = []
    fed = 0
    try:
        for text in texts:
            if isinstance(text, RejectedRow):
                split.append(text)
                continue
            split.append((text, next(reader)))
            fed += 1
            if reader.line_num != fed:
                raise csv.Error("a quoted field ran into the next line")
    except csv.Error:
        return [split_line(line) for line in lines]
    return split


def leg_of(line_no: int, text: str, fields: list[str], options: MasterCsvOptions, layout: Layout | None,
           zone: LocalZone, caller_key: bytes | None) -> Leg | RejectedRow:
    """A split line (`text` is its excerpt if rejected) → a leg, or the reason it is unusable.  Pure."""
    parsed = parse_fields(fields, line_no, layout, text)
    if isinstance(parsed, RejectedRow):
        return parsed
    return build_leg(parsed, options, zone, caller_key, text)


def _text(line: RawLine) -> str | RejectedRow:
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError:
        return RejectedRow(line.line_no, RejectReason.encoding,
                           redact(line.data.decode("utf-8", errors="backslashreplace")))
    if text.count('"') % 2:
        return RejectedRow(line.line_no, RejectReason.columns, redact(text))
    return text


def iter_master_csv(
    path: str | os.PathLike[str],
    source: str,
    *,
    options: MasterCsvOptions | None = None,
    cursor: FileCursor | None = None,
    caller_key: bytes | None = None,
    batch_rows: int = 5000,
    now: datetime | None = None,
) -> Iterator[Batch]:
    """Stream a Master.csv from `cursor`, in batches of about `batch_rows` lines; memory does not grow with the file.

    `now=None` means the file is complete (a backfill): the last calls are
    closed at end of file and a half-written last line is parsed.  A live
    poller passes the current time: calls whose last leg ended less than
    `group_grace_seconds` ago stay open, and the cursor points back to them.
    Persist each batch's cursor after storing its records.
    """
    options = options or MasterCsvOptions()
    cursor, restarted = checked_cursor(path, cursor or FileCursor())
    reader = _Reader(source, options, caller_key, cursor)
    with open(path, "rb") as handle:
        lines = iter_lines(handle, cursor.offset, cursor.line_no, complete=now is None)
        while chunk := list(islice(lines, min(CHUNK_LINES, batch_rows - reader.rows))):
            reader.take(chunk)
            if reader.rows >= batch_rows:
                yield reader.batch(restarted)
                restarted = False
    reader.finish(now)
    yield reader.batch(restarted)


def read_master_csv(path: str | os.PathLike[str], source: str, **kwargs: Any) -> tuple[
        list[CallRecord], list[RejectedRow], FileCursor]:
    """The whole file at once (tests, small backfills): records, rejected rows, final cursor."""
    records: list[CallRecord] = []
    rejected: list[RejectedRow] = []
    cursor = kwargs.get("cursor") or FileCursor()
    for batch in iter_master_csv(path, source, **kwargs):
        records.extend(batch.records)
        rejected.extend(batch.rejected)
        cursor = batch.cursor
    return records, rejected, cursor


class _Reader(BatchGatherer):
    """Per-read state: the grouper and what the current batch has gathered."""

    def __init__(self, source: str, options: MasterCsvOptions, caller_key: bytes | None, cursor: FileCursor) -> None:
        super().__init__(source)
        self.options, self.caller_key = options, caller_key
        self.layout, self.zone = options.fixed_layout(), options.zone()
        self.fingerprint = cursor.fingerprint
        self.grouper: LegGrouper[tuple[int, int]] = LegGrouper(
            options.group_grace_seconds, (cursor.offset, cursor.line_no), cursor.recent)

    def take(self, lines: list[RawLine]) -> None:
        for line, split in zip(lines, split_lines(lines), strict=True):
            if NUL in line.data:
                self._take(line, self._after_hole(line))
            elif isinstance(split, RejectedRow):
                self._take(line, split)
            else:
                self._take(line, leg_of(line.line_no, *split, self.options, self.layout, self.zone, self.caller_key))

    def _take(self, line: RawLine, leg: Leg | RejectedRow | None) -> None:
        self.rows += 1
        clock = None
        if isinstance(leg, RejectedRow):
            self.rejected.append(leg)
        elif leg is not None:
            # Master.csv is appended when a call's CDRs are dispatched, i.e. about when it ends.
            clock = leg.started_at.timestamp() + leg.duration
            closed = self.grouper.add(leg, (line.start, line.line_no - 1), clock)
            if closed:
                self._close(closed)
        self.grouper.advance((line.end, line.lines_after), clock)

    def _after_hole(self, line: RawLine) -> Leg | None:
        """The row after the last NUL, when it reads as one; the line counts as one `nul_bytes` rejection."""
        self.rejected.append(nul_rejection(line))
        tail = parse_line(line._replace(data=line.data.rpartition(NUL)[2]), self.options, self.layout, self.zone,
                          self.caller_key)
        return None if isinstance(tail, RejectedRow) else tail

    def finish(self, now: datetime | None) -> None:
        self._close(self.grouper.flush(None if now is None else now.timestamp()))

    def batch(self, restarted: bool) -> Batch:
        (offset, line_no), recent = self.grouper.cursor()
        return self._hand_over(FileCursor(offset, line_no, self.fingerprint, recent), restarted)


_ISO = datetime.fromisoformat
