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
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

from monitor.clock import Clock, SystemClock
from monitor.config.models import ImapConfig
from monitor.kinds import CursorStore
from monitor.store.records import Cursor
from probes.email.imap.lookup import read_whole
from probes.email.imap.parse import FolderState, ImapFailure, to_message
from probes.email.imap.session import FETCH_ITEMS, FULL_ITEMS, ImapSession
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

BODY_PREFIX = 16_384
BATCH_SIZE = 200
IDLE_RENEW_SECONDS = 25 * 60.0    # RFC 2177: servers may drop an IDLE after 30 min


def _rereader(session: ImapSession, uid: int) -> Callable[[int], Awaitable[tuple[bytes, int, str] | None]]:
    """Reads message `uid` whole on the watcher's own connection (no new login per answer)."""
    async def reread(keep: int) -> tuple[bytes, int, str] | None:
        return await read_whole(session, uid, keep)

    return reread


def chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
            for message in self._messages(fetched, session):
                await deliver(handle, message, self.retry, self.stats)
                position.last_uid = max(position.last_uid, int(message.uid))
            # Expunged between SEARCH and FETCH: nothing to deliver, but no reason to search them again.
            position.last_uid = max(position.last_uid, batch[-1])
            await self._keeper.save(self._cursor())
        if position.since is not None:
            # The window is done: everything that existed when it was decided has been considered.
            position.last_uid, position.since = max(position.last_uid, position.floor), None
            await self._keeper.save(self._cursor())

    def _messages(self, fetched: list[dict[str, Any]], session: ImapSession | None = None) -> list[FetchedMessage]:
        now = self.clock.now()
        validity = self._position.uidvalidity if self._position is not None else None
        messages = [replace(m, uidvalidity=validity, reread=_rereader(session, int(m.uid)) if session else None)
                    for m in (to_message(self.name, items, now) for items in fetched) if m is not None]
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
