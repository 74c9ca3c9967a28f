"""Engine creation for SQLite (aiosqlite) and PostgreSQL (asyncpg), and database URL display.

SQLite needs two adjustments to behave like a server database under
concurrent writers: WAL (readers don't block the writer) with a busy timeout,
and write transactions opened with `BEGIN IMMEDIATE`.  Without the latter,
two transactions that both read the chain head and then write would deadlock
on the lock upgrade and one would fail with "database is locked".

SQLite's limit on bound parameters per statement depends on the build
(32,766 by default, 250,000 on Debian): every connection is pinned to the
default, so a statement refused on one platform is refused on all of them,
tests included (`monitor.store.inlists` keeps statements far below it).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

WRITE = "qualimon_write"
SQLITE_MAX_PARAMETERS = 32_766


class _DefaultLimitsConnection(sqlite3.Connection):
    """A sqlite3 connection with the default build's parameter limit, whatever this build allows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_MAX_PARAMETERS)


def safe_url(url: str) -> str:
    """The URL with its password hidden, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL may still contain a secret: show nothing of it
        return "<unparsable database URL>"


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30, "factory": _DefaultLimitsConnection})
        _tune_sqlite(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")


async def writing(conn: AsyncConnection) -> AsyncConnection:
    """Mark a connection as about to write (takes SQLite's write lock at BEGIN)."""
    return await conn.execution_options(**{WRITE: True})


def is_postgres(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "postgresql"
