"""A fleet on the local PostgreSQL, in one process: election, takeover, fencing, shared dispatch, SQLite refusal.

The instances here are `PostgresFleet`s and `Service`s side by side on one
event loop, each with its own connections, so a test can cut one's database
connection (`pg_terminate_backend`) or freeze its election loop (what SIGSTOP
does to a process) and watch the others.  `tests/test_fleet_failover.py`
does the same to three real `qualimon run` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import select

from monitor.clock import SystemClock
from monitor.config import Config, parse_config
from monitor.fleet import AlreadyRunning
from monitor.fleet.postgres import PostgresFleet
from monitor.fleet.tasks import fleet_tasks
from monitor.service import Service
from monitor.store.records import CLAIMED, Cursor, Fence, LeaseLost, NewProbe
from monitor.store.schema import FleetLease
from monitor.store.store import Store
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.dbservers import DatabaseServer

pytestmark = pytest.mark.integration

FAILOVER = 2.0  # seconds: short, so a frozen holder is replaced within a test's patience
PATIENCE = 30.0  # seconds any wait below may take before the test fails (never a measured duration)


@pytest.fixture
def fleet_db(postgres_server: DatabaseServer) -> Iterator[tuple[str, str]]:
    """A migrated database of its own: (its name, its URL)."""
    name, url = create_pg_database(postgres_server)
    yield name, url
    drop_pg_database(postgres_server, name)


@pytest.fixture
async def admin(postgres_server: DatabaseServer, fleet_db: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(postgres_server.dsn(fleet_db[0]))
    yield conn
    await conn.close()


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while True:
        outcome = condition()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.02)


class Worker:
    """The work of one task on one instance: who runs it now, under which fence."""

    def __init__(self) -> None:
        self.running: dict[str, Fence] = {}
        self.stopped: list[str] = []

    def work(self, instance: str) -> Callable[[Fence | None], Awaitable[None]]:
        async def run(fence: Fence | None) -> None:
            assert fence is not None
            self.running[instance] = fence
            try:
                await asyncio.Event().wait()
            finally:
                del self.running[instance]
                self.stopped.append(instance)

        return run

    def holder(self) -> str:
        [instance] = self.running
        return instance


@contextlib.asynccontextmanager
async def fleet_of(url: str, count: int, task: str, worker: Worker) -> AsyncIterator[dict[str, PostgresFleet]]:
    """`count` instances, each asking for `task`; yields them by name once one holds it."""
    fleets = {f"i{n}": PostgresFleet(url, f"i{n}", FAILOVER, SystemClock()) for n in range(count)}
    leads = []
    try:
        for name, fleet in fleets.items():
            await fleet.start()
            leads.append(asyncio.create_task(fleet.lead(task, worker.work(name))))
        await until(lambda: len(worker.running) == 1, f"one holder of {task}")
        yield fleets
    finally:
        for lead in leads:
            lead.cancel()
        await asyncio.gather(*leads, return_exceptions=True)
        for fleet in fleets.values():
            await fleet.close()


async def backend_of(admin: asyncpg.Connection, instance: str) -> int:
    return await admin.fetchval("SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                                f"qualimon {instance}")


async def epoch_of(store: Store, task: str) -> int:
    async with store.read() as conn:
        return (await conn.execute(select(FleetLease.epoch).where(FleetLease.task == task))).scalar_one()


# ---------------------------------------------------------------- election and takeover


async def test_one_instance_of_three_holds_a_task_and_the_others_stand_by(fleet_db) -> None:
    worker = Worker()
    async with fleet_of(fleet_db[1], 3, "planner", worker) as fleets:
        holder = worker.holder()
        for fleet in fleets.values():
            await fleet.settle()
        assert [name for name, fleet in fleets.items() if fleet.holds("planner")] == [holder]
        for fleet in fleets.values():
            view = fleet.view()
            assert view.instances == 3 and view.holder("planner") == holder
        assert worker.running[holder] == Fence("planner", 1)


async def test_a_standby_takes_over_when_the_holders_backend_is_terminated(fleet_db, admin) -> None:
    worker = Worker()
    async with fleet_of(fleet_db[1], 3, "planner", worker) as fleets:
        first = worker.holder()
        await admin.execute("SELECT pg_terminate_backend($1)", await backend_of(admin, first))
        await until(lambda: bool(worker.running) and first not in worker.running, "a new holder")
        second = worker.holder()
        assert worker.running[second] == Fence("planner", 2)
        assert first in worker.stopped  # the former holder noticed and stopped its work
        await until(lambda: fleets[first].view().connected, "the former holder to rejoin as a standby")
        await fleets[first].settle()
        assert not fleets[first].holds("planner") and worker.holder() == second


async def test_a_frozen_holder_is_replaced_and_its_late_writes_are_refused(fleet_db) -> None:
    """SIGSTOP in miniature: the holder's election loop stops, its work and its connection stay."""
    store = Store.open(fleet_db[1])
    worker = Worker()
    try:
        async with fleet_of(fleet_db[1], 2, "mailbox:mystery", worker) as fleets:
            frozen = worker.holder()
            old = worker.running[frozen]
            loop = fleets[frozen]._loop
            assert loop is not None
            loop.cancel()  # it stops looking at the fleet: its session goes idle, and PostgreSQL ends it
            await until(lambda: len(worker.running) == 2, "a second holder while the frozen one still runs")
            [other] = set(worker.running) - {frozen}
            assert worker.running[other] == Fence("mailbox:mystery", old.epoch + 1)
            await store.fenced(worker.running[other]).save_cursor(Cursor("imap:mystery", 7, 42))

            with pytest.raises(LeaseLost):  # the frozen holder wakes and tries to write: refused
                await store.fenced(old).save_cursor(Cursor("imap:mystery", 7, 40))
            assert await store.cursor("imap:mystery") == Cursor("imap:mystery", 7, 42)
    finally:
        await store.close()


async def test_an_instance_leaving_is_counted_out(fleet_db) -> None:
    worker = Worker()
    async with fleet_of(fleet_db[1], 3, "sweeper", worker) as fleets:
        leaving = next(name for name in fleets if name not in worker.running)
        await fleets[leaving].close()
        remaining = [fleet for name, fleet in fleets.items() if name != leaving]
        for fleet in remaining:
            # The server ends the closed session (and frees its locks) a moment after the client closed it:
            # a few looks, bounded, not one.
            for _ in range(20):
                await fleet.settle()
                if fleet.view().instances == 2:
                    break
            assert fleet.view().instances == 2


async def test_work_that_fails_is_competed_for_again(fleet_db) -> None:
    attempts: list[str] = []

    def failing(instance: str) -> Callable[[Fence | None], Awaitable[None]]:
        async def run(fence: Fence | None) -> None:
            attempts.append(instance)
            if len(attempts) < 3:
                raise RuntimeError("the watcher tripped")
            await asyncio.Event().wait()

        return run

    fleets = [PostgresFleet(fleet_db[1], f"i{n}", FAILOVER, SystemClock()) for n in range(2)]
    leads = []
    try:
        for n, fleet in enumerate(fleets):
            await fleet.start()
            leads.append(asyncio.create_task(fleet.lead("refresh", failing(f"i{n}"))))
        await until(lambda: len(attempts) >= 3, "the task to be taken again after each failure")
        await until(lambda: sum(fleet.holds("refresh") for fleet in fleets) == 1, "one holder at the end")
    finally:
        for lead in leads:
            lead.cancel()
        await asyncio.gather(*leads, return_exceptions=True)
        for fleet in fleets:
            await fleet.close()


# ---------------------------------------------------------------- fencing in the store


async def test_a_write_under_a_former_epoch_is_refused_and_leaves_nothing(fleet_db) -> None:
    store = Store.open(fleet_db[1])
    try:
        async with store.write() as tx:
            await tx.conn.execute(FleetLease.__table__.insert(), [{
                "task": "calllog:pbx", "epoch": 4, "holder": "i1", "acquired_at": datetime.now(UTC)}])
        now = datetime.now(UTC)
        with pytest.raises(LeaseLost, match="calllog:pbx"):
            async with store.fenced(Fence("calllog:pbx", 3)).write() as tx:
                await tx.insert_probes([NewProbe(site="petit-palais", channel="email", planned_at=now)], now)
        assert await store.probes_where() == [] and (await store.verify_chain()).events == 0
        async with store.fenced(Fence("calllog:pbx", 4)).write() as tx:
            await tx.insert_probes([NewProbe(site="petit-palais", channel="email", planned_at=now)], now)
        assert len(await store.probes_where()) == 1
    finally:
        await store.close()


async def test_a_takeover_waits_for_the_former_holders_open_write_and_then_sees_it(fleet_db) -> None:
    store = Store.open(fleet_db[1])
    worker = Worker()
    try:
        async with fleet_of(fleet_db[1], 2, "calllog:pbx", worker) as fleets:
            holder = worker.holder()
            [standby] = set(fleets) - {holder}
            fence = worker.running[holder]
            entered, release = asyncio.Event(), asyncio.Event()

            async def slow_write() -> None:
                async with store.fenced(fence).write() as tx:
                    entered.set()
                    await release.wait()
                    await tx.set_cursor(Cursor("calllog:pbx", position={"cursor": "written-before"}),
                                        datetime.now(UTC))

            writing = asyncio.create_task(slow_write())
            await entered.wait()
            fleets[holder]._loop.cancel()  # frozen; its session ends, the standby gets the lock...
            claim = fleets[standby]._claims["calllog:pbx"]
            await until(lambda: claim.locked, "the standby to hold the lock")
            await fleets[standby].settle()  # ...and tries to bump the epoch, in vain while the write is open
            assert claim.term is None and await epoch_of(store, "calllog:pbx") == fence.epoch
            release.set()
            await writing
            await until(lambda: claim.term is not None, "the takeover once the write committed")
            assert await epoch_of(store, "calllog:pbx") == fence.epoch + 1
            assert (await store.cursor("calllog:pbx")).position == {"cursor": "written-before"}
    finally:
        await store.close()


async def test_a_write_left_open_by_a_frozen_holder_does_not_hold_the_takeover_back(fleet_db) -> None:
    store = Store.open(fleet_db[1])
    worker = Worker()
    try:
        async with fleet_of(fleet_db[1], 2, "calllog:pbx", worker) as fleets:
            holder = worker.holder()
            fence = worker.running[holder]
            entered, release = asyncio.Event(), asyncio.Event()

            async def frozen_write() -> None:
                stalling = store.fenced(fence)
                stalling.limit_stalls(fleets[holder].stall_seconds)
                async with stalling.write() as tx:
                    entered.set()
                    await release.wait()
                    await tx.set_cursor(Cursor("calllog:pbx", position={"cursor": "late"}), datetime.now(UTC))

            writing = asyncio.create_task(frozen_write())
            await entered.wait()
            fleets[holder]._loop.cancel()
            await until(lambda: len(worker.running) == 2, "the takeover while the write is still open")
            release.set()
            with pytest.raises(Exception):  # noqa: B017 - the server ended that transaction: any error will do
                await writing
            assert await store.cursor("calllog:pbx") is None
    finally:
        await store.close()


async def test_a_frozen_instance_holding_the_chain_head_holds_the_others_back_only_for_the_stall_limit(
        fleet_db: tuple[str, str]) -> None:
    frozen, other = Store.open(fleet_db[1]), Store.open(fleet_db[1])
    frozen.limit_stalls(1.0)
    entered, release = asyncio.Event(), asyncio.Event()
    now = datetime.now(UTC)

    async def frozen_write() -> None:
        async with frozen.write() as tx:
            tx.event(None, "operator_alert", now, message="from the frozen instance")
            await tx.flush_events()  # the chain head is locked until this transaction ends
            entered.set()
            await release.wait()

    try:
        writing = asyncio.create_task(frozen_write())
        await entered.wait()
        async with other.write() as tx:  # waits for the chain head until the server ends the frozen write
            tx.event(None, "operator_alert", now, message="from a live instance")
        release.set()
        with pytest.raises(Exception):  # noqa: B017 - the server ended that transaction: any error will do
            await writing
        events = await other.events_since(0)
        assert [e.data["message"] for e in events] == ["from a live instance"]
        assert (await other.verify_chain()).ok
    finally:
        await frozen.close()
        await other.close()


# ---------------------------------------------------------------- dispatch stays shared


async def test_two_dispatchers_claiming_at_once_never_take_two_calls_to_one_site(fleet_db) -> None:
    """A's claim of the site's first call is not committed when B looks: before the site lock, B's busy check
    could not see it, and B took the site's second call (which A's candidates had left unlocked)."""
    store = Store.open(fleet_db[1])
    now = datetime.now(UTC)
    lease = now + timedelta(minutes=5)

    def due(channel: str, seconds_ago: int) -> NewProbe:
        return NewProbe(site="petit-palais", channel=channel, planned_at=now - timedelta(seconds=seconds_ago))

    first_call, second_call = due("phone", 10), due("phone", 6)
    emails = [due("email", seconds) for seconds in (9, 8, 7)]
    try:
        async with store.write() as tx:
            await tx.insert_probes([first_call, *emails, second_call], now)
        async with store.write() as a:
            claimed_a = await a.claim_due(now, 1, "a", lease, exclusive=["phone"])  # looks at 4: not the 2nd call
            async with store.write() as b:
                claimed_b = await b.claim_due(now, 5, "b", lease, exclusive=["phone"])
        assert [p.id for p in claimed_a] == [first_call.id]
        assert claimed_b == []
        async with store.write() as tx:
            later = await tx.claim_due(now, 5, "b", lease, exclusive=["phone"])
        assert sorted(p.id for p in later) == sorted(p.id for p in emails)  # the call waits for the first one
        in_flight = [p for p in await store.probes_where() if p.status == CLAIMED and p.channel == "phone"]
        assert [p.id for p in in_flight] == [first_call.id]
    finally:
        await store.close()


# ---------------------------------------------------------------- SQLite stays single-instance


SQLITE_CONFIG = """
database: sqlite+aiosqlite:///{db}
http: {{listen: "127.0.0.1:0"}}
calendars:
  offices: {{}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: {tmp}/Maildir}}
sites:
  - {{id: petit-palais, name: Petit Palais, calendar: offices, email: {{address: info.pp@example.org, per_month: 0}}}}
"""


async def test_a_second_service_on_one_sqlite_file_is_refused_and_the_first_keeps_running(tmp_path: Path) -> None:
    config = parse_config(SQLITE_CONFIG.format(db=tmp_path / "q.db", tmp=tmp_path))
    async with Service(config, kinds={}) as first:
        with pytest.raises(AlreadyRunning, match=r"another `qualimon run` \(pid \d+\) is using the SQLite database"):
            async with Service(config, kinds={}):
                pass
        assert first.health.is_ok("database") is True
    async with Service(config, kinds={}):  # the lock went with the first
        pass


def test_qualimon_run_refuses_a_second_instance_on_one_sqlite_file(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "q.yaml"
    path.write_text(SQLITE_CONFIG.format(db=tmp_path / "q.db", tmp=tmp_path))
    (tmp_path / "Maildir").mkdir()
    command = [sys.executable, "-m", "monitor", "run", "-c", str(path)]
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert first.stderr is not None
        for line in first.stderr:  # bounded by the process: it logs this line once running
            if "qualimon running" in line:
                break
        second = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert f"another `qualimon run` (pid {first.pid}) is using the SQLite database" in second.stderr
        assert first.poll() is None  # the first one runs on
    finally:
        first.terminate()
        first.communicate(timeout=30)


# ---------------------------------------------------------------- services side by side


FLEET_CONFIG = """
database: {database}
http: {{listen: "127.0.0.1:0"}}
calendars:
  offices: {{working_days: [mon, tue, wed, thu, fri]}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: {maildir}}}
fleet: {{failover_seconds: {failover}}}
runner: {{dispatch_interval_seconds: 0.2}}
sites:
  - {{id: petit-palais, name: Petit Palais, calendar: offices, email: {{address: info.pp@example.org, per_month: 0}}}}
"""


def fleet_config(url: str, tmp_path: Path) -> Config:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    return parse_config(FLEET_CONFIG.format(database=url, maildir=tmp_path / "Maildir", failover=FAILOVER))


@contextlib.asynccontextmanager
async def services(config: Config, count: int) -> AsyncIterator[list[Service]]:
    from probes.email import KIND as email

    async with contextlib.AsyncExitStack() as stack:
        started = [await stack.enter_async_context(Service(config, kinds={"email": email}, instance=f"s{n}"))
                   for n in range(count)]
        for service in started:
            assert service.fleet is not None
            await service.fleet.settle()
        yield started


def role(service: Service, task: str) -> float | None:
    return service.registry.get_sample_value("qualimon_fleet_role", {"task": task})


def exports_derived(service: Service) -> bool:
    return any(metric.name == "qualimon_probes_open" for metric in service.registry.collect())


async def test_two_services_run_each_singleton_task_once_and_export_the_derived_gauges_once(
        fleet_db, tmp_path: Path) -> None:
    config = fleet_config(fleet_db[1], tmp_path)
    async with services(config, 2) as (a, b):
        for task in fleet_tasks(config):
            assert role(a, task) + role(b, task) == 1, task
            assert a.fleet.holds(task) != b.fleet.holds(task)
        assert {a.registry.get_sample_value("qualimon_fleet_instances"),
                b.registry.get_sample_value("qualimon_fleet_instances")} == {2}
        refresher, other = (a, b) if a.fleet.holds("refresh") else (b, a)
        await until(lambda: exports_derived(refresher), "the refresh holder to export the derived gauges")
        assert not exports_derived(other)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{other.http_port}/healthz") as response:
                body = await response.json()
        assert body["fleet"]["instance"] == other.instance and body["fleet"]["instances"] == 2
        refresh = body["fleet"]["tasks"]["refresh"]
        assert refresh == {"holder": refresher.instance, "here": False, "epoch": 1, "since": refresh["since"]}


async def test_a_mailbox_read_on_another_instance_counts_as_read_on_every_instance(fleet_db, tmp_path: Path) -> None:
    config = fleet_config(fleet_db[1], tmp_path)
    async with services(config, 2) as (a, b):
        reader, other = (a, b) if a.fleet.holds("mailbox:mystery") else (b, a)
        await until(lambda: reader.health.is_ok("mailbox:mystery") is True, "the reader to list the Maildir")
        await until(lambda: other.health.is_ok("mailbox:mystery") is True, "the other to learn it")
        assert other.host.status_of("mailbox", "mystery").since == reader.health.check("mailbox:mystery").since
        assert other.registry.get_sample_value("qualimon_mailbox_up", {"mailbox": "mystery"}) == 1

        await reader.__aexit__(None, None, None)  # the reader stops: the other takes the mailbox over
        await until(lambda: other.fleet.holds("mailbox:mystery"), "the takeover")
        await until(lambda: other.health.is_ok("mailbox:mystery") is True, "the new reader to list it")


async def test_qualimon_status_says_which_instance_holds_which_task(fleet_db, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    config = fleet_config(fleet_db[1], tmp_path)
    path = tmp_path / "fleet.yaml"
    path.write_text(FLEET_CONFIG.format(database=fleet_db[1], maildir=tmp_path / "Maildir", failover=FAILOVER))
    async with services(config, 2) as (a, b):
        holders = {task: (a if a.fleet.holds(task) else b).instance for task in fleet_tasks(config)}
        await asyncio.to_thread(main, ["status", "-c", str(path), "--fleet", "--format", "json"])
        shown = json.loads(capsys.readouterr().out)
        await asyncio.to_thread(main, ["status", "-c", str(path)])
        table = capsys.readouterr().out
    assert shown["instances"] == 2
    assert {task: state["holder"] for task, state in shown["tasks"].items()} == holders
    assert "Fleet: 2 instance(s) running on this database" in table
    assert all(f"{task}  " in table for task in holders)


def test_only_the_refresh_holder_exports_the_database_derived_gauges(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.metrics import DerivedSnapshot, Metrics
    from monitor.metrics.exposition import served

    config = parse_config(SQLITE_CONFIG.format(db=tmp_path / "q.db", tmp=tmp_path))
    registry = CollectorRegistry()
    metrics = Metrics(registry, config)
    metrics.apply_snapshot(DerivedSnapshot(probes_open={("petit-palais", "email"): 3}))
    metrics.fleet(["planner", "mailbox:mystery"], 3)

    def exposed() -> str:
        exposition = served(registry)
        assert exposition is not None
        return b"".join(exposition.body(openmetrics=False, gzip=False)).decode()

    metrics.export_derived(False)
    text = exposed()
    assert "qualimon_probes_open" not in text and "qualimon_commitment_compliance_ratio" not in text
    assert 'qualimon_fleet_role{task="planner"} 1.0' in text and 'qualimon_fleet_role{task="refresh"} 0.0' in text
    assert "qualimon_fleet_instances 3.0" in text and "qualimon_probes_sent_total" in text
    metrics.export_derived(True)  # a new holder: shown from its first snapshot on, never the old values
    assert "qualimon_probes_open" not in exposed()
    metrics.apply_snapshot(DerivedSnapshot(probes_open={("petit-palais", "email"): 4}))
    assert 'qualimon_probes_open{channel="email",site="petit-palais"} 4.0' in exposed()
