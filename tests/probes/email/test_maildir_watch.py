"""MaildirWatcher: new/ and cur/, nothing renamed, restart from the cursor, vanished and renamed files."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from monitor.store.store import Store
from probes.email.maildir_watch import (
    MaildirWatcher,
    key_digest,
    message_key,
    pack_digests,
    unpack_digests,
)
from probes.email.watcher import FetchedMessage, RetryPolicy
from tests.support.databases import fresh_sqlite
from tests.support.dovecot import message

POLL = 0.02
_names = count()


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    root = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True)
    return root


def drop(maildir: Path, subject: str, *, sub: str = "new", flags: str = "", mtime: float | None = None,
         body: str = "") -> Path:
    """Deliver like an MTA: write in tmp/, then rename into new/ (or cur/ with flags, as a client leaves it)."""
    name = f"{int(time.time())}.M{next(_names)}P{os.getpid()}.mail.example.net"
    temporary = maildir / "tmp" / name
    temporary.write_bytes(message(subject, body=body))
    if mtime is not None:
        os.utime(temporary, (mtime, mtime))
    target = maildir / sub / (name + (f":2,{flags}" if sub == "cur" else ""))
    temporary.rename(target)
    return target


def snapshot(maildir: Path) -> dict[str, int]:
    return {str(p.relative_to(maildir)): p.stat().st_mtime_ns for p in maildir.rglob("*") if p.is_file()}


class Recorder:
    def __init__(self, on_message: Callable[[FetchedMessage], None] | None = None) -> None:
        self.messages: list[FetchedMessage] = []
        self.statuses: list[tuple[bool, str]] = []
        self.on_message = on_message

    async def handle(self, fetched: FetchedMessage) -> None:
        self.messages.append(fetched)
        if self.on_message is not None:
            self.on_message(fetched)

    def status(self, up: bool, detail: str) -> None:
        self.statuses.append((up, detail))

    @property
    def subjects(self) -> list[str]:
        return [email.message_from_bytes(m.raw, policy=email.policy.default)["Subject"] for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 3.0) -> None:
        await until(lambda: len(self.messages) >= count, timeout, f"{count} messages, got {len(self.messages)}")

    async def wait_checks(self, checks: int = 3, timeout: float = 3.0) -> None:
        """Until the watcher has completed `checks` more listings: what it would find, it has found."""
        target = len(self.statuses) + checks
        await until(lambda: len(self.statuses) >= target, timeout, f"{checks} more checks")


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def watching(maildir: Path, store: Store, recorder: Recorder, **options: Any) -> AsyncIterator[MaildirWatcher]:
    watcher = MaildirWatcher("mystery", maildir, store, on_status=recorder.status, poll_seconds=POLL, **options)
    task = asyncio.create_task(watcher.run(recorder.handle))
    try:
        await recorder.wait_checks(1)   # the first listing (and the first-start cursor) is done
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_messages_in_new_and_in_cur_are_both_handed_over_and_no_file_is_touched(
        maildir: Path, sqlite_store: Store) -> None:
    recorder = Recorder()
    async with watching(maildir, sqlite_store, recorder):
        drop(maildir, "unread reply", mtime=time.time() - 2)
        drop(maildir, "already read by a colleague", sub="cur", flags="S", mtime=time.time() - 1)
        before = snapshot(maildir)
        await recorder.wait_for(2)
        await recorder.wait_checks()

    assert recorder.subjects == ["unread reply", "already read by a colleague"]
    assert snapshot(maildir) == before
    fetched = recorder.messages[0]
    assert fetched.source == "mystery" and not fetched.truncated and "." in str(fetched.uid)
    assert abs(fetched.received_at.timestamp() - (time.time() - 2)) < 1.5


async def test_a_message_a_client_moves_to_cur_and_flags_is_not_handed_over_again(
        maildir: Path, sqlite_store: Store) -> None:
    recorder = Recorder()
    async with watching(maildir, sqlite_store, recorder):
        path = drop(maildir, "reply")
        await recorder.wait_for(1)
        path.rename(maildir / "cur" / (path.name + ":2,S"))
        await recorder.wait_checks()
        (maildir / "cur" / (path.name + ":2,S")).rename(maildir / "cur" / (path.name + ":2,FS"))
        await recorder.wait_checks()

    assert recorder.subjects == ["reply"]


async def test_a_new_watcher_on_the_same_store_gets_exactly_what_arrived_while_stopped(
        maildir: Path, store: Store) -> None:
    first = Recorder()
    async with watching(maildir, store, first):
        drop(maildir, "seen before the stop")
        await first.wait_for(1)

    for number in range(3):
        drop(maildir, f"while stopped {number}", mtime=time.time() - 10 + number)

    second = Recorder()
    async with watching(maildir, store, second):
        await second.wait_for(3)
        await second.wait_checks()

    assert second.subjects == ["while stopped 0", "while stopped 1", "while stopped 2"]


async def test_a_file_deleted_between_listing_and_reading_is_skipped_without_error(
        maildir: Path, sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="probes.email.maildir_watch")
    # Both are there before the first listing (first_start_days takes them); handling the first deletes the second.
    drop(maildir, "first", mtime=time.time() - 5)
    doomed = drop(maildir, "deleted while the first is handled", mtime=time.time() - 4)
    recorder = Recorder(on_message=lambda fetched: doomed.unlink(missing_ok=True))
    async with watching(maildir, sqlite_store, recorder, first_start_days=1) as watcher:
        drop(maildir, "later")
        await recorder.wait_for(2)

    assert recorder.subjects == ["first", "later"]
    assert "vanished before it could be read" in caplog.text
    assert all(up for up, _ in recorder.statuses) and watcher.stats.poisoned == 0


async def test_a_file_renamed_between_listing_and_reading_is_handed_over_once_under_its_new_name(
        maildir: Path, sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="probes.email.maildir_watch")
    drop(maildir, "first", mtime=time.time() - 5)
    moving = drop(maildir, "read by a client meanwhile", mtime=time.time() - 4)

    def read_by_a_client(fetched: FetchedMessage) -> None:
        if moving.exists():
            moving.rename(maildir / "cur" / (moving.name + ":2,S"))

    recorder = Recorder(on_message=read_by_a_client)
    async with watching(maildir, sqlite_store, recorder, first_start_days=1):
        await recorder.wait_for(2)
        await recorder.wait_checks()

    assert recorder.subjects == ["first", "read by a client meanwhile"]
    assert "vanished before it could be read" in caplog.text


async def test_a_first_start_takes_what_is_there_as_handled_unless_asked_for_recent_days(
        maildir: Path, sqlite_store: Store, tmp_path: Path, sqlite_template: Path) -> None:
    drop(maildir, "last month", mtime=time.time() - 30 * 86400)
    drop(maildir, "this morning", mtime=time.time() - 3600)

    by_default = Recorder()
    async with watching(maildir, sqlite_store, by_default):
        drop(maildir, "after the start")
        await by_default.wait_for(1)
        await by_default.wait_checks()
    assert by_default.subjects == ["after the start"]

    other = tmp_path / "other"
    other.mkdir()
    fresh = Store.open(fresh_sqlite(sqlite_template, other))
    try:
        last_day = Recorder()
        async with watching(maildir, fresh, last_day, first_start_days=1):
            await last_day.wait_for(2)
            await last_day.wait_checks()
    finally:
        await fresh.close()
    assert last_day.subjects == ["this morning", "after the start"]


async def test_a_missing_maildir_is_reported_down_until_it_appears(tmp_path: Path, sqlite_store: Store) -> None:
    root = tmp_path / "not-yet"
    recorder = Recorder()
    async with watching(root, sqlite_store, recorder):
        assert recorder.statuses[0][0] is False and "cannot list Maildir" in recorder.statuses[0][1]
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True)
        await until(lambda: recorder.statuses[-1][0], 3.0, "up again")
        drop(root, "first mail")
        await recorder.wait_for(1)

    assert recorder.subjects == ["first mail"]


async def test_a_long_body_is_cut_after_the_prefix_and_marked_truncated(maildir: Path, sqlite_store: Store) -> None:
    recorder = Recorder()
    async with watching(maildir, sqlite_store, recorder, body_prefix=1024):
        path = drop(maildir, "long", body="x" * 50_000)
        await recorder.wait_for(1)

    fetched = recorder.messages[0]
    header_end = fetched.raw.index(b"\r\n\r\n") + 4
    assert fetched.truncated and len(fetched.raw) == header_end + 1024
    assert path.read_bytes().startswith(fetched.raw)


async def test_a_handler_that_keeps_failing_does_not_stop_the_maildir(maildir: Path, sqlite_store: Store) -> None:
    seen: list[str] = []

    async def handle(fetched: FetchedMessage) -> None:
        subject = email.message_from_bytes(fetched.raw, policy=email.policy.default)["Subject"]
        seen.append(subject)
        if subject == "poison":
            raise RuntimeError("boom")

    watcher = MaildirWatcher("mystery", maildir, sqlite_store, poll_seconds=POLL,
                             retry=RetryPolicy(max_attempts=2, retry_delay=0.01))
    task = asyncio.create_task(watcher.run(handle))
    try:
        await until(lambda: watcher.stats.last_success is not None, 3.0, "the first listing")
        drop(maildir, "poison", mtime=time.time() - 2)
        drop(maildir, "fine", mtime=time.time() - 1)
        await until(lambda: "fine" in seen, 3.0, "the message after the poison one")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert seen == ["poison", "poison", "fine"] and watcher.stats.poisoned == 1


def test_keys_survive_the_renames_clients_make() -> None:
    assert message_key("1767225600.M1P2.host") == "1767225600.M1P2.host"
    assert message_key("1767225600.M1P2.host,S=1234:2,RS") == "1767225600.M1P2.host,S=1234"
    assert message_key("1767225600.M1P2.host!2,S") == "1767225600.M1P2.host"


def test_the_seen_set_packs_into_eight_bytes_per_message() -> None:
    digests = {key_digest(f"{n}.M{n}P1.host") for n in range(1000)}
    packed = pack_digests(digests)

    assert unpack_digests(packed) == digests
    assert len(packed) <= 8 * 1000 * 4 // 3 + 4
