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
from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from probes.calllogs.asterisk_legs import AsteriskOptions, BatchGatherer, CdrFields, build_leg
from probes.calllogs.grouping import LegGrouper
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


def page_query(shape: _Shape, after: SqlKey | None, until: datetime | None, limit: int,
               inclusive: bool = True) -> sa.Select[Any]:
    """The next page in keyset order, strictly after `after`, before `until` (table-local time)."""
    start, uid, tie = shape.keyset()
    stmt = sa.select(*shape.table.c).order_by(start, uid, tie).limit(limit)
    if until is not None:
        stmt = stmt.where(start <= until if inclusive else start < until)
    if after is not None:
        s, u, t = after
        # `start >= s` first, so an index on start bounds the scan on every backend.
        if t is None:  # a position between instants: every row from `s` on
            stmt = stmt.where(start >= s)
        else:
            stmt = stmt.where(start >= s, sa.or_(start > s, uid > u, sa.and_(uid == u, tie > t)))
    return stmt


def bounds_query(shape: _Shape, horizon: datetime | None, since: datetime | None = None) -> sa.Select[Any]:
    """First and last `start` in [since, horizon]: where data is, so empty stretches cost one query."""
    start = shape.col(shape.start)
    stmt = sa.select(sa.func.min(start), sa.func.max(start))
    if since is not None:
        stmt = stmt.where(start >= since)
    return stmt if horizon is None else stmt.where(start <= horizon)


@dataclass
class _Window:
    """How much time the next query covers.

    The keyset order needs a sort, and without a bound the database sorts
    every row after the cursor for each page: a backfill would cost
    O(rows² / page).  Querying a time window that holds about one page keeps
    each sort small; the window shrinks when a page fills and grows when the
    calls are sparse.
    """

    seconds: float = 3600.0

    def adapt(self, got: int, page: int) -> None:
        if got >= page:
            self.seconds = max(1.0, self.seconds / 2)
        elif got * 4 < page:
            self.seconds = min(366 * 86400.0, self.seconds * 4)

    def end(self, start: datetime) -> datetime:
        try:
            return start + timedelta(seconds=self.seconds)
        except OverflowError:  # a row dated near year 9999 (a PBX clock glitch): the window ends with time itself
            return datetime.max.replace(tzinfo=start.tzinfo)


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
    try:
        return (after[0] - timedelta(seconds=lookback), "", None)
    except OverflowError:  # a cursor near year 1: nothing can lie before it
        return (datetime.min.replace(tzinfo=after[0].tzinfo), "", None)


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
    """Yield a `Batch` about every `page_rows` rows read after `cursor`; persist each batch's cursor after storing it."""
    options = options or AsteriskSqlOptions()
    cursor = cursor or SqlCursor()
    async with engine.connect() as conn:
        shape = await reflect(conn, options)
    scan = _Scan(source, options, shape, caller_key, cursor)
    start = _looked_back(cursor.after, options.lookback_seconds)
    async for rows in _pages(engine, shape, start, scan.horizon(now), page_rows):
        for row in rows:
            scan.take(row)
        if scan.rows >= page_rows:
            yield scan.batch()
    scan.finish(now)
    yield scan.batch()


async def _pages(engine: AsyncEngine, shape: _Shape, position: SqlKey | None, horizon: datetime | None,
                 page_rows: int) -> AsyncIterator[list[sa.Row[Any]]]:
    """Rows after `position` up to `horizon` in keyset order, one time window per query."""
    async with engine.connect() as conn:
        first, last = (await conn.execute(bounds_query(shape, horizon))).one()
    window, low = _Window(), (position[0] if position else first)
    while last is not None:
        end = window.end(low)
        final = horizon is not None and end > horizon
        async with engine.connect() as conn:  # one short query per page: nothing held open on the PBX's database
            query = page_query(shape, position, horizon if final else end, page_rows, inclusive=final)
            rows = (await conn.execute(query)).all()
        yield rows
        window.adapt(len(rows), page_rows)
        if len(rows) == page_rows:
            position = _key(rows[-1], shape)
            low = position[0]
        elif final or end > last:
            return
        elif rows:  # the window is read to its end: continue from there
            position, low = (end, "", None), end
        else:  # an empty stretch (nights, a quiet month): jump to the next row
            async with engine.connect() as conn:
                low = (await conn.execute(bounds_query(shape, horizon, since=end))).one()[0]
            if low is None:
                return
            position = (low, "", None)


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


class _Scan(BatchGatherer):
    """Per-read state; pure once rows are fetched."""

    def __init__(self, source: str, options: AsteriskSqlOptions, shape: _Shape, caller_key: bytes | None,
                 cursor: SqlCursor) -> None:
        super().__init__(source)
        self.options, self.shape, self.caller_key = options, shape, caller_key
        self.zone = options.zone()
        # Keys must outlive the lookback: the next read re-scans that far before its cursor.
        self.grouper: LegGrouper[SqlKey | None] = LegGrouper(
            options.group_grace_seconds, cursor.after, cursor.recent,
            remember_seconds=options.lookback_seconds + 2 * options.group_grace_seconds + 3600,  # + a DST hour
            start_clock=self._clock(cursor.after[0]) if cursor.after else float("-inf"))
        self.previous = _looked_back(cursor.after, options.lookback_seconds)
        self.ordinal = 0

    def horizon(self, now: datetime | None) -> datetime | None:
        """Newest `start` to read, in the column's own terms (naive PBX-local, or aware)."""
        if now is None:
            return None
        limit = now - timedelta(seconds=self.options.settle_seconds)
        return limit if self.shape.aware else limit.astimezone(self.zone.zone).replace(tzinfo=None)

    def take(self, row: sa.Row[Any]) -> SqlKey | None:
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
        if isinstance(key[0], datetime):  # a row without a start cannot be a keyset position
            self.grouper.advance(key, self._clock(key[0]))
            self.previous = key
        return self.previous

    def _clock(self, start: Any) -> float:
        """Scan clock of a keyset position: its start as epoch seconds (the earlier reading if ambiguous)."""
        return self.zone.readings(start)[0].timestamp() if isinstance(start, datetime) else float("-inf")

    def finish(self, now: datetime | None) -> None:
        if now is None:
            self._close(self.grouper.flush())
            return
        horizon = to_utc(now, self.zone.zone) - timedelta(seconds=self.options.settle_seconds)
        self._close(self.grouper.flush(horizon.timestamp()))

    def batch(self) -> Batch:
        after, recent = self.grouper.cursor()
        return self._hand_over(SqlCursor(after, recent))
