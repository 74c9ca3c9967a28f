"""The core as a probe kind's background work sees it: `kinds.KindHost`, built by the service.

A watcher or poller records what it finds through the runner (`recorder`),
asks the store only the named questions of `ProbeQueries`, keeps its cursor
through `CursorStore` (database outages arrive as `StoreUnavailable`, from
every call, so no kind needs to know SQLAlchemy), and reports its status to `/healthz` and to
the gauges of its component (`qualimon_mailbox_up` for `mailbox`).

Singleton work runs under `lead(task, work)`: the fleet (`monitor.fleet`)
runs it while this instance holds the task, with a host of its own whose
writes — responses, failures, cursors — are fenced by the task's epoch, and
whose status reports reach the other instances.  They copy that status into
their own health and gauges (`mirror`), so that `status_of` (and with it a
kind's `observed_until`) says the same on every instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.clock import Clock
from monitor.config.models import Config
from monitor.fleet import Fleet, FleetView, SingleInstance
from monitor.health import Health
from monitor.kinds import ComponentStatus, Recorder, Response, Work
from monitor.store.errors import is_outage
from monitor.store.records import (
    Cursor,
    EventRecord,
    EvidenceItem,
    Fence,
    MailboxMessage,
    ProbeRecord,
    StoreUnavailable,
)
from monitor.store.store import Store

if TYPE_CHECKING:
    from monitor.runner import Runner

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


def fenced_store(store: Store, fleet: Fleet, fence: Fence | None) -> Store:
    """`store` for one term of a fleet task: its writes fenced by `fence` (none for a single instance)."""
    return store if fence is None else store.fenced(fence)


class ServiceHost:
    """Implements `kinds.KindHost` for the kinds of one service; `task` is set on the host of a fleet task's term."""

    def __init__(self, config: Config, clock: Clock, recorder: Runner, store: Store, health: Health,
                 gauges: Mapping[str, StatusGauge], fleet: Fleet | None = None, task: str | None = None):
        self._config = config
        self._clock = clock
        self._runner = recorder
        self._store = store
        self._recorder = GuardedRecorder(recorder)
        self._queries = StoreQueries(store, clock)
        self._health = health
        self._gauges = gauges
        self._fleet: Fleet = fleet or SingleInstance(recorder.owner)
        self._task = task

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
        self.report(f"{component}:{name}", up, detail)

    def report(self, check: str, up: bool, detail: str) -> None:
        """`report_status` by check name; the holder of the task of that name also tells the fleet."""
        now = self._clock.now()
        self._health.report(check, up, detail, now)
        component, _, name = check.partition(":")
        gauge = self._gauges.get(component)
        if gauge is not None:
            gauge(name, up, now if up else None)
        reported = self._health.check(check)
        if check == self._task and reported is not None:
            self._fleet.report(check, up, reported.since, detail)

    def status_of(self, component: str, name: str) -> ComponentStatus | None:
        check = self._health.check(f"{component}:{name}")
        return None if check is None else ComponentStatus(check.ok, check.since)

    async def lead(self, task: str, work: Work) -> None:
        """`work` runs in each term this instance holds `task`, given the term's fenced host."""

        async def term(fence: Fence | None) -> None:
            await work(self.for_term(task, fence))

        await self._fleet.lead(task, term)

    def for_term(self, task: str, fence: Fence | None) -> ServiceHost:
        """The host of one term of `task`: its writes fenced by `fence` (none for a single instance)."""
        store = fenced_store(self._store, self._fleet, fence)
        runner = self._runner if fence is None else self._runner.with_store(store)
        return ServiceHost(self._config, self._clock, runner, store, self._health, self._gauges, self._fleet, task)

    def mirror(self, view: FleetView) -> None:
        """Copy the status of the tasks other instances hold (or nobody does) into this instance's health and
        gauges: a mailbox read elsewhere is up here too, one nobody reads is down since it was last held."""
        if not view.connected:
            return  # what this instance last saw may be stale: keep what it knows first-hand
        now = self._clock.now()
        for task, state in view.tasks.items():
            if self._fleet.holds(task) or (state.up is None and self._health.check(task) is None):
                continue  # ours, or a task whose work reports no status (the planner): nothing to copy
            status = state.work_status(view.failover_seconds)
            if status is None:
                continue
            up, since, detail = status
            self._health.report(task, up, detail, now, since=since)
            component, _, name = task.partition(":")
            gauge = self._gauges.get(component)
            if gauge is not None:
                gauge(name, up, now if up else None)
