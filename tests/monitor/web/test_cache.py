"""The status page's short-lived cache: shared, bounded, expiring on the injected clock, never keeping a failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from monitor.clock import FakeClock
from monitor.web.cache import ShortCache


class Computation:
    def __init__(self) -> None:
        self.runs = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> int:
        self.runs += 1
        await self.release.wait()
        return self.runs


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 7, 7, 8, 30, tzinfo=UTC))


async def test_it_keeps_a_bounded_number_of_keys(clock: FakeClock) -> None:
    cache: ShortCache[int] = ShortCache(clock, 15, max_entries=3)
    compute = Computation()
    for key in range(100):
        await cache.get(key, compute)
    assert len(cache._entries) == 3 and list(cache._entries) == [97, 98, 99]


async def test_a_client_that_leaves_does_not_cancel_what_others_wait_for(clock: FakeClock) -> None:
    cache: ShortCache[int] = ShortCache(clock, 15)
    compute = Computation()
    compute.release.clear()
    leaving = asyncio.create_task(cache.get("k", compute))
    staying = asyncio.create_task(cache.get("k", compute))
    await asyncio.sleep(0)
    leaving.cancel()
    compute.release.set()
    assert await staying == 1 and compute.runs == 1


async def test_a_clock_set_back_expires_the_entry(clock: FakeClock) -> None:
    cache: ShortCache[int] = ShortCache(clock, 15)
    compute = Computation()
    await cache.get("k", compute)
    clock.advance(-1)
    assert await cache.get("k", compute) == 2


async def test_a_failure_is_not_kept(clock: FakeClock) -> None:
    cache: ShortCache[int] = ShortCache(clock, 15)
    attempts = []

    async def failing() -> int:
        attempts.append(1)
        raise OSError("database gone")

    for _ in range(2):
        with pytest.raises(OSError):
            await cache.get("k", failing)
    assert len(attempts) == 2 and not cache._entries
