"""Watch the mystery mailbox over IMAP (aioimaplib): IDLE when offered, polling otherwise.

`ImapWatcher.run(handle)` logs in (implicit TLS, or plain text on loopback
for tests), opens the folder read-only (EXAMINE: no flag can change, \\Recent
is not claimed), and hands each message with a UID above its cursor to
`handle`, in UID order, in fetch batches of `batch_size`.  Then it waits in
IDLE (re-issued every `idle_renew_seconds`, under the 29-minute limit of
RFC 2177) or polls every `poll_seconds` when the server does not offer IDLE
or the config says `idle: false`, and fetches again whenever the server
announces a new message.  It only ever reads: FETCH uses BODY.PEEK, so
\\Seen is never set, and nothing is moved or deleted.

What it fetches is what matching and classification need: UID,
INTERNALDATE, RFC822.SIZE, the whole header block and the first
`body_prefix` bytes (16 KiB) of the body; `truncated` says whether more
existed.

The cursor (`imap:<mailbox>`: UIDVALIDITY + last handled UID) is persisted
through the store after each batch (see `probes.email.watcher` for the
at-least-once contract).  Where reading starts:

- first start (no cursor): from the folder's UIDNEXT, i.e. only messages that
  arrive from now on (probes are sent by this monitor, so earlier mail cannot
  answer them); with `first_start_days=N`, every message of the last N days;
  the starting point is saved at once, so a restart cannot skip mail that
  arrived in between;
- a UIDVALIDITY different from the cursor's (folder recreated, server
  migrated): every message of the last `rescan_days` (default 30) is
  delivered again, and the consumer deduplicates — nothing is lost;
- otherwise: every UID above the cursor's.

Any connection problem (refused, TLS, login refused, timeout, connection
lost, server BYE) reports `up=False` to `on_status`, waits with capped
exponential backoff and jitter (`backoff_initial` doubling to
`backoff_max`, 60 s), and starts again from the cursor; `up=True` comes back
once logged in and after each successful check.  The password (a SecretStr)
is never logged nor put in a status detail.

aioimaplib 2.0.3 has two defects that a backlog hits, worked around in
`_Protocol`: it parses a response by recursing once per line (a FETCH answer
of ~1 000 small messages raises RecursionError inside `data_received`, the
transport is dropped and the command hangs), and it rescans the whole FETCH
response at every line (quadratic).  It also ignores untagged EXISTS that
arrive during a command; `_Protocol` notes them so a message that lands
between a search and IDLE is not left waiting for the next one.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]
from aioimaplib.aioimaplib import (  # type: ignore[import-untyped]
    CRLF,
    SELECTED,
    Command,
    FetchCommand,
    IMAP4ClientProtocol,
    IncompleteRead,
    Response,
    change_state,
    literal_data_re,
)

from monitor.clock import Clock, SystemClock
from monitor.config.models import ImapConfig
from monitor.store.records import Cursor
from monitor.kinds import CursorStore
from probes.email.watcher import (
    Backoff,
    CursorKeeper,
    FetchedMessage,
    Handler,
    RetryPolicy,
    StatusCallback,
    WatcherStats,
    deliver,
    ignore_status,
    report_status,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

BODY_PREFIX = 16_384
BATCH_SIZE = 200
IDLE_RENEW_SECONDS = 25 * 60.0    # RFC 2177: servers may drop an IDLE after 30 min


class ImapFailure(Exception):
    """The server refused something we need (login, EXAMINE, SEARCH, FETCH) or broke the protocol."""


class ConnectionLost(ImapFailure):
    pass


# ---------------------------------------------------------------------------
# aioimaplib, made fit for a read-only watcher


class _LinearFetch(FetchCommand):
    """A FETCH that knows whether a message's parentheses are closed without rescanning the response."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._depth = 0

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if type(line) is bytes:  # literals arrive as bytearray and may hold any parenthesis
            if self.FETCH_MESSAGE_DATA_RE.match(line):
                self._depth = 0
            self._depth += line.count(b"(") - line.count(b")")

    def wait_data(self) -> bool:
        return self._depth != 0


class _Protocol(IMAP4ClientProtocol):
    """aioimaplib's protocol plus EXAMINE, EXISTS/BYE tracking, TCP keepalive and a flat response parser."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn_lost_cb: Any = None):
        super().__init__(loop, conn_lost_cb)
        self.changed = asyncio.Event()    # the server announced EXISTS since the last clear()
        self.bye: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _keepalive(sock)

    @change_state
    async def examine(self, mailbox: str) -> Response:
        # aioimaplib only treats SELECT as entering the selected state; EXAMINE is its read-only twin.
        response = await self.execute(Command("EXAMINE", self.new_tag(), mailbox, loop=self.loop))
        if response.result == "OK":
            self.state = SELECTED
        return response

    async def fetch(self, message_set: str, message_parts: str, by_uid: bool = False,
                    timeout: float | None = None) -> Response:
        return await self.execute(_LinearFetch(self.new_tag(), message_set, message_parts,
                                               prefix="UID" if by_uid else "", loop=self.loop, timeout=timeout))

    def _untagged_response(self, line: bytes) -> Command:
        if line.endswith(b" EXISTS"):
            self.changed.set()
        elif line.startswith(b"* BYE"):
            self.bye = line[5:].strip().decode("utf-8", "replace")
        return super()._untagged_response(line)

    def _handle_responses(self, data: bytes, line_handler: Any, current_cmd: Command | None = None) -> None:
        """aioimaplib's parser as a loop over offsets: no recursion per line, no copy of the tail per line."""
        pos = 0
        while True:
            if pos >= len(data):
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                wanted = current_cmd._expected_size - len(current_cmd._resp_literal_data)
                current_cmd.append_literal_data(data[pos:pos + wanted])
                pos += wanted
                if current_cmd.wait_literal_data():
                    raise IncompleteRead(current_cmd)
                continue
            end = data.find(CRLF, pos)
            if end < 0:
                raise IncompleteRead(current_cmd, data[pos:])
            line = data[pos:end]
            pos = end + 2
            cmd = line_handler(line, current_cmd)
            literal = literal_data_re.match(line)
            if literal:
                if cmd is None:
                    cmd = Command("NIL", "unused")
                cmd.begin_literal_data(int(literal.group("size")))
                current_cmd = cmd
            elif cmd is not None and cmd.wait_data():
                current_cmd = cmd
            else:
                current_cmd = None


def _keepalive(sock: socket.socket) -> None:
    """Notice a peer that vanished silently (NAT timeout, pulled cable) within ~2 min, even in IDLE."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class _Client(aioimaplib.IMAP4):
    protocol: _Protocol

    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop | None,
                      conn_lost_cb: Any = None, ssl_context: ssl.SSLContext | None = None) -> None:
        running = asyncio.get_running_loop()
        self.protocol = _Protocol(running, conn_lost_cb)
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))


# ---------------------------------------------------------------------------
# Pure helpers: responses in, values out


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


def chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---------------------------------------------------------------------------
# One IMAP session


FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{prefix}>)"
FULL_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"


class ImapSession:
    """One logged-in connection with the folder EXAMINEd; every call fails fast when the connection drops."""

    def __init__(self, client: _Client, lost: asyncio.Event, secret: str):
        self.client = client
        self.lost = lost
        self._secret = secret
        self.idle_supported = False

    @classmethod
    async def open(cls, config: ImapConfig, *, ssl_context: ssl.SSLContext | None = None) -> ImapSession:
        lost = asyncio.Event()
        context = None
        if config.tls == "implicit":
            context = ssl_context or config.ssl_context()  # ca_file, when the config names one
        client = _Client(host=config.host, port=config.port_or_default(), timeout=config.timeout_seconds,
                         conn_lost_cb=lambda exc: lost.set(), ssl_context=context)
        secret = config.password.get_secret_value() if config.password else ""
        session = cls(client, lost, secret)
        try:
            await session._login(config)
        except BaseException:
            session.abort()
            raise
        return session

    async def _login(self, config: ImapConfig) -> None:
        await self._call(self.client.wait_hello_from_server(), "greeting")
        response = await self._call(self.client.login(config.username or "", self._secret), "login")
        self._check(response, "login refused")
        # Capabilities may change after login (RFC 3501 §6.2.3): ask again rather than trust the banner's.
        await self._call(self.client.protocol.capability(), "capability")
        self.idle_supported = self.client.has_capability("IDLE")

    async def examine(self, folder: str) -> FolderState:
        response = await self._call(self.client.protocol.examine(mailbox_name(folder)), "examine")
        self._check(response, f"cannot open folder {folder!r}")
        return parse_examine(response.lines)

    async def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always includes the highest UID, even below n: filter.
        return [u for u in await self.search("UID", f"{last_uid + 1}:*") if u > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        return await self.search("SINCE", imap_date(day))

    async def highest_uid(self) -> int:
        return max(await self.search("UID", "*"), default=0)

    async def search(self, *criteria: str) -> list[int]:
        response = await self._call(self.client.uid_search(*criteria, charset=None), "search")
        self._check(response, "search refused")
        return parse_search(response.lines)

    async def fetch(self, uids: Sequence[int], items: str) -> list[dict[str, Any]]:
        response = await self._call(self.client.uid("fetch", uid_set(uids), items), "fetch")
        self._check(response, "fetch refused")
        return parse_fetch(response.lines)

    async def wait_for_change(self, seconds: float, use_idle: bool) -> None:
        """Return once the server announced new mail (IDLE) or after `seconds`."""
        changed = self.client.protocol.changed
        if not use_idle:
            await self._until(changed.wait(), seconds)
            await self._call(self.client.noop(), "noop")  # lets the server report what arrived
            return
        idle = await self._call(self.client.idle_start(timeout=seconds * 2 + 60), "idle")
        try:
            await self._until(changed.wait(), seconds)
        finally:
            if not self.lost.is_set():
                self.client.idle_done()
        self._check(await self._call(idle, "idle"), "idle refused")
        _drain(self.client.protocol.idle_queue)  # aioimaplib queues IDLE pushes we read as `changed`

    async def _until(self, waiting: Awaitable[Any], seconds: float) -> None:
        try:
            await self._call(asyncio.wait_for(waiting, seconds), "wait")
        except TimeoutError:
            pass

    async def _call(self, awaitable: Awaitable[T], what: str) -> T:
        """Await a command, or raise ConnectionLost as soon as the connection drops."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise ConnectionLost(self._lost_reason(what))
        try:
            return task.result()
        except aioimaplib.CommandTimeout:
            raise ImapFailure(f"{what} timed out") from None
        except aioimaplib.AioImapException as exc:
            # Some aioimaplib messages quote the pending command, LOGIN and its password included.
            raise ImapFailure(self._scrub(f"{what} failed: {exc}")) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _lost_reason(self, what: str) -> str:
        bye = self.client.protocol.bye
        return f"connection lost during {what}" + (f" (server said BYE: {bye})" if bye else "")

    def _check(self, response: Response, what: str) -> None:
        if response.result != "OK":
            text = b" ".join(bytes(line) for line in response.lines[-1:]).decode("utf-8", "replace")
            raise ImapFailure(f"{what}: {response.result} {text}".strip())

    def abort(self) -> None:
        """Drop the connection (a watcher being stopped or giving up on a broken session)."""
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()
        for task in list(self.client.tasks) + list(self.client.protocol.tasks):
            task.cancel()
        if not self.client._client_task.done():
            self.client._client_task.cancel()


def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()


# ---------------------------------------------------------------------------
# The watcher


@dataclass
class _Position:
    uidvalidity: int
    last_uid: int
    since: date | None = None      # a window to (re)scan before following UIDs: first start, new UIDVALIDITY
    floor: int = 0                 # UIDNEXT-1 when the window was decided: everything below was considered


class ImapWatcher:
    """Watches one IMAP folder; see the module docstring for the contract."""

    def __init__(self, name: str, config: ImapConfig, store: CursorStore, *,
                 on_status: StatusCallback = ignore_status, clock: Clock | None = None,
                 first_start_days: float | None = None, rescan_days: float = 30.0,
                 batch_size: int = BATCH_SIZE, body_prefix: int = BODY_PREFIX,
                 retry: RetryPolicy | None = None, backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 idle_renew_seconds: float = IDLE_RENEW_SECONDS, fetch_full: bool = False,
                 ssl_context: ssl.SSLContext | None = None):
        if batch_size < 1 or body_prefix < 0:
            raise ValueError("batch_size must be >= 1 and body_prefix >= 0")
        self.name = name
        self.config = config
        self.on_status = on_status
        self.clock = clock or SystemClock()
        self.first_start_days = first_start_days
        self.rescan_days = rescan_days
        self.batch_size = batch_size
        # `fetch_full` fetches whole messages: the naive baseline of the benchmark, nothing else.
        self.items = FULL_ITEMS if fetch_full else FETCH_ITEMS.format(prefix=body_prefix)
        self.retry = retry or RetryPolicy()
        self.backoff = Backoff(backoff_initial, backoff_max)
        self.idle_renew_seconds = idle_renew_seconds
        self.ssl_context = ssl_context
        self.stats = WatcherStats()
        self.cursor_name = f"imap:{name}"
        self._keeper = CursorKeeper(store, self.cursor_name, self.clock)
        self._position: _Position | None = None
        self._up: bool | None = None

    @property
    def secret(self) -> str:
        return self.config.password.get_secret_value() if self.config.password else ""

    async def run(self, handle: Handler) -> None:
        saved = await self._keeper.load(Backoff(self.backoff.initial, self.backoff.maximum))
        if saved is not None and saved.uidvalidity is not None and saved.last_uid is not None:
            self._position = _Position(saved.uidvalidity, saved.last_uid)
        try:
            while True:
                await self._one_session(handle)
        finally:
            await self._save_on_exit()

    async def _one_session(self, handle: Handler) -> None:
        """Read until the connection fails, then wait out the backoff (the caller loops)."""
        session: ImapSession | None = None
        try:
            session = await ImapSession.open(self.config, ssl_context=self.ssl_context)
            await self._follow(session, handle)
        except Exception as exc:  # noqa: BLE001 - whatever broke, the mailbox must come back
            failure = exc
        finally:
            if session is not None:
                session.abort()
        delay = self.backoff.next_delay()
        self.stats.reconnects += 1
        self._report(False, f"{self._describe(failure)}; retrying in {delay:.1f} s")
        await asyncio.sleep(delay)

    async def _follow(self, session: ImapSession, handle: Handler) -> None:
        folder = await session.examine(self.config.folder)
        position = await self._start(session, folder)
        use_idle = self.config.idle and session.idle_supported
        mode = "IDLE" if use_idle else f"polling every {self.config.poll_seconds:g} s"
        wait = self.idle_renew_seconds if use_idle else self.config.poll_seconds
        changed = session.client.protocol.changed
        self._report(True, f"{self.config.folder} on {self.config.host}: connected, catching up")
        while True:
            changed.clear()
            await self._sync(session, position, handle)
            self.backoff.reset()
            self.stats.last_success = self.clock.now()
            self._report(True, f"{self.config.folder} on {self.config.host}: {mode}")
            if not changed.is_set():  # nothing arrived while we were fetching
                await session.wait_for_change(wait, use_idle)

    async def _start(self, session: ImapSession, folder: FolderState) -> _Position:
        """Where to read from on this connection: the cursor, or a window when there is none / it is stale."""
        known = self._position
        if known is not None and known.uidvalidity == folder.uidvalidity:
            return known
        floor = folder.uidnext - 1 if folder.uidnext is not None else await session.highest_uid()
        if known is None and self.first_start_days is None:
            self._position = _Position(folder.uidvalidity, floor)
            log.info("mailbox %s: first start, reading messages from UID %d on", self.name, floor + 1)
            await self._keeper.save(self._cursor())
            return self._position
        days = self.rescan_days if known is not None else self.first_start_days
        assert days is not None
        since = (self.clock.now() - timedelta(days=days)).date()
        if known is not None:
            log.warning("mailbox %s: UIDVALIDITY changed from %d to %d; delivering again every message "
                        "since %s", self.name, known.uidvalidity, folder.uidvalidity, since)
        self._position = _Position(folder.uidvalidity, 0, since=since, floor=floor)
        return self._position

    async def _sync(self, session: ImapSession, position: _Position, handle: Handler) -> None:
        if position.since is not None:
            uids = [u for u in await session.uids_since(position.since) if u > position.last_uid]
        else:
            uids = await session.uids_after(position.last_uid)
        for batch in chunks(uids, self.batch_size):
            fetched = await session.fetch(batch, self.items)
            for message in self._messages(fetched):
                await deliver(handle, message, self.retry, self.stats)
                position.last_uid = max(position.last_uid, int(message.uid))
            # Expunged between SEARCH and FETCH: nothing to deliver, but no reason to search them again.
            position.last_uid = max(position.last_uid, batch[-1])
            await self._keeper.save(self._cursor())
        if position.since is not None:
            # The window is done: everything that existed when it was decided has been considered.
            position.last_uid, position.since = max(position.last_uid, position.floor), None
            await self._keeper.save(self._cursor())

    def _messages(self, fetched: list[dict[str, Any]]) -> list[FetchedMessage]:
        now = self.clock.now()
        messages = [m for m in (to_message(self.name, items, now) for items in fetched) if m is not None]
        return sorted(messages, key=lambda m: int(m.uid))

    def _cursor(self) -> Cursor:
        assert self._position is not None
        return Cursor(self.cursor_name, self._position.uidvalidity, self._position.last_uid)

    async def _save_on_exit(self) -> None:
        if self._position is None or self._position.since is not None:
            return  # nothing read yet, or a window half done: the saved cursor restarts it
        try:
            await asyncio.wait_for(asyncio.shield(self._keeper.save(self._cursor())), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            pass  # a restart re-delivers the last batch; the consumer deduplicates

    def _report(self, up: bool, detail: str) -> None:
        detail = self._scrub(detail)
        if up != self._up:
            if up:
                log.info("mailbox %s: up (%s)", self.name, detail)
            else:
                log.warning("mailbox %s: down: %s", self.name, detail)
        self._up = up
        report_status(self.on_status, self.name, up, detail)

    def _describe(self, exc: BaseException) -> str:
        where = f"{self.config.host}:{self.config.port_or_default()}"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(exc, socket.gaierror):
            return f"cannot resolve {self.config.host}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS with {where} failed: {exc.reason or exc}"
        if isinstance(exc, (TimeoutError, aioimaplib.CommandTimeout)):
            return f"{where} timed out"
        if isinstance(exc, ImapFailure):
            return f"{where}: {exc}"
        if isinstance(exc, OSError):
            return f"{where}: {exc.strerror or type(exc).__name__}"
        return f"{where}: {type(exc).__name__}: {exc}"

    def _scrub(self, text: str) -> str:
        # aioimaplib quotes its LOGIN command (password included) in some of its own error messages.
        secret = self.secret
        return text.replace(secret, "***") if secret else text


# ---------------------------------------------------------------------------
# One-off lookup (crash recovery of the sender)


async def find_by_message_id(config: ImapConfig, message_id: str, *,
                             ssl_context: ssl.SSLContext | None = None) -> tuple[datetime, bytes] | None:
    """(INTERNALDATE, whole message) of the newest message in the folder with this Message-ID, or None.

    Read-only like the watcher (EXAMINE, BODY.PEEK).  Used after a crash to find
    the blind copy of a probe we may or may not have sent.  Connection errors
    propagate (the caller cannot conclude "not sent" from an unreachable server).
    """
    wanted = _bare_message_id(message_id)
    if not wanted:
        return None
    session = await ImapSession.open(config, ssl_context=ssl_context)
    try:
        await session.examine(config.folder)
        # HEADER search is a substring match: confirm each candidate, newest first.
        for uid in reversed(await session.search("HEADER", "Message-ID", aioimaplib.quoted(wanted))):
            for items in await session.fetch([uid], FULL_ITEMS):
                found = to_message("lookup", items, datetime.now(UTC))
                if found is not None and _bare_message_id(_header(found.raw, "Message-ID")) == wanted:
                    return found.received_at, found.raw
        return None
    finally:
        session.abort()


def _bare_message_id(value: str | None) -> str:
    return (value or "").strip().strip("<>").strip().lower()


def _header(raw: bytes, name: str) -> str | None:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    value = parsed.get(name)
    return str(value) if value is not None else None
