"""Throw-away databases for the store suite: a SQLite file and a PostgreSQL database.

PostgreSQL (the server tests/support/dbservers.py finds or starts) gets one
migrated database per test session, dropped at the end; each test then
starts from empty tables.  SQLite gets a fresh file per test, copied from a
migrated template so Alembic runs once per session.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from sqlalchemy import text

from monitor.store import migrate
from monitor.store.schema import Base
from monitor.store.store import Store
from tests.support.dbservers import DatabaseServer


def create_pg_database(server: DatabaseServer) -> tuple[str, str]:
    """A new database on `server`, migrated to the current schema: (its name, its SQLAlchemy URL)."""
    name = asyncio.run(server.create_database())
    url = server.url(name)
    migrate.upgrade(url)
    return name, url


def drop_pg_database(server: DatabaseServer, name: str) -> None:
    asyncio.run(server.drop_database(name))


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
