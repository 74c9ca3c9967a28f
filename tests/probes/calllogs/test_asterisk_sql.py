"""The SQL `cdr` reader against SQLite, and against real MariaDB and PostgreSQL servers.

The MariaDB and PostgreSQL runs (the servers of the `mariadb_server` and
`postgres_server` fixtures: the configured ones, or throw-away ones) each
create a scratch database and drop it afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from probes.calllogs.asterisk_csv import read_master_csv
from probes.calllogs.asterisk_sql import AsteriskSqlOptions, CdrSchemaError, aiter_sql_cdr, asterisk_cdr_table, read_sql_cdr
from probes.calllogs.records import CallOutcome, CallRecord, RejectReason, SqlCursor
from tests.support.dbservers import DatabaseServer

from .cdr_data import DATA, insertable_rows, table_rows

SERVER_FIXTURES = {"mariadb": "mariadb_server", "postgresql": "postgres_server"}


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.integration),
                        pytest.param("postgresql", marks=pytest.mark.integration)])
def server(request: pytest.FixtureRequest) -> DatabaseServer | None:
    """None for SQLite, else the server — asked for only here, so the SQLite run never starts one."""
    if request.param == "sqlite":
        return None
    found: DatabaseServer = request.getfixturevalue(SERVER_FIXTURES[request.param])
    return found


@pytest.fixture
async def engine(server: DatabaseServer | None, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if server is None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'cdr.db'}")
        yield engine
        await engine.dispose()
        return
    async with server.scratch("qualimon_cdr") as url:
        engine = create_async_engine(url)
        yield engine
        await engine.dispose()


async def cdr_table(engine: AsyncEngine, rows: list[dict[str, Any]] | None = None) -> sa.Table:
    metadata = sa.MetaData()
    table = asterisk_cdr_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        if rows:
            await conn.execute(table.insert(), rows)
    return table


async def insert(engine: AsyncEngine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(table.insert(), rows)


def keyed(records: list[CallRecord]) -> dict[str, CallRecord]:
    return {r.record_key: r for r in records}


@pytest.mark.parametrize("fixture", ["master_linkedid.csv", "master_dst.csv", "master_corrupt.csv"])
async def test_it_reads_the_same_calls_from_the_cdr_table_as_from_master_csv(engine: AsyncEngine, fixture: str) -> None:
    from_csv, _, _ = read_master_csv(DATA / fixture, "pbx", caller_key=b"k")
    rows = insertable_rows(DATA / fixture)
    await cdr_table(engine, list(rows.values()))
    from_sql, rejected, _ = await read_sql_cdr(engine, "pbx", page_rows=3, caller_key=b"k")
    # Rows that reached the table but are still wrong are rejected for the same reasons as in the file.
    assert [r.reason for r in rejected] == ([RejectReason.duration, RejectReason.number]
                                            if fixture == "master_corrupt.csv" else [])
    assert keyed(from_sql) == keyed(from_csv)


async def test_it_judges_queue_legs_and_outcomes_from_the_table(engine: AsyncEngine) -> None:
    await cdr_table(engine, table_rows(DATA / "master_linkedid.csv"))
    calls = keyed((await read_sql_cdr(engine, "pbx"))[0])
    assert (calls["1781602200.5"].outcome, calls["1781602200.5"].legs, calls["1781602200.5"].ring_seconds) == (
        CallOutcome.answered, 3, 18)
    assert calls["1781600400.4"].outcome is CallOutcome.busy
    assert "1781618400.11" not in calls  # the internal call


async def test_it_yields_nothing_when_reading_again_from_the_returned_cursor(engine: AsyncEngine) -> None:
    await cdr_table(engine, table_rows(DATA / "master_linkedid.csv"))
    first, _, cursor = await read_sql_cdr(engine, "pbx", page_rows=2)
    again, rejected, _ = await read_sql_cdr(engine, "pbx", page_rows=2, cursor=SqlCursor.from_json(cursor.to_json()))
    assert (again, rejected) == ([], [])
    scratch = (await read_sql_cdr(engine, "pbx"))[0]
    assert set(keyed(scratch)) == set(keyed(first))


async def test_it_picks_up_only_new_calls_as_rows_are_inserted(engine: AsyncEngine) -> None:
    rows = table_rows(DATA / "master_linkedid.csv")
    table = await cdr_table(engine, rows[:4])
    first, _, cursor = await read_sql_cdr(engine, "pbx", page_rows=2)
    await insert(engine, table, rows[4:])
    second, _, cursor = await read_sql_cdr(engine, "pbx", page_rows=2, cursor=cursor)
    assert len(first) == 4 and len(second) == 7
    assert not set(keyed(first)) & set(keyed(second))
    assert (await read_sql_cdr(engine, "pbx", cursor=cursor))[0] == []


async def test_it_finds_a_long_call_inserted_after_the_cursor_had_passed_its_start(engine: AsyncEngine) -> None:
    rows = table_rows(DATA / "master_linkedid.csv")
    table = await cdr_table(engine, rows)
    first, _, cursor = await read_sql_cdr(engine, "pbx")
    assert cursor.after is not None and cursor.after[0] == datetime(2026, 6, 16, 19, 30)
    # A 90-minute conversation that began at 18:10 is inserted only when it ends, at 19:40.
    long_call = rows[0] | {"uniqueid": "1781626200.50", "linkedid": "1781626200.50", "sequence": 50,
                           "start": datetime(2026, 6, 16, 18, 10), "answer": datetime(2026, 6, 16, 18, 10, 6),
                           "end": datetime(2026, 6, 16, 19, 40), "duration": 5400, "billsec": 5394}
    await insert(engine, table, [long_call])
    second, _, cursor = await read_sql_cdr(engine, "pbx", cursor=cursor)
    assert [(r.record_key, r.ring_seconds) for r in second] == [("1781626200.50", 6)]
    assert (await read_sql_cdr(engine, "pbx", cursor=cursor))[0] == []


async def test_it_waits_for_recent_rows_to_settle_and_for_open_calls_in_live_mode(engine: AsyncEngine) -> None:
    await cdr_table(engine, table_rows(DATA / "master_linkedid.csv"))
    options = AsteriskSqlOptions(settle_seconds=300, group_grace_seconds=600)
    now = datetime(2026, 6, 16, 9, 45, tzinfo=UTC)  # 11:45 Paris: the 11:30 queue call is within the grace
    first, _, cursor = await read_sql_cdr(engine, "pbx", options=options, now=now)
    assert set(keyed(first)) == {"1781597100.1", "1781598000.2", "1781599200.3", "1781600400.4"}
    later, _, cursor = await read_sql_cdr(engine, "pbx", options=options, now=now + timedelta(days=1), cursor=cursor)
    assert keyed(later)["1781602200.5"].legs == 3
    assert len(first) + len(later) == 11


async def test_it_reads_the_older_calldate_schema_and_a_chosen_dialled_column(engine: AsyncEngine) -> None:
    metadata = sa.MetaData()
    table = sa.Table("cdr", metadata, sa.Column("calldate", sa.DateTime), sa.Column("src", sa.String(80)),
                     sa.Column("dst", sa.String(80)), sa.Column("did", sa.String(50)),
                     sa.Column("duration", sa.Integer), sa.Column("billsec", sa.Integer),
                     sa.Column("disposition", sa.String(45)), sa.Column("uniqueid", sa.String(32)),
                     sa.Column("dstchannel", sa.String(80)))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(table.insert(), [
            {"calldate": datetime(2026, 6, 16, 10, 0), "src": "0199009001", "dst": "s", "did": "0199001234",
             "duration": 70, "billsec": 61, "disposition": "ANSWERED", "uniqueid": "u1", "dstchannel": "a"},
            {"calldate": datetime(2026, 6, 16, 10, 0), "src": "0199009002", "dst": "s", "did": "0199001235",
             "duration": 30, "billsec": 0, "disposition": "NO ANSWER", "uniqueid": "u2", "dstchannel": "b"},
        ])
    records, _, _ = await read_sql_cdr(engine, "pbx", options=AsteriskSqlOptions(dialled_column="did"), page_rows=1)
    assert [(r.dialled, r.outcome, r.ring_seconds) for r in records] == [
        ("+33199001234", CallOutcome.answered, 9), ("+33199001235", CallOutcome.no_answer, 30)]


async def test_it_counts_broken_table_rows_and_keeps_the_others(engine: AsyncEngine) -> None:
    rows = table_rows(DATA / "master_linkedid.csv")[:3]
    rows[0] = rows[0] | {"duration": 5, "billsec": 9}
    rows[1] = rows[1] | {"disposition": "TRANSFERRED"}
    rows[2] = rows[2] | {"dst": ""}
    await cdr_table(engine, rows + table_rows(DATA / "master_linkedid.csv")[3:4])
    records, rejected, _ = await read_sql_cdr(engine, "pbx")
    assert [r.reason for r in rejected] == [RejectReason.duration, RejectReason.outcome, RejectReason.number]
    assert len(records) == 1


async def test_it_names_the_columns_a_foreign_table_lacks(engine: AsyncEngine) -> None:
    metadata = sa.MetaData()
    sa.Table("cdr", metadata, sa.Column("calldate", sa.DateTime), sa.Column("dst", sa.String(80)))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    with pytest.raises(CdrSchemaError, match="billsec, disposition, duration, uniqueid"):
        await read_sql_cdr(engine, "pbx")


async def test_it_streams_batches_whose_cursors_each_resume_exactly(engine: AsyncEngine) -> None:
    await cdr_table(engine, table_rows(DATA / "master_linkedid.csv"))
    everything = set(keyed((await read_sql_cdr(engine, "pbx"))[0]))
    seen: set[str] = set()
    batches = [b async for b in aiter_sql_cdr(engine, "pbx", page_rows=4)]
    assert len(batches) >= 3 and sum(b.rows for b in batches) == 15
    for batch in batches:
        seen |= set(keyed(list(batch.records)))
        rest = (await read_sql_cdr(engine, "pbx", cursor=batch.cursor))[0]
        assert set(keyed(rest)) == everything - seen


async def test_it_rejects_a_row_whose_call_key_holds_a_nul_and_reads_on(engine: AsyncEngine) -> None:
    rows = table_rows(DATA / "master_linkedid.csv")
    rows[1] = rows[1] | {"uniqueid": "1781598000\x00.2", "linkedid": "1781598000\x00.2"}
    if engine.dialect.name == "postgresql":  # it refuses NUL in text itself: no such row can reach the reader
        with pytest.raises(sa.exc.DBAPIError):
            await cdr_table(engine, rows)
        return
    await cdr_table(engine, rows)  # MariaDB and SQLite keep it
    records, rejected, _ = await read_sql_cdr(engine, "pbx")
    assert [r.reason for r in rejected] == [RejectReason.nul_bytes] and "\0" not in rejected[0].excerpt
    assert len(records) == 10
