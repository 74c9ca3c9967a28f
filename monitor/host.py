"""The core as a probe kind's background work sees it: `kinds.KindHost`, built by the service.

A watcher or poller records what it finds through the runner (`recorder`),
asks the store only the named questions of `ProbeQueries`, keeps its cursor
through `CursorStore` (database outages arrive as `StoreUnavailable`, from
every call, so no kind needs to know SQLAlchemy), and reports its status to `/healthz` and to
the gauges of its component (`qualimon_mailbox_up` for `mailbox`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from monitor.clock import Clock
from monitor.config.models import Config
from monitor.health import Health
from monitor.kinds import ComponentStatus, Recorder, Response, Work
from monitor.store.errors import is_outage
from monitor.store.records import Cursor, EventRecord, EvidenceItem, MailboxMessage, ProbeRecord, StoreUnavailable
from monitor.store.store import Store

# component -> how its status shows in metrics: (name, up, last success or None)
StatusGauge = Callable[[str, bool, "datetime | None"], None]


@asynccontextmanager
async def outage_as_unavailable(doing: str) -> AsyncIterator[None]:
    """A database outage reaches a kind as `StoreUnavailable` (wait and retry); any other error as itself."""
    try:
        yield
    except Exception as exc:
        if is_outage(exc):
            raise StoreUnavailable(f"{doing}: {type(exc).__name__}") from None
        raise


class GuardedRecorder:
    """The runner's `record_*`, with database outages told apart from bad input."""

    def __init__(self, recorder: Recorder):
        self._recorder = recorder

    async def record_response(self, probe_id: str, response: Response,
                              evidence: tuple[EvidenceItem, ...] = ()) -> Sequence[object]:
        async with outage_as_unavailable("recording a response"):
            return await self._recorder.record_response(probe_id, response, evidence)

    async def record_failure(self, probe_id: str, reason: str, *, alert: str | None = None,
                             evidence: tuple[EvidenceItem, ...] = ()) -> Sequence[object]:
        async with outage_as_unavailable("recording a failure"):
            return await self._recorder.record_failure(probe_id, reason, alert=alert, evidence=evidence)

    async def record_message(self, message: MailboxMessage, response: Response | None = None, *,
                             alert: str | None = None, evidence: tuple[EvidenceItem, ...] = ()) -> bool:
        async with outage_as_unavailable("recording a mailbox message"):
            return await self._recorder.record_message(message, response, alert=alert, evidence=evidence)


class StoreQueries:
    """`kinds.ProbeQueries` and `kinds.CursorStore` over the store."""

    def __init__(self, store: Store, clock: Clock):
        self.store = store
        self.clock = clock

    async def probe(self, probe_id: str) -> ProbeRecord | None:
        async with outage_as_unavailable("reading a probe"):
            return await self.store.probe(probe_id)

    async def events_for(self, probe_id: str) -> list[EventRecord]:
        async with outage_as_unavailable("reading events"):
            return await self.store.events_for(probe_id)

    async def open_probes(self, channel: str, *, message_ids: Collection[str] = (), tokens: Collection[str] = (),
                          sites: Collection[str] = (), ids: Collection[str] = ()) -> list[ProbeRecord]:
        async with outage_as_unavailable("finding open probes"):
            return await self.store.open_probes(channel, message_ids=message_ids, tokens=tokens, sites=sites,
                                                ids=ids)

    async def fingerprints_after(self, channel: str, after: int, *, closed_since: datetime | None = None,
                                 limit: int = 5000) -> list[tuple[int, str, bytes]]:
        async with outage_as_unavailable("reading fingerprints"):
            return await self.store.fingerprints_after(channel, after, closed_since=closed_since, limit=limit)

    async def cursor(self, name: str) -> Cursor | None:
        async with outage_as_unavailable(f"reading cursor {name}"):
            return await self.store.cursor(name)

    async def save_cursor(self, cursor: Cursor) -> None:
        async with outage_as_unavailable(f"saving cursor {cursor.name}"):
            await self.store.save_cursor(cursor, self.clock.now())


class ServiceHost:
    """Implements `kinds.KindHost` for the kinds of one service."""

    def __init__(self, config: Config, clock: Clock, recorder: Recorder, store: Store, health: Health,
                 gauges: Mapping[str, StatusGauge]):
        self._config = config
        self._clock = clock
        self._recorder = GuardedRecorder(recorder)
        self._queries = StoreQueries(store, clock)
        self._health = health
        self._gauges = gauges

    @property
    def config(self) -> Config:
        return self._config

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def recorder(self) -> Recorder:
        return self._recorder

    @property
    def probes(self) -> StoreQueries:
        return self._queries

    @property
    def cursors(self) -> StoreQueries:
        return self._queries

    def report_status(self, component: str, name: str, up: bool, detail: str) -> None:
        now = self._clock.now()
        self._health.report(f"{component}:{name}", up, detail, now)
        gauge = self._gauges.get(component)
        if gauge is not None:
            gauge(name, up, now if up else None)

    def status_of(self, component: str, name: str) -> ComponentStatus | None:
        check = self._health.check(f"{component}:{name}")
        return None if check is None else ComponentStatus(check.ok, check.since)

    async def lead(self, task: str, work: Work) -> None:
        """One instance: this one always holds every task (a fleet elects a holder per task)."""
        await work(self)
