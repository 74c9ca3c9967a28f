"""Storing judged calls from call logs: thousands of rows at once, each (source, record_key) at most once.

On PostgreSQL (asyncpg) a batch is copied with binary COPY
(`copy_records_to_table`) into a temporary table, then merged into `calls`
by one `INSERT … SELECT … ON CONFLICT (source, record_key) DO NOTHING`,
inside the caller's transaction: the one that also moves the reader's
cursor, so a crash neither loses nor doubles a call.  Elsewhere (SQLite) one
multi-row insert-or-ignore does the same; it is also the path PostgreSQL
took before COPY (`insert_ignore`), kept so the two can be compared.  Both
store identical rows, in the order given, and return how many were new.

Rows are plain tuples in `CALL_COLUMNS` order with aware UTC instants: no
per-value processing on the way, which is what made the old path slow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.schema import Call

CALL_COLUMNS = ("source", "record_key", "site", "dialled", "caller_hash", "started_at", "answered_at", "ended_at",
                "ring_seconds", "outcome", "legs", "opening", "commitment", "verdict", "delay_seconds", "late",
                "reason", "ingested_at")

CallRow = tuple[Any, ...]

_STAGING = "calls_incoming"
# Per connection, emptied at every commit (and never filled outside a transaction that merges it).
_CREATE_STAGING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} (
    ord integer NOT NULL, source text, record_key text, site text, dialled text, caller_hash text,
    started_at timestamptz, answered_at timestamptz, ended_at timestamptz, ring_seconds double precision,
    outcome text, legs integer, opening text, commitment text, verdict text, delay_seconds double precision,
    late boolean, reason text, ingested_at timestamptz
) ON COMMIT DELETE ROWS
"""
_COLUMN_LIST = ", ".join(CALL_COLUMNS)
# ORDER BY: the first of two rows with one key wins and ids follow the batch order, as with a multi-row INSERT.
_MERGE = (f"INSERT INTO calls ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGING} ORDER BY ord "
          "ON CONFLICT (source, record_key) DO NOTHING")


async def add_calls(conn: AsyncConnection, rows: Sequence[CallRow]) -> int:
    """Store the calls not stored yet (by source and record key), in the open transaction; how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        return await copy_merge(conn, rows)
    return await insert_ignore(conn, rows)


async def copy_merge(conn: AsyncConnection, rows: Sequence[CallRow]) -> int:
    """PostgreSQL: COPY into the staging table, one merge into `calls`."""
    await conn.execute(text(_CREATE_STAGING))  # also makes SQLAlchemy open the transaction on the driver
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():  # COPY outside it would commit calls without the cursor
        raise RuntimeError("calls must be copied inside the transaction that moves the reader's cursor")
    await driver.execute(f"DELETE FROM {_STAGING}")  # empty unless this transaction already merged a batch
    await driver.copy_records_to_table(_STAGING, records=_numbered(rows), columns=("ord", *CALL_COLUMNS))
    status = await driver.execute(_MERGE)  # "INSERT 0 <new rows>"
    return int(status.rsplit(" ", 1)[1])


async def insert_ignore(conn: AsyncConnection, rows: Sequence[CallRow]) -> int:
    """Any backend: one multi-row INSERT skipping known (source, record_key); what PostgreSQL used before COPY."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (insert(Call.__table__).on_conflict_do_nothing(index_elements=["source", "record_key"])
                 .returning(Call.__table__.c.id))
    values = [dict(zip(CALL_COLUMNS, row, strict=True)) for row in rows]
    return len((await conn.execute(statement, values)).all())


def _numbered(rows: Sequence[CallRow]) -> list[CallRow]:
    return [(index, *row) for index, row in enumerate(rows)]
