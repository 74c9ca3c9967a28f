"""One instance alone: SQLite (which allows no fleet), and the lock that keeps a second `run` off its file.

`SingleInstance` holds every task: `lead` runs the work directly, unfenced.
`sqlite_run_lock(url)` takes an exclusive lock on `<database>.run.lock` for
the life of the process (the kernel drops it when the process dies, even by
SIGKILL); a second `qualimon run` on the same file fails at once with
`AlreadyRunning`, which names the holder's pid, instead of contending for the
database with the first.  Commands that only read or append (`status`,
`probe`, `import-calls`, ...) do not take it.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from monitor.fleet.base import FleetWork, ViewListener, run_term
from monitor.fleet.view import FleetView, TaskState

RETRY_SECONDS = 1.0  # after a term's work failed, before it runs again


class AlreadyRunning(Exception):
    """Another `qualimon run` uses this SQLite database."""


class SingleInstance:
    """Implements `Fleet` for one instance: it holds every task, and writes need no fence."""

    def __init__(self, instance: str, tasks: Sequence[str] = ()):
        self._instance = instance
        self._tasks = set(tasks)
        self._listeners: list[ViewListener] = []

    @property
    def instance(self) -> str:
        return self._instance

    @property
    def stall_seconds(self) -> float:
        return 0.0

    def holds(self, task: str) -> bool:
        return True

    async def lead(self, task: str, work: FleetWork) -> None:
        self._tasks.add(task)
        self._publish()
        never = asyncio.Event()  # nobody takes a task from the only instance
        for attempt in itertools.count():
            if attempt:
                await asyncio.sleep(RETRY_SECONDS)
            if await run_term(task, work, None, never):
                return

    def view(self) -> FleetView:
        return FleetView(self._instance, "single", tasks={t: TaskState(t, self._instance) for t in self._tasks})

    def listen(self, listener: ViewListener) -> None:
        self._listeners.append(listener)
        listener(self.view())

    def _publish(self) -> None:
        view = self.view()
        for listener in self._listeners:
            listener(view)

    def report(self, task: str, up: bool, since: datetime, detail: str) -> None:
        """Nobody else needs it: the local health check is the whole truth."""

    async def settle(self) -> None:
        await asyncio.sleep(0)  # let the lead tasks started so far register

    async def close(self) -> None:
        self._listeners.clear()


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database or another backend."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


@contextmanager
def sqlite_run_lock(url: str) -> Iterator[None]:
    """Hold `<database>.run.lock` while the block runs; raise `AlreadyRunning` if another process does."""
    database = sqlite_file(url)
    if database is None:
        yield
        return
    path = database.with_name(database.name + ".run.lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise AlreadyRunning(
                f"another `qualimon run` (pid {holder}) is using the SQLite database {database}: SQLite allows one "
                "instance; stop that one first, or move to PostgreSQL to run several (README \"Running a fleet\")"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # closing the descriptor drops the lock
