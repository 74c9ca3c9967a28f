"""Reading a log file line by line from a byte offset: the only file I/O of the CSV readers.

Offsets are exact byte positions, so a cursor stays valid however the file
is encoded.  When a `quote` is given, a quoted field that contains a newline
keeps its record whole (lines are joined while the quotes are unbalanced, up
to a small limit, so a stray quote cannot swallow the rest of the file).
Asterisk never writes such fields, so its reader does not join: there a
line cut short by a crash must cost one row, not the next few.  While a file is still
being written (`complete=False`) a last line without its newline is left
for the next read instead of being parsed half-written.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from probes.calllogs.numbers import redact
from probes.calllogs.records import FileCursor, RejectedRow, RejectReason

MAX_JOINED_LINES = 8
_FINGERPRINT_BYTES = 4096
NUL = b"\0"
_NUL_RUN = re.compile("\0+")


class RawLine(NamedTuple):  # one per line read: a NamedTuple is the cheapest immutable record to build
    line_no: int  # number of its first physical line, from 1
    start: int  # byte offset of its first byte
    end: int  # byte offset just after its newline
    lines_after: int  # physical lines before the next record (joined lines count each)
    data: bytes  # without the line terminator


def fingerprint(path: str | os.PathLike[str], lines: int = 1) -> str:
    """Identity of a log file: a hash of its first `lines` lines ("" until they are written).

    A file with a header needs `lines=2`: the header alone is the same in every export.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for _ in range(lines):
            head = handle.readline(_FINGERPRINT_BYTES)
            if not head.endswith(b"\n"):
                return ""  # not finished yet: nothing stable to compare
            digest.update(head)
    return digest.hexdigest()[:16]


def resume_offset(path: str | os.PathLike[str], offset: int, known: str, lines: int = 1) -> bool:
    """True when a saved offset still belongs to this file (not rotated, truncated or replaced)."""
    if offset > os.path.getsize(path):
        return False
    return not known or known == fingerprint(path, lines)


def checked_cursor(path: str | os.PathLike[str], cursor: FileCursor, lines: int = 1) -> tuple[FileCursor, bool]:
    """The cursor to start from, and whether the file changed under it (rotated) so reading restarts at 0."""
    if not cursor.fingerprint and cursor.offset <= os.path.getsize(path):
        return FileCursor(cursor.offset, cursor.line_no, fingerprint(path, lines), cursor.recent), False
    if resume_offset(path, cursor.offset, cursor.fingerprint, lines):
        return cursor, False
    return FileCursor(0, 0, fingerprint(path, lines), cursor.recent), True


def iter_lines(handle: BinaryIO, offset: int, line_no: int, complete: bool, quote: bytes = b"") -> Iterator[RawLine]:
    """Logical lines from `offset` (`line_no` lines lie before it)."""
    handle.seek(offset)
    physical = iter(handle)
    for raw in physical:
        start, lines = offset, 1
        offset += len(raw)
        while quote and raw.count(quote) % 2 and lines < MAX_JOINED_LINES:
            more = next(physical, None)
            if more is None:
                break
            raw += more
            offset += len(more)
            lines += 1
        if not raw.endswith(b"\n") and not complete:
            return  # being written: leave it for the next read
        yield RawLine(line_no + 1, start, offset, line_no + lines, raw.rstrip(b"\r\n"))
        line_no += lines


def csv_reason(error: csv.Error) -> RejectReason:
    """Why the csv module refused a line: a field over its limit, or a shape it cannot read (a bare CR)."""
    return RejectReason.field_too_large if "field larger than field limit" in str(error) else RejectReason.columns


def nul_rejection(line: RawLine, encoding: str = "utf-8") -> RejectedRow:
    """A line holding NUL bytes, with each run of them shown by its length in the excerpt."""
    text = line.data.decode(encoding, errors="backslashreplace")
    return RejectedRow(line.line_no, RejectReason.nul_bytes,
                       redact(_NUL_RUN.sub(lambda run: f"<{len(run.group())} NUL>", text)))
