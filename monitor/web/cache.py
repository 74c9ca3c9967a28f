"""A short-lived memory of computed page data, keyed by what it was computed from, on the service clock.

The open status page computes compliance over every site on each request:
a dashboard left open in twenty browsers, or a crawler walking `?page=`,
would otherwise repeat that grouped count over the whole period many times
a second.  Figures a few seconds old are what the page already shows (its
open/overdue counts come from the background refresh, every 15 s), so a
result is reused for `ttl_seconds` of the injected clock.

Concurrent requests for one key share one computation (the first starts
it, the others await the same task), a failed computation is never kept
(the next request tries again), and at most `max_entries` keys are held,
oldest dropped first, so the memory taken stays bounded whatever the
query strings are.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from monitor.clock import Clock

V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    made_at: datetime
    task: asyncio.Future[V]


class ShortCache(Generic[V]):
    def __init__(self, clock: Clock, ttl_seconds: float, max_entries: int = 8):
        self.clock = clock
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> V:
        """The value for `key`: computed less than `ttl_seconds` ago, or computed now."""
        entry = self._fresh(key)
        if entry is None:
            entry = self._start(key, compute)
        # Shielded: a client that goes away must not cancel the computation others are waiting for.
        return await asyncio.shield(entry.task)

    def _fresh(self, key: Hashable) -> _Entry[V] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        age = (self.clock.now() - entry.made_at).total_seconds()
        failed = entry.task.done() and (entry.task.cancelled() or entry.task.exception() is not None)
        if failed or not 0 <= age < self.ttl_seconds:  # a clock set back counts as expired too
            self._entries.pop(key, None)
            return None
        return entry

    def _start(self, key: Hashable, compute: Callable[[], Awaitable[V]]) -> _Entry[V]:
        entry = _Entry(self.clock.now(), asyncio.ensure_future(compute()))
        entry.task.add_done_callback(lambda task: self._forget_failure(key, entry))
        self._entries[key] = entry
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry

    def _forget_failure(self, key: Hashable, entry: _Entry[V]) -> None:
        # Reading the exception also keeps asyncio from warning about one nobody retrieved.
        if entry.task.cancelled() or entry.task.exception() is not None:
            if self._entries.get(key) is entry:
                del self._entries[key]
