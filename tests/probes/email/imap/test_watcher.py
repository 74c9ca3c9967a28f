"""ImapWatcher against a real Dovecot: IDLE, polling, restarts, cursor, UIDVALIDITY, backlog, read-only.

Each test starts its own Dovecot (tests/support/dovecot.py) and waits with
bounded loops on what the watcher reports; nothing sleeps longer than the
thing it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.clock import SystemClock
from monitor.store.records import Cursor
from monitor.store.store import Store
from probes.email.imap.session import ImapSession
from probes.email.imap.watcher import ImapWatcher
from probes.email.watcher import Backoff, FetchedMessage, RetryPolicy
from tests.support.dovecot import DovecotServer, message, running_dovecot

FAST: dict[str, Any] = {"backoff_initial": 0.05, "backoff_max": 0.5}


# ---------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    with running_dovecot() as server:
        yield server


class Recorder:
    """What the watcher handed over and reported, with bounded waits on both."""

    def __init__(self) -> None:
        self.messages: list[FetchedMessage] = []
        self.arrived: list[float] = []
        self.statuses: list[tuple[bool, str]] = []

    async def handle(self, fetched: FetchedMessage) -> None:
        self.messages.append(fetched)
        self.arrived.append(time.perf_counter())

    def status(self, up: bool, detail: str) -> None:
        self.statuses.append((up, detail))

    @property
    def subjects(self) -> list[str]:
        return [email.message_from_bytes(m.raw, policy=email.policy.default)["Subject"] for m in self.messages]

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        await until(lambda: len(self.messages) >= count, timeout, f"{count} messages (got {len(self.messages)})")

    async def wait_status(self, predicate: Any, timeout: float = 5.0) -> None:
        await until(lambda: any(predicate(up, detail) for up, detail in self.statuses), timeout,
                    f"a status matching the predicate in {self.statuses[-5:]}")


async def until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def watching(watcher: ImapWatcher, recorder: Recorder) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(watcher.run(recorder.handle))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def idling(up: bool, detail: str) -> bool:
    return up and detail.endswith("IDLE")


def watcher_for(server: DovecotServer, store: Store, recorder: Recorder, **options: Any) -> ImapWatcher:
    config_options = options.pop("config", {})
    return ImapWatcher("mystery", server.imap_config(**config_options), store, on_status=recorder.status,
                       **{**FAST, **options})


# ---------------------------------------------------------------------------
# against Dovecot


@pytest.mark.integration
async def test_a_reply_appended_during_idle_is_handed_over_within_two_seconds_and_stays_unread(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    recorder = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, recorder), recorder):
        await recorder.wait_status(idling)
        appended_at = time.perf_counter()
        uid = await dovecot.aappend(message("Re: Horaires d'ouverture — Réf. QP-7K2M9", number=1))
        await recorder.wait_for(1, timeout=2.0)

    latency = recorder.arrived[0] - appended_at
    assert latency < 2.0
    fetched = recorder.messages[0]
    assert fetched.uid == uid and fetched.source == "mystery" and not fetched.truncated
    parsed = email.message_from_bytes(fetched.raw, policy=email.policy.default)
    assert parsed["Subject"] == "Re: Horaires d'ouverture — Réf. QP-7K2M9"
    assert "Merci pour votre message" in parsed.get_content()
    assert fetched.received_at.utcoffset() is not None and abs(time.time() - fetched.received_at.timestamp()) < 5
    assert "\\Seen" not in dovecot.flags(uid)


@pytest.mark.integration
async def test_it_reconnects_after_dovecot_restarts_and_misses_nothing_delivered_meanwhile(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    recorder = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, recorder), recorder):
        await recorder.wait_status(idling)
        await dovecot.aappend(message("before", number=1))
        await recorder.wait_for(1)

        await asyncio.to_thread(dovecot.stop)        # as systemd stops it: the watcher gets BYE in IDLE
        await recorder.wait_status(lambda up, detail: not up)
        dovecot.deliver_file(message("while down", number=2))
        await asyncio.to_thread(dovecot.start)
        await dovecot.aappend(message("right after restart", number=3))
        await recorder.wait_for(3, timeout=10.0)

    # Dovecot numbers the file dropped while it was down when it next scans the Maildir: after or
    # before the APPEND, its choice.  What matters: each once, in UID order.
    assert sorted(recorder.subjects) == ["before", "right after restart", "while down"]
    assert [m.uid for m in recorder.messages] == sorted({m.uid for m in recorder.messages})
    ups = [up for up, _ in recorder.statuses]
    first_down = ups.index(False)
    assert True in ups[first_down:], "status never came back up after the restart"
    assert any("BYE" in detail or "refused" in detail for up, detail in recorder.statuses if not up)


@pytest.mark.integration
async def test_a_new_watcher_on_the_same_store_gets_exactly_the_messages_that_came_while_stopped(
        dovecot: DovecotServer, store: Store) -> None:
    first = Recorder()
    async with watching(watcher_for(dovecot, store, first), first):
        await first.wait_status(idling)
        await dovecot.aappend(message("seen by the first watcher"))
        await first.wait_for(1)

    for number in range(3):
        await dovecot.aappend(message(f"while stopped {number}", number=number))

    second = Recorder()
    watcher = watcher_for(dovecot, store, second)
    async with watching(watcher, second):
        await second.wait_for(3)
        await second.wait_status(idling)   # the check that found them is over: nothing more will come

    assert second.subjects == ["while stopped 0", "while stopped 1", "while stopped 2"]
    saved = await store.cursor("imap:mystery")
    assert saved is not None and saved.last_uid == second.messages[-1].uid


@pytest.mark.integration
async def test_a_changed_uidvalidity_makes_it_deliver_the_recent_window_again_and_lose_nothing(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    first = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, first), first):
        await first.wait_status(idling)
        await dovecot.aappend(message("A"))
        await dovecot.aappend(message("B"))
        await first.wait_for(2)
    before = await sqlite_store.cursor("imap:mystery")
    assert before is not None and before.uidvalidity is not None

    dovecot.set_uidvalidity(before.uidvalidity + 1000)   # a server migration: UIDs no longer comparable
    await dovecot.aappend(message("C"))

    second = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, second), second):
        await second.wait_for(3)
        await second.wait_status(idling)
        await dovecot.aappend(message("D"))
        await second.wait_for(4)

    assert second.subjects == ["A", "B", "C", "D"]     # A and B again: the consumer deduplicates
    after = await sqlite_store.cursor("imap:mystery")
    assert after is not None and after.uidvalidity == before.uidvalidity + 1000


@pytest.mark.integration
async def test_a_backlog_of_500_is_handed_over_once_in_uid_order_in_batches(
        dovecot: DovecotServer, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    uids = dovecot.append_many([message(f"backlog {n}", number=n) for n in range(500)])
    batches: list[int] = []
    original = ImapSession.fetch

    async def counting_fetch(self: ImapSession, batch: Any, items: str) -> Any:
        batches.append(len(batch))
        return await original(self, batch, items)

    monkeypatch.setattr(ImapSession, "fetch", counting_fetch)
    recorder = Recorder()
    # first_start_days: a first start that also takes what arrived in the last day.
    async with watching(watcher_for(dovecot, sqlite_store, recorder, first_start_days=1), recorder):
        await recorder.wait_for(500, timeout=20.0)
        await recorder.wait_status(idling)

    assert [m.uid for m in recorder.messages] == uids
    assert batches == [200, 200, 100]
    saved = await sqlite_store.cursor("imap:mystery")
    assert saved is not None and saved.last_uid == uids[-1]


@pytest.mark.integration
async def test_a_fetch_answer_of_1500_small_messages_in_one_batch_is_parsed(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    # aioimaplib alone recursed once per response line and died near 1 000 lines.
    uids = dovecot.append_many([b"Subject: %d\r\n\r\nok\r\n" % n for n in range(1500)])
    recorder = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, recorder, first_start_days=1, batch_size=2000),
                        recorder):
        await recorder.wait_for(1500, timeout=20.0)

    assert [m.uid for m in recorder.messages] == uids


@pytest.mark.integration
async def test_a_first_start_reads_only_mail_that_arrives_from_then_on(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    dovecot.append(message("old news"))
    recorder = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, recorder), recorder):
        await recorder.wait_status(idling)
        await dovecot.aappend(message("fresh"))
        await recorder.wait_for(1)
        await recorder.wait_status(idling)

    assert recorder.subjects == ["fresh"]


@pytest.mark.integration
async def test_it_polls_when_the_server_does_not_offer_idle(sqlite_store: Store) -> None:
    with running_dovecot(idle=False) as server:
        recorder = Recorder()
        watcher = watcher_for(server, sqlite_store, recorder, config={"poll_seconds": 0.2})
        async with watching(watcher, recorder):
            await recorder.wait_status(lambda up, detail: up and "polling every 0.2 s" in detail)
            await server.aappend(message("polled"))
            await recorder.wait_for(1, timeout=3.0)

    assert recorder.subjects == ["polled"]
    assert not any(detail.endswith("IDLE") for _, detail in recorder.statuses)


@pytest.mark.integration
async def test_a_message_whose_handler_keeps_failing_is_skipped_after_three_attempts(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    attempts: list[str] = []
    handled: list[str] = []

    async def handle(fetched: FetchedMessage) -> None:
        subject = email.message_from_bytes(fetched.raw, policy=email.policy.default)["Subject"]
        attempts.append(subject)
        if subject == "poison":
            raise ValueError("cannot classify")
        handled.append(subject)

    watcher = ImapWatcher("mystery", dovecot.imap_config(), sqlite_store, first_start_days=1,
                          retry=RetryPolicy(max_attempts=3, retry_delay=0.01), **FAST)
    dovecot.append(message("poison"))
    dovecot.append(message("next"))
    task = asyncio.create_task(watcher.run(handle))
    try:
        await until(lambda: handled == ["next"], 5.0, "the message after the poison one")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    assert attempts == ["poison"] * 3 + ["next"]
    assert watcher.stats.poisoned == 1 and watcher.stats.delivered == 1


@pytest.mark.integration
async def test_a_refused_login_reports_down_and_never_shows_the_password(
        dovecot: DovecotServer, sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # aioimaplib logs every line it sends at DEBUG
    wrong = "pw-wrong-Zx81-never-log-me"
    recorder = Recorder()
    watcher = watcher_for(dovecot, sqlite_store, recorder, config={"password": SecretStr(wrong)})
    async with watching(watcher, recorder):
        await recorder.wait_status(lambda up, detail: not up)

    assert all(not up for up, _ in recorder.statuses)
    assert "login refused" in recorder.statuses[0][1]
    assert "AUTHENTICATIONFAILED" in recorder.statuses[0][1]
    shown = caplog.text + repr(recorder.statuses)
    assert wrong not in shown and "LOGIN" in caplog.text  # the LOGIN line was logged, scrubbed


@pytest.mark.integration
async def test_it_reads_over_implicit_tls(sqlite_store: Store) -> None:
    with running_dovecot(tls=True) as server:
        recorder = Recorder()
        watcher = ImapWatcher("mystery", server.imap_config(tls="implicit"), sqlite_store,
                              on_status=recorder.status, ssl_context=server.ssl_context(), **FAST)
        async with watching(watcher, recorder):
            await recorder.wait_status(idling)
            await server.aappend(message("over TLS"))
            await recorder.wait_for(1)

    assert recorder.subjects == ["over TLS"]


@pytest.mark.integration
async def test_it_reissues_idle_before_the_server_would_drop_it_and_keeps_receiving(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    recorder = Recorder()
    watcher = watcher_for(dovecot, sqlite_store, recorder, idle_renew_seconds=0.2)
    async with watching(watcher, recorder):
        await until(lambda: sum(idling(*status) for status in recorder.statuses) >= 4, 5.0,
                    "IDLE issued four times")
        await dovecot.aappend(message("after the renewals"))
        await recorder.wait_for(1)

    assert recorder.subjects == ["after the renewals"]
    assert watcher.stats.reconnects == 0


@pytest.mark.integration
async def test_a_server_that_refuses_connections_is_reported_down_until_it_accepts(
        dovecot: DovecotServer, sqlite_store: Store) -> None:
    dovecot.kill()
    recorder = Recorder()
    async with watching(watcher_for(dovecot, sqlite_store, recorder), recorder):
        await recorder.wait_status(lambda up, detail: not up and "connection refused" in detail)
        await asyncio.to_thread(dovecot.start)
        await recorder.wait_status(idling, timeout=5.0)


async def test_the_cursor_name_and_saved_position_follow_the_mailbox_name(sqlite_store: Store) -> None:
    async with sqlite_store.write() as tx:
        await tx.set_cursor(Cursor("imap:mystery", 7, 42), SystemClock().now())
    config = DovecotServer(Path("/nonexistent"), 1).imap_config()
    watcher = ImapWatcher("mystery", config, sqlite_store)

    assert watcher.cursor_name == "imap:mystery"
    assert await watcher._keeper.load(Backoff()) == Cursor("imap:mystery", 7, 42)

