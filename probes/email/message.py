"""Turn the raw bytes of a mailbox message into the facts classification and matching need.

Pure code, no I/O.  `parse_message` reads what the mailbox watcher fetched
(often only the headers and a bounded prefix of the body, so messages are
routinely truncated) and returns a frozen `ParsedMessage`: identifiers,
decoded subject and addresses, the auto-reply headers, a plain-text body
prefix, and for delivery / disposition reports the fields inside them and the
embedded original message.

Success means: any input at all — hostile, broken, truncated, in any charset
— gives a `ParsedMessage` and never an exception; what cannot be read is left
empty.  Header and body text is only ever decoded, never evaluated.

Identifiers (Message-IDs, References, addr-specs) are kept losslessly
(`lossless`): raw UTF-8 (legal since RFC 6532) is decoded, and bytes that are
no UTF-8 are written `\\xNN` (a backslash doubled), so every value is valid
text that can be stored, hashed into the event chain and compared, and the
original bytes can be read back from it (`original_bytes`).
"""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from html import unescape

from flufl.bounce import all_failures

# The watcher fetches a bounded prefix; anything bigger handed to us is cut here
# so that one huge message cannot stall the mailbox loop.
MAX_RAW_BYTES = 256 * 1024
# A single header value longer than this is hostile or broken; the rest is dropped.
MAX_HEADER_CHARS = 16384
# Message-IDs kept from References: the newest ones are the ones that matter.
MAX_REFERENCES = 100
# MIME trees deeper or wider than this are not worth walking (and could be a bomb).
MAX_DEPTH = 10
MAX_PARTS = 200
# Bytes of a part's content read per character of body wanted: multi-byte
# charsets need up to 4, HTML markup many more.
RAW_PER_TEXT_CHAR = 4
RAW_PER_HTML_CHAR = 16

# Local parts used by mail systems (not people) when they write to a sender.
MAIL_SYSTEM_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "maildaemon", "postmaster", "mdaemon", "mailer"}
)

# Codecs that are text encodings to Python but either not charsets at all or
# too slow on hostile input: their labels are treated as unknown.
_REFUSED_CODECS = frozenset({"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"})
# Labels that mail clients (Outlook above all) put on windows-1252 text; the
# WHATWG encoding standard decodes them as windows-1252 for the same reason,
# so that ’ « » — € written by Windows users survive.
_WINDOWS_1252_SUPERSETS = frozenset({"ascii", "iso8859-1", "latin-1"})
_UNDECLARED_FALLBACK = "cp1252"


@dataclass(frozen=True)
class AutoHeaders:
    """Headers that mark a message as machine-sent (RFC 3834, vendors, lists), decoded and stripped."""

    auto_submitted: str = ""
    x_autoreply: str = ""
    x_autorespond: str = ""
    precedence: str = ""
    x_auto_response_suppress: str = ""
    x_ms_exchange_inbox_rules_loop: str = ""
    list_id: str = ""
    list_unsubscribe: str = ""
    return_path: str = ""
    x_failed_recipients: str = ""
    spam_flag: str = ""  # X-Spam-Flag (SpamAssassin), else the start of X-Spam-Status


@dataclass(frozen=True)
class DeliveryStatus:
    """One per-recipient block of a DSN (RFC 3464), values lower-cased except `diagnostic`."""

    final_recipient: str = ""
    original_recipient: str = ""
    action: str = ""  # failed | delayed | delivered | relayed | expanded
    status: str = ""  # enhanced status code, e.g. "5.1.1"
    diagnostic: str = ""


@dataclass(frozen=True)
class Disposition:
    """The machine-readable part of an MDN (RFC 8098)."""

    original_message_id: str = ""
    final_recipient: str = ""
    disposition: str = ""


@dataclass(frozen=True)
class HeuristicBounce:
    """Addresses that flufl.bounce's detectors report as failing, lower-cased."""

    temporary: tuple[str, ...] = ()
    permanent: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedMessage:
    """What one mailbox message says about itself.  Addresses are lower-cased addr-specs;
    Message-IDs are kept without their angle brackets (see `normalize_message_id`)."""

    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    subject: str = ""
    from_addr: str = ""
    from_name: str = ""
    reply_to: tuple[str, ...] = ()
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    # Delivered-To / X-Original-To / Envelope-To: where the mailbox really got it.
    delivered_to: tuple[str, ...] = ()
    date: datetime | None = None
    content_type: str = ""  # lower-case "type/subtype" of the top level
    # "delivery-status" or "disposition-notification" when the message is (or
    # contains) such a report, from the report-type parameter or the parts seen.
    report_type: str = ""
    headers: AutoHeaders = field(default_factory=AutoHeaders)
    body: str = ""  # plain-text prefix, at most body_limit characters
    delivery_status: tuple[DeliveryStatus, ...] = ()
    disposition: Disposition | None = None
    # The message a report (or a forward as attachment) carries, parsed without
    # its own `original`.  Often only its headers (text/rfc822-headers).
    original: ParsedMessage | None = None
    # Only computed for messages sent by a mail system (see `_may_be_bounce`).
    heuristic_bounce: HeuristicBounce | None = None

    @property
    def from_mail_system(self) -> bool:
        """True when a mail server, not a person, wrote this (MAILER-DAEMON, postmaster, null sender)."""
        local = self.from_addr.split("@", 1)[0]
        return local in MAIL_SYSTEM_LOCAL_PARTS or self.headers.return_path.replace(" ", "") == "<>"

    @property
    def is_list_mail(self) -> bool:
        """True for mail sent to a list (newsletters, discussion lists)."""
        precedence = self.headers.precedence.lower()
        return bool(self.headers.list_id or self.headers.list_unsubscribe) or precedence.startswith("list")


EMPTY = ParsedMessage()


# --------------------------------------------------------------------------- entry point


def parse_message(raw: bytes, body_limit: int = 16384) -> ParsedMessage:
    """Parse raw message bytes (possibly truncated) into a `ParsedMessage`; never raises."""
    tree = _parse_tree(_as_bytes(raw)[:MAX_RAW_BYTES])
    if tree is None:
        return EMPTY
    # The watcher must never stop on one message: if reading the reports or
    # the embedded original fails on some unforeseen shape, keep the rest.
    for with_extras in (True, False):
        with suppress(Exception):
            return _from_tree(tree, max(0, body_limit), with_extras=with_extras)
    return EMPTY


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    if isinstance(raw, (bytearray, memoryview)):
        return bytes(raw)
    return b""


def _parse_tree(data: bytes) -> Message | None:
    # compat32 is the most forgiving policy: it records defects instead of
    # raising when a header is malformed.  A pathological MIME tree can still
    # make the parser recurse too deep; then the headers alone are better than nothing.
    for parser in (BytesParser(policy=compat32), BytesHeaderParser(policy=compat32)):
        with suppress(Exception):
            return parser.parsebytes(data)
    return None


def _from_tree(tree: Message, body_limit: int, with_extras: bool) -> ParsedMessage:
    headers = _Headers(tree)
    parts = _Parts.collect(tree)
    content_type = _content_type(tree)
    from_name, from_addr = headers.first_address("from")
    message = ParsedMessage(
        message_id=_first(_message_ids(headers.get("message-id"))),
        in_reply_to=_message_ids(headers.get("in-reply-to")),
        references=_message_ids(headers.get("references"))[-MAX_REFERENCES:],
        subject=_one_line(headers.text("subject")),
        from_addr=from_addr,
        from_name=from_name,
        reply_to=headers.addresses("reply-to"),
        to=headers.addresses("to"),
        cc=headers.addresses("cc"),
        delivered_to=headers.addresses("delivered-to", "x-original-to", "envelope-to"),
        date=_date(headers.get("date")),
        content_type=content_type,
        report_type=_report_type(tree, content_type, parts),
        headers=_auto_headers(headers),
        body=_body_text(parts, body_limit),
        delivery_status=_delivery_status(parts) if with_extras else (),
        disposition=_disposition(parts) if with_extras else None,
        original=_original(parts, body_limit) if with_extras else None,
    )
    if with_extras and not parts.overflow and _may_be_bounce(message):
        message = replace(message, heuristic_bounce=_heuristic_bounce(tree))
    return message


def _first(values: tuple[str, ...]) -> str:
    return values[0] if values else ""


# --------------------------------------------------------------------------- text decoding


def _codec(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None when unknown or refused."""
    if not charset:
        return None
    label = charset.strip().strip('"').split("*", 1)[0].lower()  # RFC 2231 "utf-8*fr"
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    if name in _REFUSED_CODECS or name.replace("_", "-") in _REFUSED_CODECS:
        return None
    return _UNDECLARED_FALLBACK if name in _WINDOWS_1252_SUPERSETS else name


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes in a declared charset; undeclared text is tried as UTF-8, then windows-1252.

    An unknown charset decodes as UTF-8 with U+FFFD for what does not fit:
    readable when the label was merely misspelt, never an exception.
    """
    codec = _codec(charset)
    if codec is not None:
        try:
            return data.decode(codec, "replace")
        except Exception:  # noqa: BLE001 - not a text codec after all ("base64", "zlib"…)
            return data.decode("utf-8", "replace")
    if charset:
        return data.decode("utf-8", "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode(_UNDECLARED_FALLBACK, "replace")


def lossless(text: str) -> str:
    """Header bytes (as the parser hands them: surrogate-escaped) as valid text, without losing any byte.

    Valid UTF-8 is decoded; a byte that is no UTF-8, and a control character (NUL, which databases
    refuse, included), is written `\\xNN`; a backslash is doubled.  `original_bytes` reverses it."""
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    data = _raw_to_bytes(text)
    out: list[str] = []
    while data:
        try:
            out.append(_escaped(data.decode("utf-8")))
            break
        except UnicodeDecodeError as exc:
            out.append(_escaped(data[:exc.start].decode("utf-8")))
            out.extend(f"\\x{byte:02x}" for byte in data[exc.start:exc.end])
            data = data[exc.end:]
    return "".join(out)


def _escaped(text: str) -> str:
    return "".join("\\\\" if c == "\\" else f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
                   for c in text)


_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def original_bytes(text: str) -> bytes:
    """The bytes `lossless` was given, read back from its text."""
    parts: list[bytes] = []
    position = 0
    for match in _ESCAPE.finditer(text):
        parts.append(text[position:match.start()].encode("utf-8"))
        token = match.group(1)
        parts.append(b"\\" if token == "\\" else bytes([int(token[1:], 16)]))
        position = match.end()
    parts.append(text[position:].encode("utf-8"))
    return b"".join(parts)


def _raw_to_bytes(text: str) -> bytes:
    # The parser read the bytes as ASCII with surrogateescape; this gives the bytes back.
    return text.encode("utf-8", "surrogateescape")


def _decode_raw(text: str) -> str:
    """Decode a header fragment that was not RFC 2047 encoded (8-bit bytes sent as-is)."""
    if text.isascii():
        return text
    return decode_text(_raw_to_bytes(text))


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([BbQq])\?([^?\s]*)\?=")
_FOLDING = re.compile(r"\r?\n(?=[ \t])")


def decode_header_value(value: str) -> str:
    """Decode RFC 2047 encoded words (B or Q, any charset) and raw 8-bit bytes in a header value.

    Adjacent encoded words in the same charset are joined before decoding,
    because some mailers split a multi-byte character across two of them.
    """
    value = _FOLDING.sub("", value[:MAX_HEADER_CHARS])
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []  # consecutive encoded words not yet decoded
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        if not (pending and between.strip(" \t\r\n") == ""):
            _flush(pending, out)
            out.append(_decode_raw(between))
        charset, encoding, payload = match.groups()
        chunk = _b_decode(payload) if encoding in "Bb" else _q_decode(payload)
        if pending and pending[-1][0] == charset.lower():
            pending[-1] = (pending[-1][0], pending[-1][1] + chunk)
        else:
            pending.append((charset.lower(), chunk))
        position = match.end()
    _flush(pending, out)
    out.append(_decode_raw(value[position:]))
    return "".join(out)


def _flush(pending: list[tuple[str, bytes]], out: list[str]) -> None:
    out.extend(decode_text(chunk, charset) for charset, chunk in pending)
    pending.clear()


def _b_decode(payload: str) -> bytes:
    data = re.sub(r"[^A-Za-z0-9+/]", "", payload)
    data = data[: len(data) - len(data) % 4 if len(data) % 4 == 1 else len(data)]
    try:
        return binascii.a2b_base64(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return b""


def _q_decode(payload: str) -> bytes:
    try:
        return binascii.a2b_qp(_raw_to_bytes(payload), header=True)
    except (binascii.Error, ValueError):
        return _raw_to_bytes(payload)


def _one_line(text: str) -> str:
    """Control characters (tabs and newlines included) as single spaces: they only hide things from humans."""
    return " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in text).split())


def fold(text: str) -> str:
    """Text for comparing with patterns: lower case, no accents, typographic apostrophes made plain."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("\u2019", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --------------------------------------------------------------------------- headers


class _Headers:
    """Case-insensitive access to raw header values (first occurrence wins for single values)."""

    def __init__(self, tree: Message):
        self._values: dict[str, list[str]] = {}
        try:
            items = list(tree.raw_items())
        except Exception:  # noqa: BLE001
            items = []
        for name, value in items:
            if isinstance(name, str) and isinstance(value, str):
                self._values.setdefault(name.strip().lower(), []).append(value[:MAX_HEADER_CHARS])

    def first_values(self) -> dict[str, str]:
        return {name: values[0] for name, values in self._values.items()}

    def get(self, name: str) -> str:
        values = self._values.get(name)
        return values[0] if values else ""

    def all(self, *names: str) -> list[str]:
        return [value for name in names for value in self._values.get(name, [])]

    def text(self, name: str) -> str:
        return decode_header_value(self.get(name)).strip()

    def addresses(self, *names: str) -> tuple[str, ...]:
        return tuple(addr for _, addr in _addresses(self.all(*names)) if addr)

    def first_address(self, name: str) -> tuple[str, str]:
        found = _addresses([self.get(name)]) if self.get(name) else []
        return found[0] if found else ("", "")


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(decoded display name, lower-case addr-spec) pairs; the raw value is split before
    decoding so that an encoded comma in a display name cannot split an address."""
    try:
        pairs = getaddresses([_FOLDING.sub("", value) for value in values])
    except Exception:  # noqa: BLE001
        return []
    result = []
    for name, addr in pairs:
        address = lossless(addr).strip().strip("<>").lower()
        result.append((_one_line(decode_header_value(name)), address))
    return result


_MESSAGE_ID = re.compile(r"<([^<>\s]{1,998})>")


def normalize_message_id(value: str) -> str:
    """The comparable form of a Message-ID: no surrounding angle brackets or blanks."""
    return value.strip().strip("<>").strip()


def _message_ids(value: str) -> tuple[str, ...]:
    found = _MESSAGE_ID.findall(value)
    if found:
        return tuple(lossless(found_id) for found_id in found)
    # Some broken clients omit the brackets; a single bare id is still usable.
    bare = value.strip()
    if bare and "@" in bare and not any(c.isspace() for c in bare):
        return (lossless(bare),)
    return ()


def _date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(_decode_raw(value).strip())
    except Exception:  # noqa: BLE001 - ValueError, TypeError, IndexError, OverflowError…
        return None
    if parsed is None:
        return None
    # RFC 5322 "-0000" and zone-less dates are UTC without a known local zone.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _auto_headers(headers: _Headers) -> AutoHeaders:
    def text(name: str) -> str:
        return headers.text(name)[:256]

    return AutoHeaders(
        auto_submitted=text("auto-submitted"),
        x_autoreply=text("x-autoreply"),
        x_autorespond=text("x-autorespond"),
        precedence=text("precedence"),
        x_auto_response_suppress=text("x-auto-response-suppress"),
        x_ms_exchange_inbox_rules_loop=text("x-ms-exchange-inbox-rules-loop"),
        list_id=text("list-id"),
        list_unsubscribe=text("list-unsubscribe"),
        return_path=text("return-path"),
        x_failed_recipients=text("x-failed-recipients"),
        spam_flag=text("x-spam-flag") or text("x-spam-status")[:8],
    )


def _content_type(part: Message) -> str:
    try:
        return str(part.get_content_type()).lower()
    except Exception:  # noqa: BLE001
        return "text/plain"


def _param(part: Message, name: str) -> str:
    try:
        value = part.get_param(name)
        if value is None:
            return ""
        return str(collapse_rfc2231_value(value)).strip().lower()
    except Exception:  # noqa: BLE001
        return ""


def _charset(part: Message) -> str | None:
    return _param(part, "charset") or None


# --------------------------------------------------------------------------- MIME parts


_REPORT_PARTS = {
    "message/delivery-status": "delivery-status",
    "message/global-delivery-status": "delivery-status",
    "message/disposition-notification": "disposition-notification",
    "message/global-disposition-notification": "disposition-notification",
}
_EMBEDDED_MESSAGES = frozenset({"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"})


@dataclass
class _Parts:
    """The leaf parts of a message that matter, found by an iterative, bounded walk."""

    plain: list[Message] = field(default_factory=list)
    html: list[Message] = field(default_factory=list)
    reports: list[tuple[str, Message]] = field(default_factory=list)
    embedded: list[Message] = field(default_factory=list)

    # True when the walk stopped at MAX_PARTS or MAX_DEPTH: a shape no mail
    # system produces, and too big to hand to the bounce detectors.
    overflow: bool = False

    @classmethod
    def collect(cls, tree: Message) -> _Parts:
        parts = cls()
        leaves, parts.overflow = _walk(tree)
        for part, content_type in leaves:
            parts._add(part, content_type)
        return parts

    def _add(self, part: Message, content_type: str) -> None:
        if content_type in _REPORT_PARTS:
            self.reports.append((content_type, part))
        elif content_type in _EMBEDDED_MESSAGES:
            self.embedded.append(part)
        elif _is_attachment(part):
            return
        elif content_type == "text/html":
            self.html.append(part)
        elif content_type.startswith(("text/", "multipart/")):
            # A multipart without usable boundary arrives as one text blob; read it as text.
            self.plain.append(part)


def _walk(tree: Message) -> tuple[list[tuple[Message, str]], bool]:
    """The leaf parts with their content types, and whether the walk had to stop early."""
    # Our own walk: Message.walk() recurses without bound and descends into
    # message/* parts, whose contents belong to the embedded message, not to this one.
    stack: list[tuple[Message, int]] = [(tree, 0)]
    leaves: list[tuple[Message, str]] = []
    seen = 0
    overflow = False
    while stack and seen < MAX_PARTS:
        part, depth = stack.pop()
        seen += 1
        content_type = _content_type(part)
        payload = _payload(part)
        if content_type.startswith("multipart/") and isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            overflow = overflow or (depth >= MAX_DEPTH and bool(children))
            if depth < MAX_DEPTH:
                stack.extend((child, depth + 1) for child in reversed(children))
            continue
        leaves.append((part, content_type))
    return leaves, overflow or bool(stack)


def _payload(part: Message) -> object:
    try:
        return part.get_payload()
    except Exception:  # noqa: BLE001
        return ""


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "") or "")
    return disposition.strip().lower().startswith("attachment")


def _report_type(tree: Message, content_type: str, parts: _Parts) -> str:
    if content_type == "multipart/report":
        declared = _param(tree, "report-type")
        if declared in ("delivery-status", "disposition-notification"):
            return declared
    return _REPORT_PARTS[parts.reports[0][0]] if parts.reports else ""


# --------------------------------------------------------------------------- body


def _body_text(parts: _Parts, limit: int) -> str:
    """Inline text/plain parts joined; the HTML parts stripped of tags only when no plain part exists."""
    if limit <= 0:
        return ""
    texts = [_part_text(part, limit * RAW_PER_TEXT_CHAR) for part in parts.plain]
    if not any(text.strip() for text in texts):
        texts = [html_to_text(_part_text(part, limit * RAW_PER_HTML_CHAR)) for part in parts.html]
    return "\n".join(text for text in texts if text)[:limit]


def _part_text(part: Message, max_bytes: int) -> str:
    """The decoded text of one leaf part, from at most max_bytes of its transfer-decoded content."""
    return decode_text(_leaf_bytes(part)[:max_bytes], _charset(part)).replace("\r\n", "\n")


def _leaf_bytes(part: Message) -> bytes:
    # get_payload(decode=True) undoes base64 / quoted-printable and, unlike
    # get_payload(), gives 8-bit bytes back untouched instead of replacing them.
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        return b""
    return data if isinstance(data, bytes) else b""


# HTML is stripped with linear scans, not html.parser: HTMLParser is quadratic on
# some broken markup (a run of unclosed attributes takes minutes on 200 KB).
_BLOCK_TAG = re.compile(r"<\s*/?\s*(?:br|p|div|tr|li|blockquote|h[1-6]|hr|table)\b[^<>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^<>]*>")
_INVISIBLE_ELEMENTS = ("script", "style", "head", "title")


def html_to_text(html: str) -> str:
    """Visible text of an HTML fragment, entities decoded; linear in the input, tolerant of any breakage."""
    html = _drop_between(html, "<!--", "-->")
    for name in _INVISIBLE_ELEMENTS:
        html = _drop_element(html, name)
    text = unescape(_TAG.sub("", _BLOCK_TAG.sub("\n", html)))
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


def _drop_between(text: str, opening: str, closing: str) -> str:
    """Remove every `opening … closing` span (to the end when it never closes)."""
    kept: list[str] = []
    position = 0
    while (start := text.find(opening, position)) != -1:
        kept.append(text[position:start])
        end = text.find(closing, start + len(opening))
        position = len(text) if end == -1 else end + len(closing)
    kept.append(text[position:])
    return "".join(kept)


def _drop_element(html: str, name: str) -> str:
    """Remove `<name …> … </name>` elements, case-insensitively (to the end when never closed)."""
    lower = html.lower()
    kept: list[str] = []
    position = 0
    while (start := lower.find("<" + name, position)) != -1:
        after = lower[start + 1 + len(name) : start + 2 + len(name)]
        if after and (after.isalnum() or after in "-_:"):  # <header>, <style-x>: another tag
            kept.append(html[position : start + 1])
            position = start + 1
            continue
        kept.append(html[position:start])
        end = lower.find("</" + name, start)
        close = lower.find(">", end) if end != -1 else -1
        position = len(html) if close == -1 else close + 1
    kept.append(html[position:])
    return "".join(kept)


# --------------------------------------------------------------------------- reports


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The header-like blocks of a report part, whichever way the parser represented them."""
    payload = _payload(part)
    if isinstance(payload, list):
        return [_block_of(child) for child in payload if isinstance(child, Message)]
    if isinstance(payload, str):
        text = decode_text(_leaf_bytes(part)[:MAX_HEADER_CHARS])
        return [_parse_block(block) for block in re.split(r"\r?\n[ \t]*\r?\n", text) if block.strip()]
    return []


def _block_of(message: Message) -> dict[str, str]:
    return {name: decode_header_value(value).strip() for name, value in _Headers(message).first_values().items()}


def _parse_block(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    last = ""
    for line in block.splitlines():
        if line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            last = name.strip().lower()
            fields.setdefault(last, value.strip())
    return fields


def _typed_address(value: str) -> str:
    """'rfc822; Contact.MVH@example.org' → 'contact.mvh@example.org'."""
    address = value.split(";", 1)[1] if ";" in value else value
    return address.strip().strip("<>").strip().lower()


def _delivery_status(parts: _Parts) -> tuple[DeliveryStatus, ...]:
    found: list[DeliveryStatus] = []
    for kind, part in parts.reports:
        if _REPORT_PARTS[kind] != "delivery-status":
            continue
        for block in _field_blocks(part):
            if any(key in block for key in ("final-recipient", "original-recipient", "action", "status")):
                found.append(_status_of(block))
    return tuple(found)


def _status_of(block: dict[str, str]) -> DeliveryStatus:
    status = re.search(r"[245]\.\d{1,3}\.\d{1,3}", block.get("status", ""))
    return DeliveryStatus(
        final_recipient=_typed_address(block.get("final-recipient", "")),
        original_recipient=_typed_address(block.get("original-recipient", "")),
        action=block.get("action", "").strip().lower().split(" ", 1)[0],
        status=status.group(0) if status else "",
        diagnostic=block.get("diagnostic-code", "")[:1000],
    )


def _disposition(parts: _Parts) -> Disposition | None:
    for kind, part in parts.reports:
        if _REPORT_PARTS[kind] != "disposition-notification":
            continue
        fields: dict[str, str] = {}
        for block in _field_blocks(part):
            fields.update({k: v for k, v in block.items() if k not in fields})
        return Disposition(
            original_message_id=_first(_message_ids(fields.get("original-message-id", ""))),
            final_recipient=_typed_address(fields.get("final-recipient", "")),
            disposition=fields.get("disposition", "").strip().lower(),
        )
    return None


def _original(parts: _Parts, body_limit: int) -> ParsedMessage | None:
    for part in parts.embedded:
        payload = _payload(part)
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return _from_tree(payload[0], body_limit, with_extras=False)
        if isinstance(payload, str):
            tree = _parse_tree(_leaf_bytes(part))
            if tree is not None:
                return _from_tree(tree, body_limit, with_extras=False)
    return None


# --------------------------------------------------------------------------- heuristic bounces


def _may_be_bounce(message: ParsedMessage) -> bool:
    # flufl.bounce's detectors take milliseconds per message and some read
    # free text, where a person's words could look like a bounce: they only
    # run on what a mail system sent.
    return (
        message.from_mail_system
        or bool(message.headers.x_failed_recipients)
        or message.content_type == "multipart/report"
    )


def _heuristic_bounce(tree: Message) -> HeuristicBounce:
    try:
        temporary, permanent = all_failures(tree)
    except Exception:  # noqa: BLE001 - a detector choking on a broken message finds nothing
        return HeuristicBounce()
    return HeuristicBounce(temporary=_address_list(temporary), permanent=_address_list(permanent))


def _address_list(found: object) -> tuple[str, ...]:
    addresses = set()
    for item in found if isinstance(found, (set, frozenset, list, tuple)) else ():
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        addresses.add(text.strip().strip("<>").lower())
    return tuple(sorted(address for address in addresses if address))
