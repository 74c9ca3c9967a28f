"""What the service asks of a fleet, whichever backend: `Fleet`, and how one term of a task's work runs.

A term is the time one instance holds a task: its work starts when the task
is granted and is cancelled when it is lost.  Work that fails (an exception
other than cancellation) is logged, its task given up for a moment so that
another instance may take it, and competed for again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from monitor.fleet.view import FleetView
from monitor.store.records import Fence

log = logging.getLogger("qualimon.fleet")

#: One term of a task's work; `None` when no fence is needed (a single instance holds everything).
FleetWork = Callable[["Fence | None"], Coroutine[Any, Any, None]]
ViewListener = Callable[[FleetView], None]


class Fleet(Protocol):
    @property
    def instance(self) -> str:
        """This instance's name in the fleet (host:pid)."""
        ...

    @property
    def stall_seconds(self) -> float:
        """How long a write transaction may stall before the database ends it (0: never; see Store.limit_stalls)."""
        ...

    def holds(self, task: str) -> bool: ...

    async def lead(self, task: str, work: FleetWork) -> None:
        """Run `work` in each term this instance holds `task`; returns when `work` returns, or when cancelled."""
        ...

    def view(self) -> FleetView: ...

    def listen(self, listener: ViewListener) -> None:
        """Call `listener` with each new view (after every look at the fleet)."""
        ...

    def report(self, task: str, up: bool, since: datetime, detail: str) -> None:
        """The holder's status of `task`'s work, for the other instances (`status_of` on them)."""
        ...

    async def settle(self) -> None:
        """Until the tasks asked for so far have been competed for once (start-up, tests)."""
        ...

    async def close(self) -> None: ...


async def run_term(task: str, work: FleetWork, fence: Fence | None, revoked: asyncio.Event) -> bool:
    """Run one term of `work` until it returns or `revoked` is set; True when it returned normally.

    Raises nothing but cancellation: a failure of `work` is logged and counts as a term that ended."""
    term: asyncio.Task[None] = asyncio.create_task(work(fence), name=f"fleet {task}")
    lost = asyncio.create_task(revoked.wait())
    try:
        done, _ = await asyncio.wait({term, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (term, lost):
            pending.cancel()
        await asyncio.gather(term, lost, return_exceptions=True)
    if term not in done:
        log.warning("%s: lost the task; its work was stopped", task)
        return False
    if term.cancelled():
        return False
    error = term.exception()
    if error is not None:
        log.error("%s: work failed (%s: %s); competing for the task again", task, type(error).__name__,
                  str(error)[:200])
        return False
    return True
