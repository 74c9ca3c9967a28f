"""Reading call logs into the store: the pollers of `qualimon run` and `qualimon import-calls`.

Each batch a reader yields is stored in one transaction together with the
reader's cursor (`watcher_cursors`, name `calllog:<source>`), so a crash
repeats at most one batch and the unique (source, record_key) index absorbs
the repeat: re-reading never adds a call twice.  Records are mapped to a
site by the dialled number, classified in or out of opening hours and judged
against the phone commitments; rows that cannot be read, or that dial no
configured site, are counted in `qualimon_calllog_rows_rejected_total`
and never stop the import.

A stored cursor that cannot be resumed from (broken JSON, an offset or a
keyset value no reader could have written, e.g. beyond int64) would fail
every poll the same way; it is reported instead (an ERROR log, the
`calllog:<source>` health check failing for that poll, `IngestStats.
cursor_reset`) and the source is read again from its start: the only
position known to lose nothing.  That re-read adds no call twice, because
record keys are deterministic and (source, record_key) is unique.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.calendar import BusinessCalendar
from monitor.clock import Clock
from monitor.config.models import CallLogSource, Config
from monitor.store.records import Cursor, InvalidCursor
from monitor.store.schema import Call
from monitor.store.store import Store
from probes.calllogs import (
    Batch,
    CallRecord,
    CursorError,
    FileCursor,
    SqlCursor,
    aiter_sql_cdr,
    iter_generic_csv,
    iter_master_csv,
    judge_call,
    sites_by_number,
)

log = logging.getLogger("qualimon.calllogs")

Progress = Callable[["IngestStats", Batch], None]


@dataclass
class IngestStats:
    rows: int = 0
    calls: int = 0
    added: int = 0
    rejected: int = 0
    unknown_site: int = 0
    cursor_reset: str | None = None  # why the stored cursor was dropped and the source read from its start


class CallLogIngester:
    """Reads one source from its stored cursor and records what is new."""

    def __init__(self, source_id: str, source: CallLogSource, store: Store, config: Config,
                 calendars: dict[str, BusinessCalendar], clock: Clock, metrics: Any = None):
        self.source_id = source_id
        self.source = source
        self.store = store
        self.config = config
        self.calendars = calendars
        self.clock = clock
        self.metrics = metrics
        self.numbers = sites_by_number((s.id, s.phone.number) for s in config.sites if s.phone is not None)
        self.commitments = config.commitments_for("phone")
        self.cursor_name = f"calllog:{source_id}"

    async def run_once(self, *, path: str | None = None, live: bool = True,
                       progress: Progress | None = None) -> IngestStats:
        """Read what is new; `live` leaves the last calls open for legs still to come (polling)."""
        stats = IngestStats()
        now = self.clock.now() if live else None
        async for batch in self._batches(path, now, stats):
            await self._store(batch, stats)
            if progress is not None:
                progress(stats, batch)
        if self.metrics is not None:
            self.metrics.calllog_ingested(self.source_id, self.clock.now())
        return stats

    async def _batches(self, path: str | None, now: datetime | None, stats: IngestStats) -> AsyncIterator[Batch]:
        cursor = await self._cursor(stats)
        caller_key = self.source.caller_key.get_secret_value().encode() if self.source.caller_key else None
        if self.source.kind == "asterisk_sql":
            async with _engine(self.source) as engine:
                async for batch in aiter_sql_cdr(engine, self.source_id, options=self.source.sql, cursor=cursor,
                                                 caller_key=caller_key, now=now):
                    yield batch
            return
        file = path or self.source.path
        assert file is not None
        if self.source.kind == "asterisk_csv":
            batches: Iterator[Batch] = iter_master_csv(file, self.source_id, options=self.source.csv,
                                                       cursor=cursor, caller_key=caller_key, now=now)
        else:
            assert self.source.mapping is not None
            batches = iter_generic_csv(file, self.source_id, self.source.mapping, cursor=cursor,
                                       caller_key=caller_key, now=now)
        while (batch := await asyncio.to_thread(next, batches, None)) is not None:  # parsing off the loop
            yield batch

    async def _cursor(self, stats: IngestStats) -> FileCursor | SqlCursor | None:
        try:
            stored = await self.store.cursor(self.cursor_name)
            if stored is None or not stored.position:
                return None
            text = stored.position.get("cursor")
            return SqlCursor.from_json(text) if self.source.kind == "asterisk_sql" else FileCursor.from_json(text)
        except (InvalidCursor, CursorError) as problem:
            stats.cursor_reset = str(problem)
            log.error("call log %s: invalid stored cursor (%s): reading the source again from its start; "
                      "calls already stored are not added twice", self.source_id, problem)
            return None

    async def _store(self, batch: Batch, stats: IngestStats) -> None:
        rows, unknown = self._rows(batch.records)
        async with self.store.write() as tx:
            added = await _insert_new(tx.conn, rows)
            await tx.set_cursor(Cursor(self.cursor_name, position={"cursor": batch.cursor.to_json()}),
                                self.clock.now())
        stats.rows += batch.rows
        stats.calls += len(batch.records)
        stats.added += added
        stats.rejected += len(batch.rejected)
        stats.unknown_site += unknown
        self._count(batch, rows, unknown)

    def _rows(self, records: tuple[CallRecord, ...] | list[CallRecord]) -> tuple[list[dict[str, Any]], int]:
        rows, unknown = [], 0
        now = self.clock.now()
        for record in records:
            site_id = self.numbers.get(record.dialled)
            if site_id is None:
                unknown += 1
                continue
            judgements = judge_call(record, site_id, self._is_open, self.commitments)
            first = judgements[0] if judgements else None
            rows.append({
                "source": record.source, "record_key": record.record_key, "site": site_id,
                "dialled": record.dialled, "caller_hash": record.caller_hash, "started_at": record.started_at,
                "answered_at": record.answered_at, "ended_at": record.ended_at, "ring_seconds": record.ring_seconds,
                "outcome": record.outcome.value, "legs": record.legs,
                "opening": first.opening if first else ("open" if self._is_open(site_id, record.started_at)
                                                        else "closed"),
                "commitment": first.commitment if first else None, "verdict": first.verdict if first else None,
                "delay_seconds": first.delay_seconds if first else None, "late": bool(first and first.late),
                "reason": first.reason if first else None, "ingested_at": now,
            })
        return rows, unknown

    def _is_open(self, site_id: str, instant: datetime) -> bool:
        return self.calendars[self.config.site(site_id).calendar].is_open(instant)

    def _count(self, batch: Batch, rows: list[dict[str, Any]], unknown: int) -> None:
        if self.metrics is None:
            return
        for rejected in batch.rejected:
            self.metrics.calllog_rejected(self.source_id, str(rejected.reason))
        if unknown:
            self.metrics.calllog_rejected(self.source_id, "unknown_site", unknown)
        for row in rows:
            self.metrics.call(row["site"], "calllog", row["outcome"], row["ring_seconds"])


async def _insert_new(conn: Any, rows: list[dict[str, Any]]) -> int:
    """Insert, skipping calls already stored (same source and record key); returns how many were new."""
    if not rows:
        return 0
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = (insert(Call.__table__).on_conflict_do_nothing(index_elements=["source", "record_key"])
                 .returning(Call.__table__.c.id))
    return len((await conn.execute(statement, rows)).all())


@asynccontextmanager
async def _engine(source: CallLogSource):  # type: ignore[no-untyped-def]
    assert source.url is not None
    engine = create_async_engine(source.url.get_secret_value(), pool_pre_ping=True)
    try:
        yield engine
    finally:
        await engine.dispose()


async def poll_forever(ingester: CallLogIngester, health: Any, clock: Clock) -> None:
    """The service's poller: read, report health, sleep; a failing source never stops the others."""
    while True:
        await poll_once(ingester, health, clock)
        await asyncio.sleep(ingester.source.poll_seconds)


async def poll_once(ingester: CallLogIngester, health: Any, clock: Clock) -> IngestStats | None:
    """One poll, reported in the `calllog:<source>` health check; None when it failed (logged)."""
    name = f"calllog:{ingester.source_id}"
    try:
        stats = await ingester.run_once()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("call log %s: %s: %s", ingester.source_id, type(exc).__name__, str(exc)[:200])
        health.report(name, False, f"{type(exc).__name__}", clock.now())
        return None
    if stats.cursor_reset is not None:  # read fine, but from the start: the check says why until the next poll
        health.report(name, False, f"invalid stored cursor ({stats.cursor_reset}): read again from the start, "
                      f"{stats.added} new calls", clock.now())
    else:
        health.report(name, True, f"{stats.added} new calls", clock.now())
    return stats


def file_size(path: str) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0
