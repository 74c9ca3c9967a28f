"""SIP messages as values: parse bytes into requests/responses and build them back.

Pure code, no I/O.  Only what a calling user agent needs from RFC 3261 §7/§20:
start lines, headers (case-insensitive, compact forms expanded, folded lines
joined), bodies delimited by Content-Length, and the small grammars of the
headers the caller reads (URIs, name-addr, Via, CSeq).  A stream framer cuts
a TCP byte stream into messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

COMPACT_NAMES = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "o": "Event",
    "r": "Refer-To",
}
CANONICAL_NAMES = {
    name.lower(): name
    for name in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
        "Max-Forwards", "Route", "Record-Route", "WWW-Authenticate", "Proxy-Authenticate",
        "Authorization", "Proxy-Authorization", "Expires", "User-Agent", "Allow", "Supported",
        "Subject", "Content-Encoding", "Event", "Refer-To", "Server", "Min-Expires", "Retry-After",
        "Reason", "Warning", "Require", "Unsupported",
    )
}
# Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
LIST_HEADERS = frozenset({"via", "route", "record-route", "contact", "allow", "supported", "require"})
MAX_MESSAGE_BYTES = 65_535


class SipParseError(ValueError):
    """The bytes are not a SIP message this parser accepts."""


def canonical_name(name: str) -> str:
    name = name.strip()
    lower = name.lower()
    if lower in COMPACT_NAMES:
        return COMPACT_NAMES[lower]
    return CANONICAL_NAMES.get(lower, name)


@dataclass(frozen=True)
class Headers:
    """Ordered (name, value) pairs; lookups ignore case and compact forms."""

    items: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        wanted = canonical_name(name).lower()
        return next((v for n, v in self.items if n.lower() == wanted), None)

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, list headers split into their entries."""
        wanted = canonical_name(name).lower()
        values = [v for n, v in self.items if n.lower() == wanted]
        if wanted in LIST_HEADERS:
            return [part for v in values for part in split_list(v)]
        return values

    def without(self, name: str) -> Headers:
        wanted = canonical_name(name).lower()
        return Headers(tuple((n, v) for n, v in self.items if n.lower() != wanted))

    def replaced(self, name: str, value: str) -> Headers:
        """`name` set to a single `value`, in place of the first occurrence (or appended)."""
        wanted = canonical_name(name).lower()
        out: list[tuple[str, str]] = []
        placed = False
        for n, v in self.items:
            if n.lower() != wanted:
                out.append((n, v))
            elif not placed:
                out.append((canonical_name(name), value))
                placed = True
        if not placed:
            out.append((canonical_name(name), value))
        return Headers(tuple(out))


@dataclass(frozen=True)
class SipRequest:
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"


@dataclass(frozen=True)
class SipResponse:
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"


SipMessage = SipRequest | SipResponse


def header(message: SipMessage, name: str) -> str | None:
    return message.headers.get(name)


def to_bytes(message: SipMessage) -> bytes:
    """Serialise, writing a Content-Length that matches the body."""
    headers = message.headers.replaced("Content-Length", str(len(message.body)))
    lines = [message.start_line(), *(f"{n}: {v}" for n, v in headers.items)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + message.body


def build_request(method: str, uri: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> SipRequest:
    return SipRequest(method, uri, Headers(tuple(headers)), body)


# --------------------------------------------------------------------------
# parsing


_STATUS_LINE = re.compile(r"^SIP/2\.0\s+(\d{3})\s*(.*)$")
_REQUEST_LINE = re.compile(r"^([A-Za-z]+)\s+(\S+)\s+SIP/2\.0$")


def parse_message(data: bytes) -> SipMessage:
    """One whole message (a UDP datagram, or a frame cut by `StreamFramer`)."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes is larger than {MAX_MESSAGE_BYTES}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    if not sep:
        raise SipParseError("no blank line after the headers")
    lines = head.decode("utf-8", errors="replace").lstrip("\r\n").splitlines()
    if not lines:
        raise SipParseError("empty message")
    headers = Headers(tuple(_parse_header_lines(lines[1:])))
    body = _body(headers, body)
    status = _STATUS_LINE.match(lines[0].strip())
    if status:
        return SipResponse(int(status.group(1)), status.group(2).strip(), headers, body)
    request = _REQUEST_LINE.match(lines[0].strip())
    if request:
        return SipRequest(request.group(1).upper(), request.group(2), headers, body)
    raise SipParseError(f"not a SIP start line: {lines[0][:80]!r}")


def _parse_header_lines(lines: list[str]) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and result:
            # Folded continuation line (RFC 3261 §7.3.1): joined with one space.
            name, value = result[-1]
            result[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipParseError(f"not a header line: {line[:80]!r}")
        result.append((canonical_name(name), value.strip()))
    return result


def _body(headers: Headers, rest: bytes) -> bytes:
    declared = headers.get("Content-Length")
    if declared is None:
        return rest  # datagram: the body is whatever follows
    try:
        length = int(declared)
    except ValueError:
        raise SipParseError(f"Content-Length {declared!r} is not a number") from None
    if length < 0 or length > len(rest):
        raise SipParseError(f"Content-Length {length} but {len(rest)} body bytes")
    return rest[:length]


class StreamFramer:
    """Cut a TCP byte stream into whole messages using Content-Length (RFC 3261 §18.3)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while (frame := self._next_frame()) is not None:
            frames.append(frame)
        return frames

    def _next_frame(self) -> bytes | None:
        # Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are not messages.
        while self._buffer[:2] == b"\r\n":
            del self._buffer[:2]
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                raise SipParseError("header block too large on the stream")
            return None
        head = bytes(self._buffer[:end]).decode("utf-8", errors="replace")
        length = _stream_content_length(head)
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        frame = bytes(self._buffer[:total])
        del self._buffer[:total]
        return frame


def _stream_content_length(head: str) -> int:
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if canonical_name(name) == "Content-Length":
            try:
                return int(value.strip())
            except ValueError:
                raise SipParseError(f"Content-Length {value.strip()!r} is not a number") from None
    raise SipParseError("a message on a stream transport needs a Content-Length")


# --------------------------------------------------------------------------
# small header grammars


def split_list(value: str) -> list[str]:
    """Split 'a, <b,c>, "x,y" <d>' on the commas that separate entries."""
    parts: list[str] = []
    depth_angle = 0
    quoted = False
    start = 0
    for i, char in enumerate(value):
        if char == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "<":
            depth_angle += 1
        elif not quoted and char == ">":
            depth_angle = max(0, depth_angle - 1)
        elif char == "," and not quoted and depth_angle == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


def parse_params(text: str) -> dict[str, str]:
    """';a=1;lr;b="x"' -> {'a': '1', 'lr': '', 'b': 'x'} (names lowercased)."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return params


@dataclass(frozen=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        return self.params.get("transport", "udp").lower()

    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


_URI = re.compile(r"^(sips?):(?:([^@]*)@)?(\[[^\]]+\]|[^:;?]+)(?::(\d+))?([^?]*)")


def parse_uri(text: str) -> SipUri:
    match = _URI.match(text.strip())
    if not match:
        raise SipParseError(f"not a SIP URI: {text!r}")
    scheme, user, host, port, params = match.groups()
    user = user.split(":", 1)[0] if user else None  # never keep a password written in a URI
    return SipUri(scheme.lower(), user, host.strip("[]"), int(port) if port else None, parse_params(params))


@dataclass(frozen=True)
class NameAddr:
    """A From/To/Contact/Route value: display name, URI and the header's own parameters."""

    display: str
    uri: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")


def parse_name_addr(value: str) -> NameAddr:
    value = value.strip()
    open_at = value.find("<")
    if open_at >= 0:
        close_at = value.find(">", open_at)
        if close_at < 0:
            raise SipParseError(f"unclosed '<' in {value!r}")
        display = value[:open_at].strip().strip('"')
        return NameAddr(display, value[open_at + 1 : close_at].strip(), parse_params(value[close_at + 1 :]))
    # addr-spec without brackets: parameters after the URI belong to the header
    uri, _, params = value.partition(";")
    return NameAddr("", uri.strip(), parse_params(params))


def with_tag(value: str, tag: str) -> str:
    """A From/To value with a tag parameter added (or replaced)."""
    addr = parse_name_addr(value)
    params = {**addr.params, "tag": tag}
    display = f'"{addr.display}" ' if addr.display else ""
    return f"{display}<{addr.uri}>" + "".join(f";{k}={v}" if v else f";{k}" for k, v in params.items())


@dataclass(frozen=True)
class Via:
    transport: str
    sent_by: str
    params: dict[str, str]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")


def parse_via(value: str) -> Via:
    protocol, _, rest = value.strip().partition(" ")
    parts = protocol.split("/")
    if len(parts) != 3 or parts[0].upper() != "SIP":
        raise SipParseError(f"not a Via value: {value!r}")
    sent_by, _, params = rest.strip().partition(";")
    return Via(parts[2].upper(), sent_by.strip(), parse_params(params))


def top_via_branch(message: SipMessage) -> str | None:
    vias = message.headers.get_all("Via")
    return parse_via(vias[0]).branch if vias else None


def parse_cseq(value: str) -> tuple[int, str]:
    number, _, method = value.strip().partition(" ")
    try:
        return int(number), method.strip().upper()
    except ValueError:
        raise SipParseError(f"not a CSeq value: {value!r}") from None


def cseq_of(message: SipMessage) -> tuple[int, str]:
    value = message.headers.get("CSeq")
    if value is None:
        raise SipParseError("no CSeq header")
    return parse_cseq(value)


def response_to(request: SipRequest, status: int, reason: str, *, to_tag: str | None = None) -> SipResponse:
    """A response that copies the request's Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2)."""
    copied: list[tuple[str, str]] = []
    for name, value in request.headers.items:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            copied.append((name, value))
        elif name == "To":
            has_tag = parse_name_addr(value).tag is not None
            copied.append((name, with_tag(value, to_tag) if to_tag and not has_tag else value))
    return SipResponse(status, reason, Headers(tuple(copied)))


def redacted(message: SipMessage, names: Iterable[str], mask: str) -> SipMessage:
    """A copy with the values of `names` replaced by `mask` (credentials in evidence)."""
    hidden = {canonical_name(n).lower() for n in names}
    items = tuple((n, mask if n.lower() in hidden else v) for n, v in message.headers.items)
    return replace(message, headers=Headers(items))
