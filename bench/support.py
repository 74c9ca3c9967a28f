"""What several benchmarks share: scratch PostgreSQL and MariaDB databases, and the machine line of RESULTS.md.

The databases live on the servers the test suite uses (tests/support/dbservers.py): the configured ones
(127.0.0.1:5432 and :3306 unless QUALIMON_TEST_PG_PORT / QUALIMON_TEST_MARIADB_PORT or the admin URLs say
otherwise) when they answer, else throw-away servers started for the run — which say so, since figures
from a throw-away server (fsync off, small buffers) are not comparable with the recorded ones.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from tests.support import dbservers


def machine() -> str:
    load = os.getloadavg()[0]
    return (f"`{' '.join(platform.uname())}`, `nproc` = {os.cpu_count()}, load average at start {load:.1f}, "
            f"Python {platform.python_version()}")


def scratch_postgres() -> contextlib.AbstractAsyncContextManager[str | None]:
    """A new PostgreSQL database (its asyncpg URL), dropped afterwards; None, with the reason on stderr, when
    no server answers and none can be started."""
    return _scratch(dbservers.postgres_server)


def scratch_mariadb() -> contextlib.AbstractAsyncContextManager[str | None]:
    """A new MariaDB database (its aiomysql URL), dropped afterwards; None as above."""
    return _scratch(dbservers.mariadb_server)


@asynccontextmanager
async def _scratch(find: Callable[[], contextlib.AbstractContextManager[dbservers.DatabaseServer]],
                   ) -> AsyncIterator[str | None]:
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(find())
        except dbservers.ServerUnavailable as missing:
            print(f"  skipped: needs {missing}", file=sys.stderr, flush=True)
            yield None
            return
        if server.root is not None:
            print(f"  note: on a {server.describe()}, not the configured server", file=sys.stderr, flush=True)
        async with server.scratch("qualimon_bench") as url:
            yield url


@asynccontextmanager
async def serving_api(config: Any) -> AsyncIterator[str]:
    """qualimon's real HTTP app (`make_app`: API, status page, /metrics) on a loopback port, without the
    scheduler or probes; yields its base URL, e.g. `http://127.0.0.1:41235`."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from monitor.clock import SystemClock
    from monitor.health import Health
    from monitor.http import make_app
    from monitor.store.store import Store

    store = Store.open(config.database)
    service = SimpleNamespace(config=config, store=store, runner=None, clock=SystemClock(), health=Health(),
                              registry=CollectorRegistry(), snapshot=None)
    runner = web.AppRunner(make_app(service), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await store.close()
