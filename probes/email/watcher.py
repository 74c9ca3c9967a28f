"""What every mailbox watcher (IMAP, Maildir) hands to the email pipeline, and the rules they share.

A watcher reads the mystery user's mailbox and awaits `handle(FetchedMessage)`
once for each new message, oldest first (IMAP UID order; Maildir delivery
order).  It runs until cancelled.  Success means: every message that lands in
the mailbox reaches `handle` at least once, even across crashes, restarts,
server outages and a reset UIDVALIDITY, and nothing in the mailbox is changed
(no flag set, no file renamed, nothing moved or deleted) — a human may read
the same mailbox with their own client.

Delivery is **at least once**.  The watcher's cursor (a `Cursor` row named
`imap:<mailbox>` or `maildir:<mailbox>` in the store) moves past a message
only after `handle` has returned for it, so a crash re-delivers the messages
handled since the last saved cursor (at most one fetch batch).  A rescan
after a UIDVALIDITY change re-delivers a whole window on purpose.  **The
consumer must deduplicate** (by Message-ID, falling back to a digest of the
raw bytes).

When `handle` raises, the message is retried `max_attempts` times in all
(default 3, waiting `retry_delay`, then twice that, ...); after the last
attempt it is logged (mailbox, uid and exception type only — never the
content), counted in `WatcherStats.poisoned`, and skipped, so one bad message
cannot stop the mailbox.  A `StoreUnavailable` from `handle` is different:
the database is down, not the message bad, so the watcher waits (capped
backoff) and retries the same message without counting an attempt, for as
long as it takes (the host raises it for every database outage); so do
`OSError`s, as judged by `RetryPolicy.is_outage` (replaceable).

Status goes to `on_status(up, detail)`: `up=False` whenever the mailbox
cannot be read (connection refused, login refused, connection lost ...),
`up=True` once it can again and after each successful check, so the callback
can also stamp the "last success" time (`qualimon_mailbox_up`,
`qualimon_mailbox_last_success_timestamp_seconds`, `/healthz`).  Details
never contain the password.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from monitor.clock import Clock, SystemClock
from monitor.kinds import CursorStore
from monitor.store.records import Cursor, StoreUnavailable

if TYPE_CHECKING:
    from monitor.config.models import Mailbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedMessage:
    """One message read from a mailbox: enough for classification and matching, no more.

    `raw` is the full header block plus a bounded prefix of the body
    (`truncated` says whether the rest was left out).  `received_at` is when
    the mailbox got it: the IMAP INTERNALDATE, or the Maildir file's time.
    """

    source: str                # the mailbox's config name, e.g. "mystery"
    uid: int | str             # IMAP UID, or the Maildir file's unique key
    raw: bytes
    received_at: datetime      # aware, UTC
    truncated: bool
    uidvalidity: int | None = None   # IMAP: the folder's, so that the UID can be fetched again safely
    # Reads the whole message again where it is (keep: bytes to keep) on the watcher's own connection:
    # (kept bytes, whole size, SHA-256), None when it is gone.  None: read it some other way.
    reread: Callable[[int], Awaitable[tuple[bytes, int, str] | None]] | None = field(
        default=None, compare=False, repr=False)

    @property
    def location(self) -> str:
        """Where the message is in its mailbox: `imap:<uidvalidity>:<uid>` or `maildir:<file key>`."""
        if self.uidvalidity is not None:
            return f"imap:{self.uidvalidity}:{self.uid}"
        return f"maildir:{self.uid}" if isinstance(self.uid, str) else f"uid:{self.uid}"


Handler = Callable[[FetchedMessage], Awaitable[object]]   # whatever it returns is ignored
StatusCallback = Callable[[bool, str], None]


def ignore_status(up: bool, detail: str) -> None:
    """The default status callback: the watcher still logs every change."""


def report_status(callback: StatusCallback, mailbox: str, up: bool, detail: str) -> None:
    """Call the status callback; its failure is logged, never allowed to stop the watcher."""
    try:
        callback(up, detail)
    except Exception as exc:  # noqa: BLE001 - a broken health hook must not stop mail from being read
        log.error("mailbox %s: status callback failed (%s)", mailbox, type(exc).__name__)


class Watcher(Protocol):
    name: str
    stats: WatcherStats

    async def run(self, handle: Handler) -> None:
        """Hand every new message to `handle`, in order, until cancelled."""
        ...


@dataclass
class WatcherStats:
    """Counters a watcher keeps in memory (for logs, tests and whoever wants metrics)."""

    delivered: int = 0          # handle returned
    poisoned: int = 0           # skipped after max_attempts failures of handle
    handler_errors: int = 0     # every failed attempt, poisoned or not
    reconnects: int = 0         # sessions lost and opened again
    last_success: datetime | None = None
    poisoned_uids: list[int | str] = field(default_factory=list)   # the last few, newest last


def is_store_outage(exc: BaseException) -> bool:
    """True when `handle` failed because the database (or the network) is down, not because of the message.
    The host turns database outages into `StoreUnavailable`; any other database error is the message's."""
    return isinstance(exc, (StoreUnavailable, OSError, TimeoutError))


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    retry_delay: float = 1.0          # before the 2nd attempt; doubles after each failure
    store_backoff_max: float = 60.0   # cap of the wait while the store is unavailable
    is_outage: Callable[[BaseException], bool] = is_store_outage

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


class Backoff:
    """Capped exponential backoff with jitter, so many monitors do not reconnect in step.

    Each delay is drawn from [d/2, d] where d = initial × 2^n capped at `maximum`
    ("equal jitter": never a hot loop, never longer than the cap).
    """

    def __init__(self, initial: float = 1.0, maximum: float = 60.0, rng: random.Random | None = None):
        if initial <= 0 or maximum < initial:
            raise ValueError("need 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2 ** min(self.failures, 32))
        self.failures += 1
        return ceiling / 2 + self._rng.random() * ceiling / 2

    def reset(self) -> None:
        self.failures = 0


_POISON_MEMORY = 20


async def deliver(handle: Handler, message: FetchedMessage, policy: RetryPolicy, stats: WatcherStats) -> bool:
    """Await `handle(message)` under the retry policy; False when the message was given up on."""
    failures = 0
    outage = Backoff(policy.retry_delay, max(policy.retry_delay, policy.store_backoff_max))
    while True:
        try:
            await handle(message)
        except Exception as exc:  # noqa: BLE001 - any handler bug must not stop the mailbox
            if policy.is_outage(exc):
                # Not this message's fault: wait for the database without counting an attempt.
                delay = outage.next_delay()
                log.warning("mailbox %s: store unavailable while handling uid %s (%s); retrying in %.1f s",
                            message.source, message.uid, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                continue
            failures += 1
            stats.handler_errors += 1
            if failures >= policy.max_attempts:
                _give_up(message, exc, failures, stats)
                return False
            log.warning("mailbox %s: handling uid %s failed (%s, attempt %d of %d)", message.source,
                        message.uid, type(exc).__name__, failures, policy.max_attempts)
            await asyncio.sleep(policy.retry_delay * 2 ** (failures - 1))
            continue
        stats.delivered += 1
        return True


def _give_up(message: FetchedMessage, exc: Exception, attempts: int, stats: WatcherStats) -> None:
    stats.poisoned += 1
    stats.poisoned_uids = [*stats.poisoned_uids, message.uid][-_POISON_MEMORY:]
    # Type and uid only: the exception text may quote the message, which is not ours to log.
    log.error("mailbox %s: skipping uid %s after %d failed attempts (last: %s)",
              message.source, message.uid, attempts, type(exc).__name__)


class CursorKeeper:
    """Loads and saves one watcher's cursor; a failed save is retried at the next one, never fatal."""

    def __init__(self, store: CursorStore, name: str, clock: Clock):
        self.store = store
        self.name = name
        self.clock = clock
        self.saved: Cursor | None = None

    async def load(self, backoff: Backoff) -> Cursor | None:
        """The persisted cursor; waits (with backoff) while the store cannot be read."""
        while True:
            try:
                self.saved = await self.store.cursor(self.name)
                return self.saved
            except Exception as exc:  # noqa: BLE001 - any database error: wait and retry
                delay = backoff.next_delay()
                log.warning("cursor %s: store unavailable (%s); retrying in %.1f s",
                            self.name, type(exc).__name__, delay)
                await asyncio.sleep(delay)

    async def save(self, cursor: Cursor) -> bool:
        if cursor == self.saved:
            return True
        try:
            await self.store.save_cursor(cursor)
        except Exception as exc:  # noqa: BLE001 - worst case a restart re-delivers; keep reading
            log.warning("cursor %s: could not save (%s); will retry", self.name, type(exc).__name__)
            return False
        self.saved = cursor
        return True


def make_watcher(name: str, mailbox: Mailbox, store: CursorStore, *, on_status: StatusCallback = ignore_status,
                 clock: Clock | None = None, **options: Any) -> Watcher:
    """The watcher a `mailboxes.<name>` config entry asks for (IMAP or Maildir)."""
    clock = clock or SystemClock()
    if mailbox.imap is not None:
        from probes.email.imap.watcher import ImapWatcher

        return ImapWatcher(name, mailbox.imap, store, on_status=on_status, clock=clock, **options)
    assert mailbox.maildir is not None  # the config model guarantees one of the two
    from probes.email.maildir_watch import MaildirWatcher

    return MaildirWatcher(name, mailbox.maildir, store, on_status=on_status, clock=clock, **options)
