"""A fleet on PostgreSQL: one holder per singleton task, elected with session-level advisory locks.

Each instance keeps one dedicated connection (`application_name`
`qualimon <instance>`) that holds, for as long as the session lives:

- a shared advisory lock (NAMESPACE, MEMBERSHIP): counting them counts the
  running instances (`qualimon_fleet_instances`);
- an exclusive advisory lock (NAMESPACE, lock_key(task)) per task it holds.

Every `tick` (failover/5) the instance sends one statement on it: it tries
the locks of the tasks it wants and does not hold, and reads who holds what
(`pg_locks`, `fleet_leases`).  That statement is also the keepalive: the
session is opened with `idle_session_timeout` = 3/5 of the failover time,
so when the holder stops sending it — killed, frozen by SIGSTOP, cut off by
the network — PostgreSQL ends the session and drops its locks, and a
standby takes them at its next tick: within 4/5 of `fleet.failover_seconds`
after the holder's last statement.  A killed process or a terminated backend
(`pg_terminate_backend`) drops them at once.

Taking a task bumps its epoch in `fleet_leases`; the term's work runs with
that `Fence`, and every write it makes checks the epoch first in the same
transaction (`Store.fenced`).  So a holder that was paused and wakes up after
a takeover cannot write: its write fails with `LeaseLost` before it notices
it lost its connection, which it does at its next tick (at once when the
server closed it), cancelling the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.clock import Clock
from monitor.fleet.base import FleetWork, ViewListener, run_term
from monitor.fleet.tasks import MEMBERSHIP, NAMESPACE, lock_key
from monitor.fleet.view import FleetView, TaskState
from monitor.store.records import Fence

log = logging.getLogger("qualimon.fleet")

# Who holds what: the advisory locks of this database in our namespace, and the leases' rows.
_LOCKS = """
    SELECT objid::bigint AS k, pid FROM pg_locks
    WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""
TICK_SQL = f"""
WITH acquired AS MATERIALIZED (
    SELECT k FROM unnest($2::int[]) AS k WHERE pg_try_advisory_lock($1, k)
), locks AS MATERIALIZED ({_LOCKS})
SELECT (SELECT coalesce(array_agg(k), '{{}}') FROM acquired) AS acquired,
       (SELECT count(DISTINCT pid) FROM locks WHERE k = 0) AS instances,
       (SELECT coalesce(array_agg(k), '{{}}') FROM locks WHERE k <> 0) AS held,
       (SELECT coalesce(json_agg(l), '[]') FROM fleet_leases l) AS leases
"""
VIEW_SQL = TICK_SQL.replace("$2::int[]", "'{}'::int[]")
BUMP_SQL = """
INSERT INTO fleet_leases (task, epoch, holder, acquired_at) VALUES ($1, 1, $2, clock_timestamp())
ON CONFLICT (task) DO UPDATE SET epoch = fleet_leases.epoch + 1, holder = EXCLUDED.holder,
    acquired_at = EXCLUDED.acquired_at, up = NULL, since = NULL, detail = NULL
RETURNING epoch
"""
REPORT_SQL = "UPDATE fleet_leases SET up = $3, since = $4, detail = $5 WHERE task = $1 AND epoch = $2"
UNLOCK_SQL = "SELECT pg_advisory_unlock($1, $2)"
MIN_POSTGRESQL = 14  # idle_session_timeout


class FleetUnsupported(Exception):
    """The database cannot host a fleet (too old a PostgreSQL)."""


@dataclass(frozen=True)
class Timing:
    """The failover time split into its parts (see the module docstring)."""

    tick: float        # how often each instance looks at the fleet (a standby's retry, a holder's keepalive)
    idle: float        # idle_session_timeout of the lock connection; also the client's limit on one look
    stall: float       # idle_in_transaction_session_timeout of write transactions (Store.limit_stalls)

    @classmethod
    def of(cls, failover_seconds: float) -> Timing:
        """A frozen holder's session ends after `idle`, a standby looks within `tick`: 4/5 of the failover.
        A frozen holder inside a write that waits on another of its own (the chain head) frees the task's
        row after two `stall`s, and the standby looks within `tick`: 4/5 again."""
        return cls(failover_seconds / 5, failover_seconds * 3 / 5, failover_seconds * 3 / 10)


@dataclass
class Term:
    fence: Fence
    revoked: asyncio.Event = field(default_factory=asyncio.Event)
    unsent: tuple[bool, datetime, str] | None = None   # a status the other instances have not been told yet
    sent: tuple[bool, datetime] | None = None


@dataclass
class Claim:
    """A task this instance asks for: `locked` once it holds the advisory lock, `term` once the epoch is its."""

    task: str
    key: int
    locked: bool = False
    term: Term | None = None
    granted: asyncio.Event = field(default_factory=asyncio.Event)

    def grant(self, fence: Fence) -> None:
        self.term = Term(fence)
        self.granted.set()

    def revoke(self) -> None:
        if self.term is not None:
            self.term.revoked.set()
        self.term = None
        self.granted.clear()


def connect_params(url: str) -> dict[str, Any]:
    """asyncpg's arguments for a SQLAlchemy `postgresql+asyncpg://` URL, as the engine itself would connect."""
    engine = create_async_engine(url)
    try:
        _, params = engine.dialect.create_connect_args(make_url(url))
    finally:
        engine.sync_engine.dispose()
    accepted = inspect.signature(asyncpg.connect).parameters
    return {name: value for name, value in params.items() if name in accepted}


class PostgresFleet:
    """Implements `Fleet` on PostgreSQL (see the module docstring)."""

    def __init__(self, url: str, instance: str, failover_seconds: float, clock: Clock):
        self._params = connect_params(url)
        self._instance = instance
        self.failover_seconds = failover_seconds
        self.timing = Timing.of(failover_seconds)
        self._clock = clock
        self._claims: dict[str, Claim] = {}
        self._by_key: dict[int, Claim] = {}
        self._conn: asyncpg.Connection | None = None
        self._io = asyncio.Lock()  # one statement at a time on the connection
        self._wake = asyncio.Event()
        self._looked = asyncio.Event()  # set after each look at the fleet
        self._loop: asyncio.Task[None] | None = None
        self._view = FleetView(instance, "postgresql", connected=False, failover_seconds=failover_seconds)
        self._unheld_since: dict[str, datetime] = {}
        self._listeners: list[ViewListener] = []

    # ---- Fleet

    @property
    def instance(self) -> str:
        return self._instance

    @property
    def stall_seconds(self) -> float:
        return self.timing.stall

    def holds(self, task: str) -> bool:
        claim = self._claims.get(task)
        return claim is not None and claim.term is not None

    def fence(self, task: str) -> Fence | None:
        claim = self._claims.get(task)
        return claim.term.fence if claim is not None and claim.term is not None else None

    def view(self) -> FleetView:
        return self._view

    def listen(self, listener: ViewListener) -> None:
        self._listeners.append(listener)
        listener(self._view)

    async def lead(self, task: str, work: FleetWork) -> None:
        claim = self._ask(task)
        try:
            while True:
                while (term := claim.term) is None:
                    await claim.granted.wait()
                if await run_term(task, work, term.fence, term.revoked):
                    return
                if claim.term is term:  # the work failed while we held the task: let another instance try
                    await self._release(claim)
                    await asyncio.sleep(self.timing.tick)
                    self._wake.set()
        finally:
            self._claims.pop(task, None)
            self._by_key.pop(claim.key, None)
            await asyncio.shield(self._release(claim))

    def report(self, task: str, up: bool, since: datetime, detail: str) -> None:
        claim = self._claims.get(task)
        if claim is None or claim.term is None or claim.term.sent == (up, since):
            return
        claim.term.unsent = (up, since, detail[:200])
        self._wake.set()

    async def settle(self) -> None:
        """Until one look at the fleet has started and ended after this call."""
        for _ in range(2):
            self._looked.clear()
            self._wake.set()
            await self._looked.wait()

    # ---- life

    async def start(self) -> None:
        """Join the fleet; raises when the database cannot be reached or cannot host a fleet."""
        self._conn = await self._connect()
        self._loop = asyncio.create_task(self._run(), name="fleet")

    async def close(self) -> None:
        """Leave the fleet: the work of every task is stopped, the connection closed (its locks go with it)."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
        for claim in self._claims.values():
            claim.revoke()
        await self._disconnect()
        self._listeners.clear()

    # ---- the connection

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(**self._params, timeout=max(self.timing.idle, 5.0),
                                     server_settings={"application_name": f"qualimon {self._instance}"[:63]})
        try:
            if conn.get_server_version().major < MIN_POSTGRESQL:
                raise FleetUnsupported(f"a fleet needs PostgreSQL {MIN_POSTGRESQL} or later (idle_session_timeout); "
                                       f"this server is {conn.get_server_version().major}")
            keepalive = max(1, round(self.timing.tick))
            await conn.execute(
                f"SET idle_session_timeout = {round(self.timing.idle * 1000)};"
                f"SET lock_timeout = {round(self.timing.tick * 1000)};"
                f"SET statement_timeout = {round(self.timing.idle * 1000)};"
                f"SET tcp_keepalives_idle = {keepalive}; SET tcp_keepalives_interval = {keepalive};"
                "SET tcp_keepalives_count = 3;")
            await conn.execute("SELECT pg_advisory_lock_shared($1, $2)", NAMESPACE, MEMBERSHIP)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(lambda _: self._wake.set())  # a terminated backend is noticed at once
        return conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # no goodbye round trip: the server drops the locks when the socket closes

    # ---- the loop

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self._conn is None:
                    self._conn = await self._connect()
                    log.info("fleet: %s connected", self._instance)
                async with asyncio.timeout(self.timing.idle):  # not wait_for: it can swallow a cancellation
                    await self._look()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of the connection: we hold nothing any more
                failures += 1
                await self._lose(exc, failures)
            self._looked.set()
            self._publish()
            await self._pause(failures)

    async def _pause(self, failures: int) -> None:
        delay = self.timing.tick if not failures else min(self.timing.tick * 2 ** min(failures - 1, 5),
                                                          max(self.timing.tick, 30.0))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        self._wake.clear()

    async def _lose(self, exc: BaseException, failures: int) -> None:
        held = sorted(task for task, claim in self._claims.items() if claim.term is not None)
        if held or failures == 1:
            log.warning("fleet: lost the database connection (%s)%s", type(exc).__name__,
                        f"; stopping the work of {', '.join(held)}" if held else "")
        for claim in self._claims.values():
            claim.locked = False
            claim.revoke()
        await self._disconnect()
        self._view = FleetView(self._instance, "postgresql", connected=False, instances=self._view.instances,
                               failover_seconds=self.failover_seconds, tasks=self._view.tasks)

    async def _look(self) -> None:
        conn = self._conn
        assert conn is not None
        async with self._io:
            wanted = [claim.key for claim in self._claims.values() if not claim.locked]
            row = await conn.fetchrow(TICK_SQL, NAMESPACE, wanted)
            for key in row["acquired"]:
                await self._took(conn, key)
            for claim in list(self._claims.values()):
                if claim.locked and claim.term is None:
                    await self._grant(conn, claim)
                elif claim.term is not None and claim.term.unsent is not None:
                    await self._send_status(conn, claim.term)
        self._view = self._read(row)

    async def _took(self, conn: asyncpg.Connection, key: int) -> None:
        claim = self._by_key.get(key)
        if claim is None or claim.locked:  # no longer asked for: give it back at once
            await conn.execute(UNLOCK_SQL, NAMESPACE, key)
            return
        claim.locked = True

    async def _grant(self, conn: asyncpg.Connection, claim: Claim) -> None:
        """The lock is ours: bump the epoch (fencing the former holder off), then start the work."""
        try:
            epoch = await conn.fetchval(BUMP_SQL, claim.task, self._instance)
        except (asyncpg.LockNotAvailableError, asyncpg.QueryCanceledError):
            log.info("fleet: %s: a write of the former holder is still open; retrying", claim.task)
            return
        claim.grant(Fence(claim.task, epoch))
        log.info("fleet: %s now holds %s (epoch %d)", self._instance, claim.task, epoch)

    async def _send_status(self, conn: asyncpg.Connection, term: Term) -> None:
        assert term.unsent is not None
        up, since, detail = term.unsent
        await conn.execute(REPORT_SQL, term.fence.task, term.fence.epoch, up, since, detail)
        term.unsent, term.sent = None, (up, since)

    async def _release(self, claim: Claim) -> None:
        claim.revoke()
        if not claim.locked:
            return
        claim.locked = False
        conn = self._conn
        if conn is None or conn.is_closed():
            return
        try:
            async with self._io, asyncio.timeout(self.timing.idle):
                await conn.execute(UNLOCK_SQL, NAMESPACE, claim.key)
        except Exception as exc:  # noqa: BLE001 - the connection is failing: the next look drops it all
            log.debug("fleet: releasing %s failed: %s", claim.task, type(exc).__name__)
        self._wake.set()

    def _ask(self, task: str) -> Claim:
        if task in self._claims:
            raise ValueError(f"{task!r} is already led by this instance")
        key = lock_key(task)
        other = self._by_key.get(key)
        if other is not None:
            raise ValueError(f"tasks {task!r} and {other.task!r} share an advisory-lock key: rename one")
        claim = self._claims[task] = self._by_key[key] = Claim(task, key)
        self._wake.set()
        return claim

    # ---- what we saw

    def _read(self, row: Any) -> FleetView:
        held = set(row["held"]) | {claim.key for claim in self._claims.values() if claim.term is not None}
        leases = {lease["task"]: lease for lease in _leases(row["leases"])}
        now = self._clock.now()
        tasks: dict[str, TaskState] = {}
        for task in {*leases, *self._claims}:
            tasks[task] = self._state(task, leases.get(task), lock_key(task) in held, now)
        return FleetView(self._instance, "postgresql", connected=True, instances=int(row["instances"]),
                         failover_seconds=self.failover_seconds, tasks=tasks)

    def _state(self, task: str, lease: dict[str, Any] | None, held: bool, now: datetime) -> TaskState:
        if not held or lease is None:
            unheld_since = self._unheld_since.setdefault(task, now)
            return TaskState(task, None, int(lease["epoch"]) if lease else 0, unheld_since=unheld_since)
        self._unheld_since.pop(task, None)
        return TaskState(task, lease["holder"], int(lease["epoch"]), _instant(lease["acquired_at"]),
                         lease["up"], _instant(lease["since"]), lease["detail"])

    def _publish(self) -> None:
        for listener in self._listeners:
            try:
                listener(self._view)
            except Exception:  # a broken listener must not stop the election
                log.exception("fleet: a view listener failed")


def _instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _leases(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `leases` column: JSON text from a plain asyncpg connection, already decoded from SQLAlchemy's."""
    return json.loads(value) if isinstance(value, str) else value


async def read_view(conn: asyncpg.Connection, instance: str = "", failover_seconds: float = 0.0,
                    now: datetime | None = None) -> FleetView:
    """The fleet as seen from outside it (`qualimon status`): who holds what, without asking for anything."""
    row = await conn.fetchrow(VIEW_SQL, NAMESPACE)
    held = set(row["held"])
    tasks: dict[str, TaskState] = {}
    for lease in _leases(row["leases"]):
        task = lease["task"]
        if lock_key(task) in held:
            tasks[task] = TaskState(task, lease["holder"], int(lease["epoch"]), _instant(lease["acquired_at"]),
                                    lease["up"], _instant(lease["since"]), lease["detail"])
        else:
            tasks[task] = TaskState(task, None, int(lease["epoch"]), unheld_since=now)
    return FleetView(instance, "postgresql", instances=int(row["instances"]), failover_seconds=failover_seconds,
                     tasks=tasks)


def expected(tasks: Sequence[str], view: FleetView) -> FleetView:
    """`view` listing every task of `tasks` too, unheld when no row names it yet."""
    missing = {task: TaskState(task, None) for task in tasks if task not in view.tasks}
    return FleetView(view.instance, view.backend, view.connected, view.instances, view.failover_seconds,
                     {**view.tasks, **missing})
