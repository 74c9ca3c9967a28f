"""Pure IMAP values: responses in (EXAMINE, SEARCH, FETCH, INTERNALDATE), command arguments out.

No I/O: each function takes what aioimaplib hands over (lines as bytes, a
literal's payload as bytearray) and returns plain values, or formats a UID
set, a folder name (modified UTF-7) or a SEARCH date.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

from probes.email.watcher import FetchedMessage


class ImapFailure(Exception):
    """The server refused something we need (login, EXAMINE, SEARCH, FETCH) or broke the protocol."""


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int | None


def parse_examine(lines: Sequence[bytes]) -> FolderState:
    text = b"\n".join(bytes(line) for line in lines)
    validity = re.search(rb"\[UIDVALIDITY (\d+)\]", text)
    if validity is None:
        raise ImapFailure("the server sent no UIDVALIDITY for the folder")
    uidnext = re.search(rb"\[UIDNEXT (\d+)\]", text)
    exists = re.search(rb"(?m)^(\d+) EXISTS", text)
    return FolderState(int(validity.group(1)), int(uidnext.group(1)) if uidnext else None,
                       int(exists.group(1)) if exists else None)


def parse_search(lines: Sequence[bytes]) -> list[int]:
    """UIDs from a SEARCH answer (aioimaplib hands the numbers without the `* SEARCH` prefix)."""
    uids: list[int] = []
    for line in lines[:-1]:  # the last line is the tagged completion text
        uids.extend(int(word) for word in bytes(line).split() if word.isdigit())
    return sorted(set(uids))


_TOKEN = re.compile(
    rb'\s*(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>(?:[^"\\]|\\.)*)"|\{(?P<literal>\d+)\+?\}'
    rb'|(?P<atom>[^\s()"{\[\]]+(?:\[[^\]]*\](?:<\d+>)?)?))'
)
_FETCH_START = re.compile(rb"^(\d+) FETCH \(")
_Token = tuple[str, Any]


def _tokens(segments: Sequence[bytes | bytearray]) -> Iterator[_Token]:
    for segment in segments:
        if type(segment) is not bytes:
            yield "value", bytes(segment)  # a literal's payload
            continue
        for match in _TOKEN.finditer(segment):
            kind = match.lastgroup
            if kind == "quoted":
                yield "value", re.sub(rb"\\(.)", rb"\1", match.group("quoted"))
            elif kind == "atom":
                atom = match.group("atom")
                yield ("value", None) if atom.upper() == b"NIL" else ("atom", atom)
            elif kind in ("open", "close"):
                yield kind, None
            # a literal's {size} marker: its payload is the next segment


def _fetch_items(segments: Sequence[bytes | bytearray]) -> dict[str, Any]:
    """The `KEY value` pairs of one `N FETCH (...)` answer; nested lists (FLAGS) are dropped."""
    items: dict[str, Any] = {}
    stream = _tokens(segments)
    for kind, _ in stream:       # skip "N FETCH" up to the opening parenthesis
        if kind == "open":
            break
    key: str | None = None
    depth = 0
    for kind, value in stream:
        if depth:
            depth += {"open": 1, "close": -1}.get(kind, 0)
        elif kind == "close":
            break
        elif key is None:
            key = value.decode("ascii", "replace").upper() if kind == "atom" else None
        elif kind == "open":
            depth, key = 1, None
        else:
            items[key] = value
            key = None
    return items


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[dict[str, Any]]:
    """Each message of a FETCH answer as a dict of items (`UID`, `INTERNALDATE`, `BODY[HEADER]` ...)."""
    messages: list[list[bytes | bytearray]] = []
    for line in lines[:-1]:  # the last line is the tagged completion text
        if type(line) is bytes and _FETCH_START.match(line):
            messages.append([line])
        elif messages:
            messages[-1].append(line)
    return [_fetch_items(segments) for segments in messages]


_MONTHS = {m.encode(): i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], start=1)}
_INTERNALDATE = re.compile(rb"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")


def parse_internaldate(value: bytes) -> datetime:
    """`26-Nov-2026 19:31:20 +0100` as an aware UTC datetime (no locale involved)."""
    match = _INTERNALDATE.match(value)
    if match is None or match.group(2).title() not in _MONTHS:
        raise ValueError(f"not an IMAP date-time: {value[:40]!r}")
    day, month, year, hour, minute, second = (int(match.group(1)), _MONTHS[match.group(2).title()],
                                               *map(int, match.group(3, 4, 5, 6)))
    offset = timedelta(hours=int(match.group(8)), minutes=int(match.group(9)))
    zone = timezone(-offset if match.group(7) == b"-" else offset)
    return datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)


def to_message(source: str, items: dict[str, Any], fallback_time: datetime) -> FetchedMessage | None:
    """A FetchedMessage from one FETCH answer; None for answers without a body (unsolicited FLAGS)."""
    header: bytes | None = items.get("BODY[HEADER]")
    full: bytes | None = items.get("BODY[]")
    if "UID" not in items:
        return None
    if full is not None:
        raw = full
    elif header is not None:
        raw = header + (items.get("BODY[TEXT]<0>") or b"")
    else:
        return None
    size = int(items.get("RFC822.SIZE") or len(raw))
    try:
        received = parse_internaldate(items["INTERNALDATE"])
    except (KeyError, TypeError, ValueError):
        received = fallback_time  # a server that sends no or a broken INTERNALDATE: when we saw it
    return FetchedMessage(source, int(items["UID"]), bytes(raw), received, size > len(raw))


def uid_set(uids: Sequence[int]) -> str:
    """`1:3,7,9:10` for sorted UIDs: short FETCH commands even for a 200-message batch."""
    ranges: list[str] = []
    start = previous = uids[0]
    for uid in [*uids[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        ranges.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(ranges)


def mailbox_name(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).decode().rstrip("=")
            out.append("&" + encoded.replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return aioimaplib.quoted("".join(out))


def imap_date(day: date) -> str:
    return f"{day.day}-{list(_MONTHS)[day.month - 1].decode()}-{day.year}"
