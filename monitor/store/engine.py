"""Engine creation for SQLite (aiosqlite) and PostgreSQL (asyncpg), and database URL display.

SQLite needs two adjustments to behave like a server database under
concurrent writers: WAL (readers don't block the writer) with a busy timeout,
and write transactions opened with `BEGIN IMMEDIATE`.  Without the latter,
two transactions that both read the chain head and then write would deadlock
on the lock upgrade and one would fail with "database is locked".
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

WRITE = "qualimon_write"


def safe_url(url: str) -> str:
    """The URL with its password hidden, fit for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL may still contain a secret: show nothing of it
        return "<unparsable database URL>"


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the database (or the way to it) is down, rather than that a statement was wrong:
    the former is our failure and is waited out; the latter must not be mistaken for it."""
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return False


def create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})
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
