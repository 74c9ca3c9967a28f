"""Calls are stored by COPY and one merge on PostgreSQL, by the driver on SQLite: exactly the rows SQLAlchemy's
multi-row INSERT stored before."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.calendar import calendars_from
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.store import migrate
from monitor.store.calls import CALL_COLUMNS, copy_merge, insert_ignore, instant, micros, sqlite_insert_plain
from monitor.store.schema import Call
from monitor.store.store import Store
from probes.calllogs.asterisk_csv import iter_master_csv
from probes.calllogs.ingest import CallLogIngester
from tests.support import databases
from tests.support.dbservers import DatabaseServer

from .cdr_data import DATA
from .test_ingest import config_for

pytestmark = pytest.mark.integration
CLOCK = FakeClock(datetime(2026, 7, 1, 12, 0, 0, 123456, tzinfo=UTC))


def many_calls(path: Path, copies: int) -> Path:
    """The fixture's calls `copies` times over, each copy with its own call ids: several batches of 5,000 rows."""
    lines = (DATA / "master_linkedid.csv").read_bytes().splitlines(keepends=True)
    with open(path, "wb") as out:
        for copy in range(copies):
            out.writelines(line.replace(b'"178', f'"{copy}-178'.encode()) for line in lines)
    return path


@pytest.fixture
async def two_stores(postgres_server: DatabaseServer) -> AsyncIterator[tuple[Store, Store]]:
    created = [await asyncio.to_thread(databases.create_pg_database, postgres_server) for _ in range(2)]
    stores = [Store.open(url) for _, url in created]
    try:
        yield stores[0], stores[1]
    finally:
        for store in stores:
            await store.close()
        for name, _ in created:
            await asyncio.to_thread(databases.drop_pg_database, postgres_server, name)


def ingester(config: Config, store: Store) -> CallLogIngester:
    return CallLogIngester("pbx", config.call_logs["pbx"], store, config, calendars_from(config), CLOCK)


async def every_row(store: Store) -> list[tuple]:
    async with store.read() as conn:
        return [tuple(row) for row in await conn.execute(sa.select(Call).order_by(Call.id))]


async def test_the_copy_path_stores_the_same_rows_as_the_insert_path(tmp_path: Path, two_stores) -> None:
    copied, inserted = two_stores
    log = many_calls(tmp_path / "Master.csv", copies=700)  # 8,400 rows: two batches
    config = config_for(tmp_path, log)
    stats = await ingester(config, copied).run_once(live=False)  # the real import: COPY on PostgreSQL
    old = ingester(config, inserted)
    added = 0
    for batch in iter_master_csv(log, "pbx", options=config.call_logs["pbx"].csv,
                                 caller_key=b"caller-pseudonym-key"):
        async with inserted.write() as tx:
            added += await insert_ignore(tx.conn, old.judge(batch).rows, CLOCK.now())
    assert stats.added == added == 700 * 8  # the fixture has 8 calls to the configured site
    rows = await every_row(copied)
    assert rows == await every_row(inserted)
    assert {row[-1] for row in rows} == {CLOCK.now()}  # ingested_at: every column compared, ids included
    again = await ingester(config, copied).run_once(live=False, path=str(log))
    assert again.added == 0 and await every_row(copied) == rows


async def test_both_paths_keep_the_first_of_two_rows_with_one_key_and_count_only_new_calls(
        tmp_path: Path, two_stores) -> None:
    config = config_for(tmp_path, DATA / "master_linkedid.csv")
    batch = next(iter_master_csv(DATA / "master_linkedid.csv", "pbx"))
    rows = ingester(config, two_stores[0]).judge(batch).rows
    site, start = CALL_COLUMNS.index("site"), CALL_COLUMNS.index("started_at")
    twins = [row[:site] + ("another-site",) + row[site + 1:] for row in rows[:3]]
    rows[2] = rows[2][:start] + (micros(datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),) + rows[2][start + 1:]
    # Instants travel as epoch microseconds on the COPY path: odd microseconds and far dates come back exact.
    rows[3] = rows[3][:start] + (micros(datetime(2026, 6, 16, 8, 5, 0, 999_999, tzinfo=UTC)),) + rows[3][start + 1:]
    rows[4] = rows[4][:start] + (micros(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),) + rows[4][start + 1:]
    for store, add in zip(two_stores, (copy_merge, insert_ignore), strict=True):
        async with store.write() as tx:
            assert await add(tx.conn, rows[:5] + twins, CLOCK.now()) == 5
        async with store.write() as tx:
            assert await add(tx.conn, rows, CLOCK.now()) == len(rows) - 5
    stored = await every_row(two_stores[0])
    assert stored == await every_row(two_stores[1]) and len(stored) == len(rows)
    assert "another-site" not in {row[1 + site] for row in stored}  # + 1: the id column comes first
    assert {row[1 + start] for row in stored} >= {instant(rows[n][start]) for n in (2, 3, 4)}


async def test_a_call_key_too_long_for_the_store_is_rejected_not_retried_for_ever(tmp_path: Path, two_stores) -> None:
    lines = (DATA / "master_linkedid.csv").read_bytes().splitlines(keepends=True)
    log = tmp_path / "Master.csv"
    log.write_bytes(b"".join(line.replace(b'"1781597100.1"', b'"' + b"7" * 200 + b'"') for line in lines))
    config = config_for(tmp_path, log)
    stats = await ingester(config, two_stores[0]).run_once(live=False)
    assert stats.rejected == 1 and stats.added == 7
    assert (await ingester(config, two_stores[0]).run_once(live=False)).rows == 0  # the cursor moved on


async def test_on_sqlite_the_driver_path_stores_the_same_rows_as_sqlalchemys_insert(tmp_path: Path) -> None:
    config = config_for(tmp_path, DATA / "master_linkedid.csv")
    batch = next(iter_master_csv(DATA / "master_linkedid.csv", "pbx"))
    stores = []
    for name in ("plain", "orm"):
        url = f"sqlite+aiosqlite:///{tmp_path / name}.db"
        await asyncio.to_thread(migrate.upgrade, url)
        stores.append(Store.open(url))
    try:
        rows = ingester(config, stores[0]).judge(batch).rows
        start = CALL_COLUMNS.index("started_at")
        rows[0] = rows[0][:start] + (micros(datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=UTC)),) + rows[0][start + 1:]
        for store, add in zip(stores, (sqlite_insert_plain, insert_ignore), strict=True):
            async with store.write() as tx:
                assert await add(tx.conn, rows[:4], CLOCK.now()) == 4
            async with store.write() as tx:
                assert await add(tx.conn, rows, CLOCK.now()) == len(rows) - 4
        async with stores[0].read() as one, stores[1].read() as other:
            raw = "SELECT * FROM calls ORDER BY id"  # as stored: the text of every instant compared too
            assert [tuple(r) for r in await one.exec_driver_sql(raw)] == [
                tuple(r) for r in await other.exec_driver_sql(raw)]
        assert await every_row(stores[0]) == await every_row(stores[1])
    finally:
        for store in stores:
            await store.close()
