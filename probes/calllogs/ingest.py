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
import gc
import logging
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import aclosing, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy.ext.asyncio import create_async_engine

from monitor.calendar import BusinessCalendar
from monitor.clock import Clock
from monitor.config.models import CallLogSource, Config
from monitor.store.calls import CALL_COLUMNS, EPOCH, MICROSECOND, CallRow
from monitor.store.records import Cursor, InvalidCursor
from monitor.store.store import Store
from probes.calllogs import (
    Batch,
    CursorError,
    FileCursor,
    SqlCursor,
    aiter_sql_cdr,
    iter_generic_csv,
    iter_master_csv,
    sites_by_number,
)
from probes.calllogs.opening import OpeningTracker
from probes.calllogs.verdict import applicable, judge_against

log = logging.getLogger("qualimon.calllogs")

Progress = Callable[["IngestStats", Batch], None]
T = TypeVar("T")
SLICE_ROWS = 250  # rows parsed between two turns of the event loop (~3 ms)
STORE_ROWS = 20000  # rows per stored batch: per transaction, and at most what a crash makes us read again
AHEAD = 2  # batches read and judged ahead of the one being stored: the store is a chain of round trips


@dataclass
class IngestStats:
    rows: int = 0
    calls: int = 0
    added: int = 0
    rejected: int = 0
    unknown_site: int = 0
    cursor_reset: str | None = None  # why the stored cursor was dropped and the source read from its start


class Judged(NamedTuple):
    """A reader's batch with its calls judged, as rows ready for the store."""

    batch: Batch
    rows: list[CallRow]
    unknown: int  # calls to a number of no configured site
    at: datetime  # when they were judged: the rows' `ingested_at`


class CallLogIngester:
    """Reads one source from its stored cursor and records what is new.

    While one batch is being stored the next is read and judged, on the
    event loop: with COPY the store mostly waits on the database, so parsing
    (ours) and merging (the database's, on another core) overlap.  Files are
    parsed in slices of `SLICE_ROWS` (a few milliseconds) with the loop free
    in between; a thread would fight the loop for the GIL, and each socket
    operation then waited up to the 5 ms switch interval.  Cursors still move
    only with their batch of about `STORE_ROWS` rows.
    """

    def __init__(self, source_id: str, source: CallLogSource, store: Store, config: Config,
                 calendars: dict[str, BusinessCalendar], clock: Clock, metrics: Any = None):
        self.source_id = source_id
        self.source = source
        self.store = store
        self.config = config
        self.calendars = calendars
        self.clock = clock
        self.metrics = metrics
        phones = [s for s in config.sites if s.phone is not None]
        self.numbers = sites_by_number((s.id, s.phone.number) for s in phones)  # type: ignore[union-attr]
        self.commitments = config.commitments_for("phone")
        # Judging depends on the site only through its calendar, and on the commitments only through the opening.
        trackers = {name: OpeningTracker(calendar) for name, calendar in calendars.items()}
        self._opening = {s.id: trackers[s.calendar] for s in phones}
        self._first = {opening: next(iter(applicable(self.commitments, opening)), None)
                       for opening in ("open", "closed")}
        self.cursor_name = f"calllog:{source_id}"

    async def run_once(self, *, path: str | None = None, live: bool = True,
                       progress: Progress | None = None) -> IngestStats:
        """Read what is new; `live` leaves the last calls open for legs still to come (polling)."""
        stats = IngestStats()
        now = self.clock.now() if live else None
        with _COLLECTOR.relaxed():
            async with aclosing(_ahead(self._judged(path, now, stats))) as judged_batches:
                async for judged in judged_batches:
                    await self._store(judged, stats)
                    if progress is not None:
                        progress(stats, judged.batch)
        if self.metrics is not None:
            self.metrics.calllog_ingested(self.source_id, self.clock.now())
        return stats

    async def _judged(self, path: str | None, now: datetime | None, stats: IngestStats) -> AsyncIterator[Judged]:
        cursor = await self._cursor(stats)
        caller_key = self.source.caller_key.get_secret_value().encode() if self.source.caller_key else None
        if self.source.kind == "asterisk_sql":
            async with _engine(self.source) as engine:
                async for batch in aiter_sql_cdr(engine, self.source_id, options=self.source.sql, cursor=cursor,
                                                 caller_key=caller_key, now=now):
                    yield self.judge(batch)
            return
        file = path or self.source.path
        assert file is not None
        if self.source.kind == "asterisk_csv":
            batches: Iterator[Batch] = iter_master_csv(file, self.source_id, options=self.source.csv, cursor=cursor,
                                                       caller_key=caller_key, now=now, batch_rows=SLICE_ROWS)
        else:
            assert self.source.mapping is not None
            batches = iter_generic_csv(file, self.source_id, self.source.mapping, cursor=cursor,
                                       caller_key=caller_key, now=now, batch_rows=SLICE_ROWS)
        parts: list[Batch] = []
        rows = 0
        for part in batches:  # one slice of parsing: the loop (and the store's I/O) gets its turn after each
            parts.append(part)
            rows += part.rows
            if rows >= STORE_ROWS:
                yield self.judge(Batch.joined(parts))
                parts, rows = [], 0
            await asyncio.sleep(0)
        if parts:
            yield self.judge(Batch.joined(parts))

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

    async def _store(self, judged: Judged, stats: IngestStats) -> None:
        batch = judged.batch
        async with self.store.write() as tx:
            added = await tx.add_calls(judged.rows, judged.at)
            await tx.set_cursor(Cursor(self.cursor_name, position={"cursor": batch.cursor.to_json()}),
                                self.clock.now())
        stats.rows += batch.rows
        stats.calls += len(batch.records)
        stats.added += added
        stats.rejected += len(batch.rejected)
        stats.unknown_site += judged.unknown
        self._count(judged)

    def judge(self, batch: Batch) -> Judged:
        """Map each call to its site, classify it open or closed, judge it: one `calls` row per call of a site."""
        rows: list[CallRow] = []
        unknown = 0
        now = self.clock.now()
        numbers, opening_of, first = self.numbers, self._opening, self._first
        epoch, micro = EPOCH, MICROSECOND  # rows carry instants as epoch microseconds (`calls.micros`, inlined)
        for record in batch.records:
            site_id = numbers.get(record.dialled)
            if site_id is None:
                unknown += 1
                continue
            opening = "open" if opening_of[site_id].is_open(record.started_at) else "closed"
            judged = first[opening]  # the row keeps the first applicable commitment's judgement, as judge_call's
            if judged is None:
                commitment, verdict, delay, late, reason = None, None, None, False, None
            else:
                commitment = judged[0]
                verdict, delay, late, reason = judge_against(record, judged[2])
            answered = record.answered_at
            rows.append((record.source, record.record_key, site_id, record.dialled, record.caller_hash,
                         (record.started_at - epoch) // micro, None if answered is None else (answered - epoch) // micro,
                         (record.ended_at - epoch) // micro, record.ring_seconds, record.outcome.value, record.legs,
                         opening, commitment, verdict, delay, late, reason))
        return Judged(batch, rows, unknown, now)

    def _count(self, judged: Judged) -> None:
        if self.metrics is None:
            return
        for rejected in judged.batch.rejected:
            self.metrics.calllog_rejected(self.source_id, str(rejected.reason))
        if judged.unknown:
            self.metrics.calllog_rejected(self.source_id, "unknown_site", judged.unknown)
        site, outcome, ring = CALL_COLUMNS.index("site"), CALL_COLUMNS.index("outcome"), CALL_COLUMNS.index(
            "ring_seconds")
        for row in judged.rows:
            self.metrics.call(row[site], "calllog", row[outcome], row[ring])


_END: Any = object()


class _Collector:
    """A read makes millions of short-lived acyclic objects (tuples, datetimes): the cyclic collector finds
    nothing among them, yet ran every 700 allocations, about a tenth of an import's CPU.  Its first threshold
    is raised while any read runs (counted, so overlapping reads of two sources restore it once, at the end)."""

    RELAXED = 50_000

    def __init__(self) -> None:
        self.reads = 0
        self.saved = gc.get_threshold()

    @contextmanager
    def relaxed(self) -> Generator[None, None, None]:
        if self.reads == 0:
            self.saved = gc.get_threshold()
            gc.set_threshold(max(self.RELAXED, self.saved[0]), *self.saved[1:])
        self.reads += 1
        try:
            yield
        finally:
            self.reads -= 1
            if self.reads == 0:
                gc.set_threshold(*self.saved)


_COLLECTOR = _Collector()


async def _ahead(items: AsyncIterator[T], depth: int = AHEAD) -> AsyncIterator[T]:
    """`items`, with up to `depth` more being produced while the consumer works on the current one."""
    queue: asyncio.Queue[T] = asyncio.Queue(depth)

    async def produce() -> None:
        async for item in items:
            await queue.put(item)
        await queue.put(_END)

    producer = asyncio.ensure_future(produce())
    try:
        while (item := await _next(queue, producer)) is not _END:
            yield item
    finally:
        producer.cancel()  # the consumer stopped early (an error, a cancellation): stop producing
        await asyncio.wait((producer,))
        if not producer.cancelled():
            producer.exception()  # already raised through _next if it matters; retrieved, so never reported twice
        await items.aclose()  # type: ignore[attr-defined]


async def _next(queue: asyncio.Queue[T], producer: asyncio.Future[None]) -> T:
    """The next item, or the producer's error as soon as it fails (it then puts nothing more)."""
    getting = asyncio.ensure_future(queue.get())
    try:
        await asyncio.wait((getting, producer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        got = getting.done()
        if not got:  # cancelling a pending get never loses an item: it takes one only once resumed
            getting.cancel()
    if got:
        return getting.result()
    producer.result()  # raises the producer's error
    return await queue.get()  # it finished cleanly after all: _END is queued


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
