"""What several benchmarks share: a throw-away PostgreSQL database and the machine line of RESULTS.md."""

from __future__ import annotations

import os
import platform
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def machine() -> str:
    load = os.getloadavg()[0]
    return (f"`{' '.join(platform.uname())}`, `nproc` = {os.cpu_count()}, load average at start {load:.1f}, "
            f"Python {platform.python_version()}")


@asynccontextmanager
async def scratch_postgres() -> AsyncIterator[str | None]:
    """A new database on the local PostgreSQL (its asyncpg URL), dropped afterwards; None when unreachable."""
    import asyncpg

    name = f"qualimon_bench_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(ADMIN_URL)
    except OSError:
        yield None
        return
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


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
