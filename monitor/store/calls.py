"""Storing judged calls from call logs: thousands of rows at once, each (source, record_key) at most once.

On PostgreSQL (asyncpg) a batch is copied with binary COPY
(`copy_records_to_table`) into a temporary table, then merged into `calls`
by one `INSERT … SELECT … ON CONFLICT (source, record_key) DO NOTHING`,
inside the caller's transaction: the one that also moves the reader's
cursor, so a crash neither loses nor doubles a call.  SQLite runs one
insert-or-ignore through its driver on plain values (`sqlite_insert_plain`).
Any other backend uses SQLAlchemy's multi-row insert-or-ignore, the path
PostgreSQL took before COPY (`insert_ignore`), kept so that the others can be
compared with it.  All store identical rows, in the order given, and return
how many were new.

Rows are plain tuples in `CALL_COLUMNS` order, with instants as integer
epoch microseconds (`micros`), and `ingested_at` is one value for the batch:
COPY sends them as they are, with no per-value processing on the way (what
made the old path slow) and no copy of the rows.  Integers are exact and cost
a third of asyncpg's encoding of aware timestamps, which was most of what
COPY cost us; the merge turns them back into `timestamptz`, and the SQLite
path into aware datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from monitor.store.schema import Call

CALL_COLUMNS = ("source", "record_key", "site", "dialled", "caller_hash", "started_at", "answered_at", "ended_at",
                "ring_seconds", "outcome", "legs", "opening", "commitment", "verdict", "delay_seconds", "late",
                "reason")
_INSTANTS = ("started_at", "answered_at", "ended_at")

CallRow = tuple[Any, ...]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)

_STAGING = "calls_incoming"  # always named with pg_temp: never a table of the same name in another schema
# Per connection, emptied at every commit (and never filled outside a transaction that merges it).  `ord`
# numbers the rows in the order COPY sends them.
_CREATE_STAGING = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS pg_temp.{_STAGING} (
    ord bigint GENERATED ALWAYS AS IDENTITY, source text, record_key text, site text, dialled text,
    caller_hash text, started_at bigint, answered_at bigint, ended_at bigint, ring_seconds double precision,
    outcome text, legs integer, opening text, commitment text, verdict text, delay_seconds double precision,
    late boolean, reason text
) ON COMMIT DELETE ROWS
"""
# bigint * interval goes through float8: seconds and microseconds apart, each product stays exact.
_SELECTED = ", ".join(f"TIMESTAMPTZ 'epoch' + ({c} / 1000000) * INTERVAL '1 second' + ({c} % 1000000) * INTERVAL "
                      "'1 microsecond'" if c in _INSTANTS else c for c in CALL_COLUMNS)
# The merge empties the staging table as it reads it (one round trip, and never a batch merged twice).
# ORDER BY: the first of two rows with one key wins and ids follow the batch order, as with a multi-row INSERT.
_MERGE = (f"WITH staged AS (DELETE FROM pg_temp.{_STAGING} RETURNING *) "
          f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}, ingested_at) SELECT {_SELECTED}, $1::timestamptz "
          f"FROM staged ORDER BY ord ON CONFLICT (source, record_key) DO NOTHING")


_SQLITE_INSERT = (f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}, ingested_at) VALUES "
                  f"({', '.join('?' * (len(CALL_COLUMNS) + 1))}) ON CONFLICT (source, record_key) DO NOTHING")
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _sqlite_text(value: int | None) -> str | None:
    """What SQLAlchemy's SQLite DATETIME stores for the UTC instant `value` (epoch microseconds)."""
    if value is None:
        return None
    return (_NAIVE_EPOCH + timedelta(microseconds=value)).isoformat(" ", "microseconds")


def micros(instant: datetime) -> int:
    """An aware instant as integer microseconds since 1970-01-01 UTC: how rows carry instants."""
    return (instant - EPOCH) // MICROSECOND


def instant(value: int) -> datetime:
    """The aware UTC instant of `micros`."""
    return EPOCH + timedelta(microseconds=value)


async def add_calls(conn: AsyncConnection, rows: Sequence[CallRow], ingested_at: datetime) -> int:
    """Store the calls not stored yet (by source and record key), in the open transaction; how many were new."""
    if not rows:
        return 0
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "asyncpg":
        return await copy_merge(conn, rows, ingested_at)
    if conn.dialect.name == "sqlite":
        return await sqlite_insert_plain(conn, rows, ingested_at)
    return await insert_ignore(conn, rows, ingested_at)


async def copy_merge(conn: AsyncConnection, rows: Sequence[CallRow], ingested_at: datetime) -> int:
    """PostgreSQL: COPY into the staging table, one merge into `calls`."""
    await conn.execute(text(_CREATE_STAGING))  # also makes SQLAlchemy open the transaction on the driver
    driver = (await conn.get_raw_connection()).driver_connection
    if driver is None or not driver.is_in_transaction():  # COPY outside it would commit calls without the cursor
        raise RuntimeError("calls must be copied inside the transaction that moves the reader's cursor")
    await driver.copy_records_to_table(_STAGING, schema_name="pg_temp", records=rows, columns=CALL_COLUMNS)
    status = await driver.execute(_MERGE, ingested_at)  # "INSERT 0 <new rows>"
    return int(status.rsplit(" ", 1)[1])


async def sqlite_insert_plain(conn: AsyncConnection, rows: Sequence[CallRow], ingested_at: datetime) -> int:
    """SQLite: `insert_ignore`'s statement run by the driver on plain values, written as SQLAlchemy writes them
    (instants as naive UTC text with microseconds): a third of the CPU of its per-value bind processing."""
    at = _sqlite_text(micros(ingested_at))
    values = [(*row[:5], _sqlite_text(row[5]), _sqlite_text(row[6]), _sqlite_text(row[7]), *row[8:], at)
              for row in rows]
    return (await conn.exec_driver_sql(_SQLITE_INSERT, values)).rowcount


async def insert_ignore(conn: AsyncConnection, rows: Sequence[CallRow], ingested_at: datetime) -> int:
    """Any backend: one multi-row INSERT skipping known (source, record_key); what PostgreSQL used before COPY."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (insert(Call.__table__).on_conflict_do_nothing(index_elements=["source", "record_key"])
                 .returning(Call.__table__.c.id))
    values = [dict(zip(CALL_COLUMNS, row, strict=True), ingested_at=ingested_at) for row in rows]
    for value in values:
        for name in _INSTANTS:
            if value[name] is not None:
                value[name] = instant(value[name])
    return len((await conn.execute(statement, values)).all())
