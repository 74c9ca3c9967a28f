"""Watch a Maildir (a monitor on the mail host, and the demo) with the same contract as the IMAP watcher.

`MaildirWatcher.run(handle)` lists `new/` and `cur/` every `poll_seconds`
and hands each message it has not handled yet to `handle`, oldest first (by
the file's modification time, i.e. its delivery).  It never renames, moves,
deletes or touches a file: a human's mail client may own the same Maildir,
and moving a message from `new/` to `cur/` or changing its flags (which
renames it) does not make it new again, because a message is known by the
unique part of its file name (before `:2,`), which those renames keep.

`raw` is the header block plus the first `body_prefix` bytes (16 KiB) of the
body, as over IMAP; `received_at` is the file's mtime (when the delivery
agent wrote it).  A file that disappears between the listing and the reading
is skipped without error; if it was only renamed, the next listing finds it.

The cursor (`maildir:<mailbox>`) keeps, in `position`, a 64-bit digest of
the key of every handled message still present in the Maildir: 8 bytes per
message (a 10 000-message mailbox: 80 KB), pruned as messages are deleted.
It is saved after each batch of `batch_size` messages (see
`probes.email.watcher` for the at-least-once contract).  First start: every
message already there counts as handled (the same policy as IMAP), unless
`first_start_days=N` asks for the last N days.  A Maildir that cannot be
listed reports `up=False` to `on_status` until it can be listed again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.clock import Clock, SystemClock
from monitor.kinds import CursorStore
from monitor.store.records import Cursor
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
SUBDIRS = ("new", "cur")
_INFO = re.compile(r"[:;!]2,")      # the flags suffix; ':' normally, ';' or '!' where ':' is not allowed
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def message_key(filename: str) -> str:
    """The unique part of a Maildir file name: stable when a client moves it to cur/ or sets flags."""
    return _INFO.split(filename, maxsplit=1)[0]


def key_digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()


def pack_digests(digests: Iterable[bytes]) -> str:
    return base64.b64encode(b"".join(sorted(digests))).decode("ascii")


def unpack_digests(text: str) -> set[bytes]:
    packed = base64.b64decode(text)
    return {packed[i:i + 8] for i in range(0, len(packed) - len(packed) % 8, 8)}


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path


def list_maildir(root: Path) -> dict[str, Path]:
    """Every message file in new/ and cur/ by key (a message caught mid-rename may show twice: one wins)."""
    found: dict[str, Path] = {}
    for sub in SUBDIRS:
        with os.scandir(root / sub) as entries:
            for entry in entries:
                if not entry.name.startswith("."):
                    found[message_key(entry.name)] = Path(entry.path)
    return found


def read_message(source: str, entry: Entry, body_prefix: int) -> FetchedMessage | None:
    """The header and a body prefix of one file; None when it vanished before we could open it."""
    try:
        with open(entry.path, "rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read(256 * 1024 + body_prefix)
    except (FileNotFoundError, NotADirectoryError):
        return None
    end = _HEADER_END.search(data)
    keep = end.end() + body_prefix if end else len(data)   # no blank line: all header, or not mail at all
    raw = data[:keep]
    received = datetime.fromtimestamp(stat.st_mtime_ns / 1e9, UTC)
    return FetchedMessage(source, entry.key, raw, received, stat.st_size > len(raw))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


class MaildirWatcher:
    """Watches one Maildir; see the module docstring for the contract."""

    def __init__(self, name: str, path: str | Path, store: CursorStore, *,
                 on_status: StatusCallback = ignore_status, clock: Clock | None = None,
                 poll_seconds: float = 2.0, first_start_days: float | None = None,
                 body_prefix: int = BODY_PREFIX, batch_size: int = BATCH_SIZE, retry: RetryPolicy | None = None):
        if poll_seconds <= 0 or batch_size < 1 or body_prefix < 0:
            raise ValueError("poll_seconds must be > 0, batch_size >= 1 and body_prefix >= 0")
        self.name = name
        self.path = Path(path)
        self.on_status = on_status
        self.clock = clock or SystemClock()
        self.poll_seconds = poll_seconds
        self.first_start_days = first_start_days
        self.body_prefix = body_prefix
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.stats = WatcherStats()
        self.cursor_name = f"maildir:{name}"
        self._keeper = CursorKeeper(store, self.cursor_name, self.clock)
        self._seen: set[bytes] | None = None
        self._present: set[bytes] = set()
        self._up: bool | None = None

    async def run(self, handle: Handler) -> None:
        saved = await self._keeper.load(Backoff(self.poll_seconds, 60.0))
        if saved is not None and saved.position is not None:
            self._seen = unpack_digests(saved.position.get("seen", ""))
        try:
            while True:
                await self._check(handle)
                await asyncio.sleep(self.poll_seconds)
        finally:
            await self._save_on_exit()

    async def _check(self, handle: Handler) -> None:
        try:
            listing = await asyncio.to_thread(list_maildir, self.path)
        except OSError as exc:
            self._report(False, f"cannot list Maildir {self.path}: {exc.strerror or type(exc).__name__}")
            return
        self._present = {key_digest(key) for key in listing}
        if self._seen is None:
            self._seen = await self._first_start(listing)
        fresh = [Entry(key, path) for key, path in listing.items() if key_digest(key) not in self._seen]
        await self._deliver_all(await asyncio.to_thread(_oldest_first, fresh), handle)
        self.stats.last_success = self.clock.now()
        self._report(True, f"Maildir {self.path}: polling every {self.poll_seconds:g} s")

    async def _first_start(self, listing: dict[str, Path]) -> set[bytes]:
        """Everything already there counts as handled, except the last `first_start_days` if asked."""
        cutoff = None
        if self.first_start_days is not None:
            cutoff = (self.clock.now() - timedelta(days=self.first_start_days)).timestamp()
        seen = await asyncio.to_thread(_handled_before, listing, cutoff)
        log.info("mailbox %s: first start, %d of the %d messages in %s taken as already handled",
                 self.name, len(seen), len(listing), self.path)
        await self._keeper.save(self._cursor(seen))
        return seen

    async def _deliver_all(self, entries: list[Entry], handle: Handler) -> None:
        assert self._seen is not None
        for start in range(0, len(entries), self.batch_size):
            for entry in entries[start:start + self.batch_size]:
                fetched = await asyncio.to_thread(read_message, self.name, entry, self.body_prefix)
                if fetched is None:
                    log.info("mailbox %s: %s vanished before it could be read", self.name, entry.key)
                    continue  # deleted, or renamed by a client: the next listing finds it under its new name
                await deliver(handle, fetched, self.retry, self.stats)
                self._seen.add(key_digest(entry.key))
            await self._keeper.save(self._cursor(self._seen))

    def _cursor(self, seen: set[bytes]) -> Cursor:
        # Only what is still in the Maildir needs remembering: keys are never reused.
        kept = seen & self._present
        return Cursor(self.cursor_name, position={"v": 1, "seen": pack_digests(kept)})

    async def _save_on_exit(self) -> None:
        if self._seen is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._keeper.save(self._cursor(self._seen))), 2.0)
        except (TimeoutError, asyncio.CancelledError):
            pass  # a restart re-delivers the last batch; the consumer deduplicates

    def _report(self, up: bool, detail: str) -> None:
        if up != self._up:
            (log.info if up else log.warning)("mailbox %s: %s: %s", self.name, "up" if up else "down", detail)
        self._up = up
        report_status(self.on_status, self.name, up, detail)


def _handled_before(listing: dict[str, Path], cutoff: float | None) -> set[bytes]:
    """Digests of the messages delivered before `cutoff` (all of them without one)."""
    seen = set()
    for key, path in listing.items():
        mtime = _mtime(path) if cutoff is not None else None
        if cutoff is None or (mtime is not None and mtime < cutoff):
            seen.add(key_digest(key))
    return seen


def _oldest_first(entries: list[Entry]) -> list[Entry]:
    """By delivery (mtime), then key; a file gone meanwhile sorts first and is skipped when read."""
    return sorted(entries, key=lambda entry: (_mtime(entry.path) or 0.0, entry.key))
