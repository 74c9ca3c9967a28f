"""What several benchmarks share: a throw-away PostgreSQL database and the machine line of RESULTS.md."""

from __future__ import annotations

import os
import platform
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
