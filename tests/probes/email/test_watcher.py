"""Delivery rules shared by both watchers (probes/email/watcher.py): retries, poison messages, backoff."""

from __future__ import annotations

import random

from monitor.clock import SystemClock
from monitor.store.store import StoreUnavailable
from probes.email.watcher import Backoff, FetchedMessage, RetryPolicy, WatcherStats, deliver


def _fetched(uid: int = 1) -> FetchedMessage:
    return FetchedMessage("mystery", uid, b"Subject: x\r\n\r\n", SystemClock().now(), False)


async def test_a_database_outage_in_the_handler_is_waited_out_without_counting_as_an_attempt() -> None:
    calls: list[int] = []

    async def handle(fetched: FetchedMessage) -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise StoreUnavailable("database down")

    stats = WatcherStats()
    delivered = await deliver(handle, _fetched(), RetryPolicy(max_attempts=1, retry_delay=0.001), stats)

    assert delivered and len(calls) == 4 and stats.poisoned == 0 and stats.handler_errors == 0


async def test_a_handler_bug_is_retried_then_the_message_given_up_and_remembered() -> None:
    async def handle(fetched: FetchedMessage) -> None:
        raise KeyError("a bug")

    stats = WatcherStats()
    delivered = await deliver(handle, _fetched(7), RetryPolicy(max_attempts=2, retry_delay=0.001), stats)

    assert not delivered and stats.handler_errors == 2 and stats.poisoned == 1 and stats.poisoned_uids == [7]


def test_reconnect_delays_double_with_jitter_up_to_the_cap_and_restart_after_a_success() -> None:
    backoff = Backoff(1.0, 8.0, rng=random.Random(3))
    delays = [backoff.next_delay() for _ in range(6)]
    backoff.reset()

    for delay, ceiling in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.next_delay() <= 1.0

