"""`qualimon run`: the service, assembled and torn down in one `AsyncExitStack`.

This is the composition root: the one place of the core that imports probe
packages.  `default_kinds` lists the kinds shipped with qualimon; the CLI
loads the config with their channels (`load_service_config`), so a kind
registered here brings its commitments and per-site settings with it.

Start-up order: database (migrated to the current schema) → fleet → runner →
probe kinds' background tasks (mailbox watchers) → singleton tasks (call-log
pollers, planner, sweeper, derived gauges) → HTTP server → scheduler.
Shutdown runs in reverse, so the scheduler stops taking work before the
runner lets in-flight probes finish, and the database closes last.

Several instances may run on one PostgreSQL database (`monitor/fleet`, README
"Running a fleet").  Dispatch is shared: every instance claims due probes.
Singleton work runs on the one instance that holds its task, with its writes
fenced: `planner` (every `planner.interval_seconds`), `sweeper`
(`runner.sweep_interval_seconds`), `refresh` (the database-derived gauges,
exported by that instance only), `calllog:<source>` (a poller) and the kinds'
own (`mailbox:<name>`).  On SQLite the one instance holds them all, and a
second `run` on the same file is refused.

Periodic jobs on every instance (APScheduler 3 `AsyncIOScheduler`, never
overlapping): dispatch (`runner.dispatch_interval_seconds`) and refresh
(database health, and the derived figures when this instance holds
`refresh`, every 15 s).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from monitor.calendar import calendars_from
from monitor.clock import Clock, SystemClock
from monitor.config import load_config
from monitor.config.models import Config
from monitor.derived import compute_snapshot
from monitor.fleet import Fleet, FleetView, open_fleet
from monitor.fleet.single import sqlite_run_lock
from monitor.fleet.tasks import PLANNER, REFRESH, SWEEPER, calllog_task, fleet_tasks
from monitor.health import Health
from monitor.host import ServiceHost, fenced_store
from monitor.http import make_app
from monitor.kinds import ProbeKind, channel_specs
from monitor.metrics import DerivedSnapshot, Metrics
from monitor.planner import Planner
from monitor.runner import Runner
from monitor.store import migrate
from monitor.store.records import Fence, ProbeRecord
from monitor.store.store import Store

log = logging.getLogger("qualimon.service")

REFRESH_SECONDS = 15.0


def default_kinds() -> dict[str, ProbeKind]:
    """The kinds shipped with qualimon, by channel: to add one, add it here (CONTRIBUTING)."""
    from probes.email import KIND as EMAIL
    from probes.phone import KIND as PHONE

    return {kind.channel: kind for kind in (EMAIL, PHONE)}


def load_service_config(path: str | Any, kinds: Mapping[str, ProbeKind] | None = None, **options: Any) -> Config:
    """The config, validated with the channels of the kinds the service runs."""
    return load_config(path, channels=channel_specs(default_kinds() if kinds is None else kinds), **options)


class Service:
    def __init__(self, config: Config, *, kinds: Mapping[str, ProbeKind] | None = None,
                 clock: Clock | None = None, metrics: Any = None, instance: str | None = None):
        """`instance`: this instance's name in a fleet (default host:pid; tests running several in one
        process give each its own)."""
        self.config = config
        self.kinds = dict(default_kinds() if kinds is None else kinds)
        unknown = [name for name in self.kinds if name not in config.channels]
        if unknown:
            raise ValueError(f"the config was validated without the channel(s) {', '.join(unknown)}: "
                             "load it with load_service_config (or the kinds' channel_specs)")
        self.clock = clock or SystemClock()
        self.health = Health()
        self.registry = CollectorRegistry()
        self.metrics = metrics or Metrics(self.registry, config, source_ids=tuple(config.call_logs))
        self.snapshot: DerivedSnapshot | None = None
        self.shared: dict[str, Any] = {}
        self.store: Store | None = None
        self.runner: Runner | None = None
        self.host: ServiceHost | None = None
        self.planner: Planner | None = None
        self.fleet: Fleet | None = None
        self.instance = instance or f"{socket.gethostname()}:{os.getpid()}"
        self._full_refresh = True  # the next derived snapshot also reads the last sends (see `refresh`)
        self.scheduler: AsyncIOScheduler | None = None
        self.http_port: int | None = None
        self._stack = AsyncExitStack()
        self._running_jobs: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> Service:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        self._stack.enter_context(sqlite_run_lock(self.config.database))
        await asyncio.to_thread(migrate.upgrade, self.config.database)
        self.store = Store.open(self.config.database)
        self._stack.push_async_callback(self.store.close)
        self.fleet = await open_fleet(self.config, self.instance, self.clock)
        self._stack.push_async_callback(self.fleet.close)
        self.store.limit_stalls(self.fleet.stall_seconds)
        if not self.fleet.holds(REFRESH):
            self.metrics.export_derived(False)  # until this instance holds `refresh` and has a snapshot
        await self.refresh()
        calendars = calendars_from(self.config)
        self.runner = Runner(self.store, self.config, self.kinds, self.clock, self.metrics, self.shared)
        self.runner.owner = self.instance
        self.host = ServiceHost(self.config, self.clock, self.runner, self.store, self.health,
                                gauges={"mailbox": self.metrics.mailbox_status}, fleet=self.fleet)
        self.runner.observed_until = self.observed_until
        self._stack.push_async_callback(self.runner.shutdown)
        self.fleet.listen(self._on_fleet_view)
        self.planner = Planner(self.store, self.config, calendars, self.clock)
        for kind in self.kinds.values():
            if kind.background is not None:
                await self._stack.enter_async_context(kind.background(self.host))
        self._start_call_log_pollers(calendars)
        self._start_singletons(calendars)
        await self.fleet.settle()
        await self._start_http()
        self._start_scheduler()
        # Everything built so far (config, label tables, metrics) lives as long as the process: keep it out
        # of the collector, whose full passes otherwise took up to 0.5 s with 10,000 sites.
        gc.collect()
        gc.freeze()
        log.info("qualimon running: %d sites, database %s, http %s, instance %s", len(self.config.sites),
                 self.store.display_url, self.config.http.listen, self.instance)

    def observed_until(self, probe: ProbeRecord, now: datetime) -> datetime:
        """Until when the absence of an answer to `probe` is known: its kind may say less than `now`."""
        kind = self.kinds.get(probe.channel)
        if kind is None or kind.observed_until is None or kind.background is None:
            return now
        return kind.observed_until(probe, now, self.host)

    def _start_call_log_pollers(self, calendars: dict[str, Any]) -> None:
        """One poller per source, run by the instance holding `calllog:<source>`, its calls and cursor fenced."""
        from probes.calllogs.ingest import CallLogIngester, poll_forever

        for source_id, source in self.config.call_logs.items():
            task = calllog_task(source_id)

            async def poll(fence: Fence | None, source_id: str = source_id, source: Any = source,
                           task: str = task) -> None:
                assert self.store is not None and self.host is not None and self.fleet is not None
                ingester = CallLogIngester(source_id, source, fenced_store(self.store, self.fleet, fence),
                                           self.config, calendars, self.clock, self.metrics)
                await poll_forever(ingester, TermHealth(self.host.for_term(task, fence)), self.clock)

            self._spawn(task, poll)

    def _start_singletons(self, calendars: dict[str, Any]) -> None:
        """The planner, the sweeper and the derived gauges: each on the one instance holding its task."""
        assert self.runner is not None
        runner = self.runner

        def plan(store: Store) -> Callable[[], Awaitable[Any]]:
            return Planner(store, self.config, calendars, self.clock).plan

        def sweep(store: Store) -> Callable[[], Awaitable[Any]]:
            return runner.with_store(store).sweep

        self._spawn(PLANNER, self._periodic("plan", plan, self.config.planner.interval_seconds))
        self._spawn(SWEEPER, self._periodic("sweep", sweep, self.config.runner.sweep_interval_seconds))
        self._spawn(REFRESH, self._lead_refresh)

    def _spawn(self, task: str, work: Callable[[Fence | None], Coroutine[Any, Any, None]]) -> None:
        assert self.fleet is not None
        running = asyncio.create_task(self.fleet.lead(task, work), name=f"lead {task}")
        self._stack.push_async_callback(_cancel, running)

    def _periodic(self, name: str, make: Callable[[Store], Callable[[], Awaitable[Any]]],
                  seconds: float) -> Callable[[Fence | None], Coroutine[Any, Any, None]]:
        """A term's work: `make(store)`'s job, run now and every `seconds`, its writes fenced by the term."""

        async def work(fence: Fence | None) -> None:
            assert self.store is not None and self.fleet is not None
            job = make(fenced_store(self.store, self.fleet, fence))
            while True:
                await self._reported(name, job)
                await asyncio.sleep(seconds)

        return work

    async def _lead_refresh(self, fence: Fence | None) -> None:
        """Holding `refresh`: export the derived gauges from a first full snapshot taken at once (the scheduler's
        refresh job keeps them current while this instance holds the task)."""
        self._full_refresh = True
        self.metrics.export_derived(True)  # shown from the next snapshot on: never a standby's zeros
        for attempt in itertools.count():
            if attempt:
                await asyncio.sleep(REFRESH_SECONDS)
            if await self._reported("refresh", self.refresh):
                break
        await asyncio.Event().wait()

    def _on_fleet_view(self, view: FleetView) -> None:
        """After each look at the fleet: role gauges, statuses of work done elsewhere, who exports the gauges."""
        assert self.fleet is not None and self.host is not None
        fleet = self.fleet
        self.metrics.fleet([task for task in fleet_tasks(self.config) if fleet.holds(task)], view.instances)
        self.host.mirror(view)
        holder = view.holder(REFRESH)
        if holder is not None and holder != view.instance:
            self.metrics.export_derived(False)  # another instance exports them now; a sum must count them once

    async def _start_http(self) -> None:
        app = make_app(self)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.config.http.host, self.config.http.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http.port

    def _start_scheduler(self) -> None:
        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        assert self.runner is not None
        jobs: list[tuple[str, Callable[[], Awaitable[Any]], float]] = [
            ("dispatch", self.runner.dispatch_due, self.config.runner.dispatch_interval_seconds),
            ("refresh", self.refresh, REFRESH_SECONDS),
        ]
        for name, job, seconds in jobs:
            scheduler.add_job(self._guarded(name, job), "interval", seconds=seconds, id=name, name=name,
                              max_instances=1, coalesce=True, next_run_time=self.clock.now(),
                              misfire_grace_time=None)
        scheduler.start()
        self.scheduler = scheduler
        self._stack.push_async_callback(self._stop_scheduler)

    async def _stop_scheduler(self) -> None:
        """No new runs, and the running ones stopped, before the runner and the database go away."""
        assert self.scheduler is not None
        self.scheduler.shutdown(wait=False)
        for task in list(self._running_jobs):
            task.cancel()
        await asyncio.gather(*self._running_jobs, return_exceptions=True)

    def _guarded(self, name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
        """A scheduled job: reported (see `_reported`), and stopped quietly at shutdown."""

        async def run() -> None:
            task = asyncio.current_task()
            assert task is not None
            self._running_jobs.add(task)
            try:
                await self._reported(name, job)
            except asyncio.CancelledError:
                return  # shutting down: the job runs again after the restart
            finally:
                self._running_jobs.discard(task)

        return run

    async def _reported(self, name: str, job: Callable[[], Awaitable[Any]]) -> bool:
        """A failing job (the database is down) is logged once per failure, reported in health, and retried
        by its caller; True when it succeeded."""
        try:
            await job()
        except Exception as exc:  # noqa: BLE001 - any failure of a job is reported, and the job runs again
            log.warning("job %s failed: %s: %s", name, type(exc).__name__, str(exc)[:200])
            self.health.report(f"job:{name}", False, f"{type(exc).__name__}", self.clock.now())
            return False
        self.health.report(f"job:{name}", True, "ok", self.clock.now())
        return True

    async def refresh(self) -> None:
        """Database health (critical: nothing can be recorded without it), then the derived figures when this
        instance holds `refresh` (all of them on SQLite)."""
        assert self.store is not None
        try:
            await asyncio.wait_for(self.store.ping(), timeout=5)
        except Exception as exc:
            self.health.report("database", False, f"unreachable: {type(exc).__name__}", self.clock.now(),
                               critical=True)
            return
        self.health.report("database", True, "reachable", self.clock.now(), critical=True)
        if self.fleet is not None and not self.fleet.holds(REFRESH):
            return
        # The last sends are a full scan: read once per term (afterwards the runner keeps them).
        full, self._full_refresh = self._full_refresh or self.snapshot is None, False
        self.snapshot = await asyncio.wait_for(
            compute_snapshot(self.store, self.config, self.clock.now(), with_last_sent=full),
            timeout=REFRESH_SECONDS * 4)
        self.metrics.apply_snapshot(self.snapshot)


class TermHealth:
    """`Health.report` for a call-log poller's term: its status also reaches the other instances."""

    def __init__(self, host: ServiceHost):
        self.host = host

    def report(self, name: str, ok: bool, detail: str, at: datetime) -> None:
        self.host.report(name, ok, detail)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def serve(config: Config, stop: asyncio.Event, **options: Any) -> None:
    """Run until `stop` is set (SIGINT/SIGTERM in the CLI)."""
    async with Service(config, **options):
        await stop.wait()
        log.info("stopping")
