"""Asterisk's SQL `cdr` table (cdr_adaptive_odbc, cdr_mysql, cdr_pgsql), read incrementally with SQLAlchemy Core.

Works on any async URL SQLAlchemy knows: `mysql+aiomysql://` for MariaDB /
MySQL, `postgresql+asyncpg://`, `sqlite+aiosqlite://`.  The table is
reflected once per read, so both common schemas fit: Asterisk's own
(`start`, `answer`, `end`, … `linkedid`, `sequence`; see
`asterisk_cdr_table`) and the older cdr_mysql / FreePBX one (`calldate`
instead of `start`, no `answer`/`end`; FreePBX's `did` can be chosen as the
dialled column).

Rows are read in keyset order `(start, uniqueid, sequence)` — the table's
own naive values, so the order never depends on our time-zone reading —
in pages of `page_rows`, never with OFFSET.  Each page is its own short
query: no transaction is held open on the PBX's database.

Asterisk inserts a call's rows when the call *ends* (all legs together,
since Asterisk 12), so a long call appears behind rows that started later.
A keyset on `start` alone would step over it for good.  Each read therefore
starts `lookback_seconds` before the cursor and skips the calls it already
emitted (the cursor's `recent` keys): a call is missed only if it lasts
longer than the lookback (4 h by default).  With `now` given (a live
poller), rows that started less than `settle_seconds` ago are not read yet
and calls within `group_grace_seconds` of that horizon stay open (the
cursor points back to them); `now=None` reads everything and closes every
call (a backfill).  Legs of one call are grouped while scanning by start,
so the grace must cover the longest queue wait before a desk rings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from probes.calllogs.asterisk_legs import AsteriskOptions, CdrFields, build_leg
from probes.calllogs.grouping import Leg, LegGrouper, merge_legs
from probes.calllogs.records import Batch, CallRecord, RejectedRow, RejectReason, SqlCursor, SqlKey
from probes.calllogs.timeutil import to_utc


class CdrSchemaError(ValueError):
    """The table lacks a column the reader cannot do without."""


class AsteriskSqlOptions(AsteriskOptions):
    table: str = "cdr"
    db_schema: str | None = Field(default=None, description="Database schema holding the table, if not the default.")
    dialled_column: str = Field(default="dst", description="`dst`, or `did` on FreePBX.")
    settle_seconds: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=300.0, description="Rows that started less than this ago are not read yet (cdr.conf batch delay)."
    )
    lookback_seconds: Annotated[float, Field(ge=0, le=7 * 86400)] = Field(
        default=4 * 3600.0, description="Each read looks this far before the cursor for calls inserted late."
    )
    group_grace_seconds: Annotated[float, Field(ge=0, le=86400)] = Field(
        default=600.0, description="Longest gap between the starts of two legs of one call (queue wait)."
    )


def asterisk_cdr_table(metadata: sa.MetaData, name: str = "cdr") -> sa.Table:
    """The `cdr` table as Asterisk's own Alembic scripts create it (contrib/ast-db-manage/cdr)."""
    return sa.Table(
        name, metadata,
        sa.Column("accountcode", sa.String(80)), sa.Column("src", sa.String(80)), sa.Column("dst", sa.String(80)),
        sa.Column("dcontext", sa.String(80)), sa.Column("clid", sa.String(80)), sa.Column("channel", sa.String(80)),
        sa.Column("dstchannel", sa.String(80)), sa.Column("lastapp", sa.String(80)),
        sa.Column("lastdata", sa.String(80)), sa.Column("start", sa.DateTime()), sa.Column("answer", sa.DateTime()),
        sa.Column("end", sa.DateTime()), sa.Column("duration", sa.Integer), sa.Column("billsec", sa.Integer),
        sa.Column("disposition", sa.String(45)), sa.Column("amaflags", sa.String(45)),
        sa.Column("userfield", sa.String(256)), sa.Column("uniqueid", sa.String(150)),
        sa.Column("linkedid", sa.String(150)), sa.Column("peeraccount", sa.String(80)),
        sa.Column("sequence", sa.Integer),
        sa.Index(f"{name}_start_uniqueid", "start", "uniqueid"),
    )


@dataclass(frozen=True, slots=True)
class _Shape:
    """The reflected table: which columns exist and how to order by them."""

    table: sa.TableClause
    start: str
    tiebreak: str
    tiebreak_default: Any
    aware: bool
    columns: frozenset[str]

    def col(self, name: str) -> sa.ColumnClause[Any]:
        return self.table.c[name]

    def keyset(self) -> tuple[sa.ColumnElement[Any], ...]:
        return (self.col(self.start), sa.func.coalesce(self.col("uniqueid"), ""),
                sa.func.coalesce(self.col(self.tiebreak), self.tiebreak_default))


async def reflect(conn: AsyncConnection, options: AsteriskSqlOptions) -> _Shape:
    columns = await conn.run_sync(lambda sync: sa.inspect(sync).get_columns(options.table, schema=options.db_schema))
    types = {c["name"].lower(): c["type"] for c in columns}
    start = "start" if "start" in types else "calldate"
    required = {start, "duration", "billsec", "disposition", "uniqueid", options.dialled_column}
    missing = sorted(required - types.keys())
    if missing:
        raise CdrSchemaError(f"table {options.table!r} has no column {', '.join(missing)}")
    tiebreak = next(c for c in ("sequence", "dstchannel", "channel", "uniqueid") if c in types)
    default = 0 if tiebreak == "sequence" else ""
    wanted = [c for c in (start, "answer", "end", "duration", "billsec", "disposition", options.dialled_column, "src",
                          "uniqueid", "linkedid", "sequence", "channel", "dstchannel") if c in types]
    table = sa.table(options.table, *(sa.column(c, types[c]) for c in dict.fromkeys(wanted)), schema=options.db_schema)
    aware = bool(getattr(types[start], "timezone", False))
    return _Shape(table, start, tiebreak, default, aware, frozenset(wanted))


def page_query(shape: _Shape, after: SqlKey | None, horizon: datetime | None, limit: int) -> sa.Select[Any]:
    """The next page in keyset order, strictly after `after`, up to `horizon` (table-local time)."""
    start, uid, tie = shape.keyset()
    stmt = sa.select(*shape.table.c).order_by(start, uid, tie).limit(limit)
    if horizon is not None:
        stmt = stmt.where(start <= horizon)
    if after is not None:
        s, u, t = after
        # `start >= s` first, so the (start, uniqueid) index bounds the scan on every backend.
        if t is None:  # a looked-back start: every row from that instant on
            stmt = stmt.where(start >= s)
        else:
            stmt = stmt.where(start >= s, sa.or_(start > s, uid > u, sa.and_(uid == u, tie > t)))
    return stmt


def row_fields(row: sa.Row[Any], ordinal: int, shape: _Shape, options: AsteriskSqlOptions) -> CdrFields | RejectedRow:
    """One table row → typed fields, or the reason it is unusable.  Pure."""
    m = row._mapping
    excerpt = f"uniqueid={m['uniqueid']} {shape.start}={m[shape.start]} disposition={m['disposition']}"
    start = m[shape.start]
    if not isinstance(start, datetime):  # NULL, or MySQL's zero date handed back as text
        return RejectedRow(ordinal, RejectReason.timestamp, excerpt)
    try:
        duration, billsec = int(m["duration"]), int(m["billsec"])
    except (TypeError, ValueError):
        return RejectedRow(ordinal, RejectReason.duration, excerpt)
    return CdrFields(
        line_no=ordinal, start=start, answer=_stamp(m.get("answer")), end=_stamp(m.get("end")),
        duration=duration, billsec=billsec, disposition=str(m["disposition"] or ""),
        dst=str(m[options.dialled_column] or ""), src=str(m.get("src") or ""),
        uniqueid=str(m["uniqueid"] or "").strip(), linkedid=str(m.get("linkedid") or "").strip(),
        sequence=m.get("sequence"), channel=str(m.get("channel") or ""), dstchannel=str(m.get("dstchannel") or ""),
    )


def _looked_back(after: SqlKey | None, lookback: float) -> SqlKey | None:
    """Where a read really starts: `lookback` before the cursor, before any row of that instant."""
    if after is None or not lookback:
        return after
    return (after[0] - timedelta(seconds=lookback), "", None)


def _stamp(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _key(row: sa.Row[Any], shape: _Shape) -> SqlKey:
    m = row._mapping
    tie = m[shape.tiebreak]
    return (m[shape.start], str(m["uniqueid"] or ""), shape.tiebreak_default if tie is None else tie)


async def aiter_sql_cdr(
    engine: AsyncEngine,
    source: str,
    *,
    options: AsteriskSqlOptions | None = None,
    cursor: SqlCursor | None = None,
    caller_key: bytes | None = None,
    page_rows: int = 5000,
    now: datetime | None = None,
) -> AsyncIterator[Batch]:
    """Yield one `Batch` per page read after `cursor`; persist each batch's cursor after storing its records."""
    options = options or AsteriskSqlOptions()
    cursor = cursor or SqlCursor()
    async with engine.connect() as conn:
        shape = await reflect(conn, options)
    scan = _Scan(source, options, shape, caller_key, cursor)
    horizon = scan.horizon(now)
    after = _looked_back(cursor.after, options.lookback_seconds)
    while True:
        async with engine.connect() as conn:
            rows = (await conn.execute(page_query(shape, after, horizon, page_rows))).all()
        for row in rows:
            after = scan.take(row)
        if len(rows) < page_rows:
            break
        yield scan.batch()
    scan.finish(now)
    yield scan.batch()


async def read_sql_cdr(engine: AsyncEngine, source: str, **kwargs: Any) -> tuple[
        list[CallRecord], list[RejectedRow], SqlCursor]:
    """The whole table after the cursor at once: records, rejected rows, final cursor."""
    records: list[CallRecord] = []
    rejected: list[RejectedRow] = []
    cursor = kwargs.get("cursor") or SqlCursor()
    async for batch in aiter_sql_cdr(engine, source, **kwargs):
        records.extend(batch.records)
        rejected.extend(batch.rejected)
        cursor = batch.cursor
    return records, rejected, cursor


class _Scan:
    """Per-read state; pure once rows are fetched."""

    def __init__(self, source: str, options: AsteriskSqlOptions, shape: _Shape, caller_key: bytes | None,
                 cursor: SqlCursor) -> None:
        self.source, self.options, self.shape, self.caller_key = source, options, shape, caller_key
        self.zone: tzinfo = options.zone()
        self.grouper: LegGrouper[SqlKey | None] = LegGrouper(
            options.group_grace_seconds, cursor.after, cursor.recent,
            remember_seconds=options.lookback_seconds + 2 * options.group_grace_seconds)
        self.previous = _looked_back(cursor.after, options.lookback_seconds)
        self.ordinal = 0
        self.records: list[CallRecord] = []
        self.rejected: list[RejectedRow] = []
        self.rows = self.skipped = 0

    def horizon(self, now: datetime | None) -> datetime | None:
        """Newest `start` to read, in the column's own terms (naive PBX-local, or aware)."""
        if now is None:
            return None
        limit = now - timedelta(seconds=self.options.settle_seconds)
        return limit if self.shape.aware else limit.astimezone(self.zone).replace(tzinfo=None)

    def take(self, row: sa.Row[Any]) -> SqlKey:
        self.ordinal += 1
        self.rows += 1
        key = _key(row, self.shape)
        fields = row_fields(row, self.ordinal, self.shape, self.options)
        leg = fields if isinstance(fields, RejectedRow) else build_leg(
            fields, self.options, self.zone, self.caller_key, f"uniqueid={fields.uniqueid}")
        if isinstance(leg, RejectedRow):
            self.rejected.append(leg)
        else:
            self._close(self.grouper.add(leg, self.previous, leg.started_at.timestamp()))
        self.grouper.advance(key)
        self.previous = key
        return key

    def finish(self, now: datetime | None) -> None:
        if now is None:
            self._close(self.grouper.flush())
            return
        horizon = to_utc(now, self.zone) - timedelta(seconds=self.options.settle_seconds)
        self._close(self.grouper.flush(horizon.timestamp()))

    def batch(self) -> Batch:
        after, recent = self.grouper.cursor()
        batch = Batch(tuple(self.records), tuple(self.rejected), SqlCursor(after, recent), self.rows, self.skipped)
        self.records, self.rejected, self.rows, self.skipped = [], [], 0, 0
        return batch

    def _close(self, groups: list[list[Leg]]) -> None:
        for legs in groups:
            record = merge_legs(self.source, legs[0].key, legs)
            if record is None:
                self.skipped += len(legs)
            else:
                self.records.append(record)
