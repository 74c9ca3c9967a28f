"""Throw-away databases for the store suite: a SQLite file and the local PostgreSQL.

PostgreSQL (127.0.0.1:5432, user postgres, trust auth) gets one database per
test session, created from the `test` database and dropped at the end; each
test then starts from empty tables.  SQLite gets a fresh file per test,
copied from a migrated template so Alembic runs once per session.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

from sqlalchemy import text

from monitor.store import migrate
from monitor.store.schema import Base
from monitor.store.store import Store
from tests.support.integration import tcp_open

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = os.environ.get("QUALIMON_TEST_PG_ADMIN", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test")


def postgres_available() -> bool:
    return tcp_open(PG_HOST, PG_PORT)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> tuple[str, str]:
    name = f"qualimon_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    migrate.upgrade(url)
    return name, url


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_template(directory: Path) -> Path:
    path = directory / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def fresh_sqlite(template: Path, directory: Path) -> str:
    target = directory / "store.db"
    shutil.copy(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def empty_tables(store: Store) -> None:
    async with store.engine.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name != "chain_head")
        await conn.execute(text(f"TRUNCATE {names}"))
        await conn.execute(text("UPDATE chain_head SET seq = 0, hash = :genesis"), {"genesis": "0" * 64})
