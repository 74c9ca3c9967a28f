"""Call logs into the store: idempotent imports, rejected rows counted, the same verdicts from CSV and MariaDB."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.calendar import calendars_from
from monitor.cli import main
from monitor.clock import SystemClock
from monitor.config import Config
from monitor.health import Health
from monitor.metrics import Metrics
from monitor.store.schema import Call, WatcherCursor
from monitor.store.store import Store
from probes.calllogs import Batch
from probes.calllogs.asterisk_sql import asterisk_cdr_table
from probes.calllogs.ingest import CallLogIngester, poll_once
from tests.conftest import config_from
from tests.support.dbservers import DatabaseServer

from .cdr_data import DATA, table_rows

CONFIG = """
database: {database}
calendars:
  museum: {{opening_hours: {{tue-sun: ["10:00-18:00"]}}, holidays: {{country: FR}}}}
commitments:
  phone.answer: {{channel: phone, within: {{rings: 5}}, during: open}}
  phone.out_of_hours: {{channel: phone, within: {{rings: 5}}, during: closed}}
phone_lines:
  mystery: {{sip: {{proxy: "sip:trunk.example.net", from: "sip:+33199001000@trunk.example.net"}}}}
call_logs:
  pbx: {{kind: asterisk_csv, path: {path}, caller_key: "${{CALLER_KEY}}"}}
  pbx-sql: {{kind: asterisk_sql, url: "{url}"}}
sites:
  - {{id: maison-victor-hugo, name: Maison de Victor Hugo, calendar: museum,
      phone: {{number: "+33199001234", per_month: 0}}}}
"""


def config_for(tmp_path: Path, csv: Path, url: str = "sqlite+aiosqlite:///unused.db") -> Config:
    text = CONFIG.format(database=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", path=csv, url=url)
    (tmp_path / "q.yaml").write_text(text.replace("${CALLER_KEY}", "caller-pseudonym-key"), encoding="utf-8")
    return config_from(text, CALLER_KEY="caller-pseudonym-key")


async def stored_calls(config: Config, source: str | None = None) -> list[tuple]:
    store = Store.open(config.database)
    try:
        async with store.read() as conn:
            query = select(Call.record_key, Call.site, Call.outcome, Call.opening, Call.verdict, Call.reason,
                           Call.ring_seconds).order_by(Call.record_key)
            if source:
                query = query.where(Call.source == source)
            return [tuple(row) for row in await conn.execute(query)]
    finally:
        await store.close()


async def cli(*args: str) -> int:
    """The CLI runs its own event loop: run it beside the test's."""
    return await asyncio.to_thread(main, list(args))


async def import_calls(tmp_path: Path, *args: str) -> int:
    return await cli("import-calls", "-c", str(tmp_path / "q.yaml"), *args)


async def upgrade(tmp_path: Path) -> None:
    assert await cli("db", "upgrade", "-c", str(tmp_path / "q.yaml")) == 0


async def test_importing_a_file_twice_adds_nothing_the_second_time(tmp_path: Path, capsys) -> None:
    config = config_for(tmp_path, DATA / "master_linkedid.csv")
    await upgrade(tmp_path)
    assert await import_calls(tmp_path, "--source", "pbx", str(DATA / "master_linkedid.csv")) == 0
    first = await stored_calls(config)
    assert first and "new" in capsys.readouterr().err
    assert await import_calls(tmp_path, "--source", "pbx", str(DATA / "master_linkedid.csv")) == 0
    assert await stored_calls(config) == first
    assert ", 0 new," in capsys.readouterr().err


async def test_corrupt_rows_are_counted_and_the_rest_is_kept(tmp_path: Path) -> None:
    config = config_for(tmp_path, DATA / "master_corrupt.csv")
    await upgrade(tmp_path)
    store = Store.open(config.database)
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=tuple(config.call_logs))
    try:
        ingester = CallLogIngester("pbx", config.call_logs["pbx"], store, config, calendars_from(config),
                                   SystemClock(), metrics)
        stats = await ingester.run_once(live=False)
    finally:
        await store.close()
    rows = len((DATA / "master_corrupt.csv").read_bytes().splitlines())
    assert stats.rejected >= 1 and stats.rejected <= rows * 0.1
    assert stats.added >= rows * 0.8
    rejected = {s.labels["reason"]: s.value for m in registry.collect()
                if m.name == "qualimon_calllog_rows_rejected" for s in m.samples
                if s.name.endswith("_total") and s.labels["source"] == "pbx"}
    assert sum(rejected.values()) == stats.rejected + stats.unknown_site
    calls = {s.labels["outcome"]: s.value for m in registry.collect() if m.name == "qualimon_calls"
             for s in m.samples if s.labels.get("source") == "calllog" and s.name.endswith("_total")}
    assert sum(calls.values()) == stats.added


async def test_a_call_is_judged_against_the_commitment_of_its_hour(tmp_path: Path) -> None:
    config = config_for(tmp_path, DATA / "master_linkedid.csv")
    await upgrade(tmp_path)
    assert await import_calls(tmp_path, "--source", "pbx", str(DATA / "master_linkedid.csv")) == 0
    calls = await stored_calls(config)
    by_opening = {(opening, verdict) for _, _, _, opening, verdict, _, _ in calls}
    assert ("open", "met") in by_opening
    for _, site, outcome, _, verdict, reason, ring in calls:
        assert site == "maison-victor-hugo"
        if outcome == "answered":
            assert verdict == ("met" if ring <= 25 else "missed")
        elif outcome == "busy":
            assert (verdict, reason) == ("missed", "busy")


def test_import_calls_explains_an_unknown_source(tmp_path: Path, capsys) -> None:
    config_for(tmp_path, DATA / "master_linkedid.csv")
    assert main(["import-calls", "-c", str(tmp_path / "q.yaml"), "--source", "nowhere", "x.csv"]) == 2
    assert "no call-log source 'nowhere'; known: pbx, pbx-sql" in capsys.readouterr().err


@pytest.mark.integration
async def test_the_same_records_in_mariadb_give_the_same_verdicts(tmp_path: Path,
                                                                  mariadb_server: DatabaseServer) -> None:
    async with mariadb_server.scratch("qualimon_cdr") as url:
        engine = create_async_engine(url)
        metadata = sa.MetaData()
        table = asterisk_cdr_table(metadata)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(table.insert(), table_rows(DATA / "master_linkedid.csv"))
        await engine.dispose()

        config = config_for(tmp_path, DATA / "master_linkedid.csv", url=url)
        await upgrade(tmp_path)
        assert await import_calls(tmp_path, "--source", "pbx", str(DATA / "master_linkedid.csv")) == 0
        assert await import_calls(tmp_path, "--source", "pbx-sql") == 0
        from_csv = [c[1:] + (c[0],) for c in await stored_calls(config, "pbx")]
        from_sql = [c[1:] + (c[0],) for c in await stored_calls(config, "pbx-sql")]
        assert from_csv and sorted(from_csv) == sorted(from_sql)


async def test_a_field_too_large_for_the_csv_reader_is_counted_and_the_import_goes_on(tmp_path: Path) -> None:
    lines = (DATA / "master_linkedid.csv").read_bytes().splitlines(keepends=True)
    log = tmp_path / "Master.csv"
    log.write_bytes(lines[0] + b'"","' + b"\0" * 150_000 + b"x" * 150_000 + b'"\n' + b"".join(lines[1:]))
    config = config_for(tmp_path, log)
    await upgrade(tmp_path)
    store = Store.open(config.database)
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=tuple(config.call_logs))
    try:
        ingester = CallLogIngester("pbx", config.call_logs["pbx"], store, config, calendars_from(config),
                                   SystemClock(), metrics)
        first = await ingester.run_once(live=False)
        again = await ingester.run_once(live=False)
    finally:
        await store.close()
    assert (first.rejected, first.calls, again.rows) == (1, 11, 0)  # every call of the clean file, read once
    assert first.added == first.calls - first.unknown_site
    assert registry.get_sample_value("qualimon_calllog_rows_rejected_total",
                                     {"source": "pbx", "reason": "nul_bytes"}) == 1


def _inner(cursor: object) -> str:
    """A `watcher_cursors.position` holding a reader cursor, as the ingester writes it."""
    return json.dumps({"cursor": cursor if isinstance(cursor, str) else json.dumps(cursor)})


BAD_CURSORS = {
    "an offset of 5001 digits": ("pbx", _inner('{"offset": 1' + "0" * 5000 + ', "line_no": 0, "fingerprint": ""}')),
    "an offset beyond int64": ("pbx", _inner({"offset": 2**64, "line_no": 3, "fingerprint": ""})),
    "a negative offset": ("pbx", _inner({"offset": -40, "line_no": 0, "fingerprint": ""})),
    "a position that is not JSON": ("pbx", '{"cursor": 1' + "0" * 5000 + "}"),
    "a keyset tie-breaker beyond int64": ("pbx-sql", _inner({"after": ["2026-06-16T10:30:00", "1781599200.3", 2**70],
                                                           "recent": []})),
    "a keyset start that is no date": ("pbx-sql", _inner({"after": ["16/06/2026", "", None], "recent": []})),
}


async def plant_cursor(store: Store, name: str, position: str) -> None:
    async with store.write() as tx:
        await tx.conn.execute(sa.update(WatcherCursor).where(WatcherCursor.name == name).values(position=position))


@pytest.mark.parametrize("case", list(BAD_CURSORS))
async def test_an_invalid_stored_cursor_is_reported_and_the_source_read_again_without_doubling_a_call(
        tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    source, position = BAD_CURSORS[case]
    cdr = f"sqlite+aiosqlite:///{tmp_path / 'cdr.db'}"
    engine = create_async_engine(cdr)
    metadata = sa.MetaData()
    table = asterisk_cdr_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        await conn.execute(table.insert(), table_rows(DATA / "master_linkedid.csv"))
    await engine.dispose()
    config = config_for(tmp_path, DATA / "master_linkedid.csv", url=cdr)
    await upgrade(tmp_path)
    store, health, clock = Store.open(config.database), Health(), SystemClock()
    try:
        ingester = CallLogIngester(source, config.call_logs[source], store, config, calendars_from(config), clock)
        assert (await poll_once(ingester, health, clock)).added > 0
        before = await stored_calls(config)
        await plant_cursor(store, f"calllog:{source}", position)
        with caplog.at_level(logging.ERROR, "qualimon.calllogs"):
            stats = await poll_once(ingester, health, clock)
        assert stats is not None and stats.cursor_reset and stats.added == 0 and stats.rows > 0
        check = health.check(f"calllog:{source}")
        assert check is not None and not check.ok and "invalid stored cursor" in check.detail
        assert "invalid stored cursor" in caplog.text and len(caplog.text) < 2000  # not the 5001 digits
        assert await stored_calls(config) == before  # read again from the start: nothing doubled, nothing lost
        again = await poll_once(ingester, health, clock)  # the cursor written by that read is good again
        assert again is not None and again.cursor_reset is None and health.is_ok(f"calllog:{source}")
    finally:
        await store.close()


async def _counting(limit: int, log: list[str], fail_at: int | None = None):  # noqa: ANN202
    try:
        for n in range(limit):
            if n == fail_at:
                raise OSError("the log vanished")
            log.append(f"made {n}")
            yield n
            await asyncio.sleep(0)
    finally:
        log.append("closed")


async def test_reading_ahead_hands_over_every_item_in_order_and_closes_the_source() -> None:
    from probes.calllogs.ingest import _ahead

    log: list[str] = []
    async with aclosing(_ahead(_counting(7, log), depth=2)) as items:
        assert [n async for n in items] == list(range(7))
    assert log[-1] == "closed"


async def test_reading_ahead_raises_the_sources_error_to_the_consumer() -> None:
    from probes.calllogs.ingest import _ahead

    log: list[str] = []
    got = []
    with pytest.raises(OSError, match="vanished"):
        async with aclosing(_ahead(_counting(7, log, fail_at=3), depth=2)) as items:
            async for n in items:
                got.append(n)
    assert got == [0, 1, 2] and log[-1] == "closed"


async def test_reading_ahead_stops_reading_when_the_consumer_fails() -> None:
    from probes.calllogs.ingest import _ahead

    log: list[str] = []
    with pytest.raises(RuntimeError):
        async with aclosing(_ahead(_counting(1000, log), depth=2)) as items:
            async for n in items:
                if n == 1:
                    raise RuntimeError("the store is down")
    assert log[-1] == "closed" and len(log) < 10  # read at most `depth` + 1 ahead, then closed


async def test_the_collector_thresholds_are_restored_once_every_read_is_over(tmp_path: Path) -> None:
    import gc

    from probes.calllogs.ingest import _COLLECTOR

    before = gc.get_threshold()
    with _COLLECTOR.relaxed():
        with _COLLECTOR.relaxed():
            assert gc.get_threshold()[0] >= 50_000
        assert gc.get_threshold()[0] >= 50_000  # the other read still runs
    assert gc.get_threshold() == before


@pytest.mark.parametrize("fixture", ["master_linkedid.csv", "master_dst.csv", "master_no_linkedid.csv"])
def test_the_stored_row_holds_the_first_judgement_of_judge_call(tmp_path: Path, fixture: str) -> None:
    from monitor.store.calls import CALL_COLUMNS, instant
    from probes.calllogs import judge_call, read_master_csv

    config = config_for(tmp_path, DATA / fixture)
    calendars = calendars_from(config)
    ingester = CallLogIngester("pbx", config.call_logs["pbx"], None, config, calendars,  # type: ignore[arg-type]
                               SystemClock())
    records = read_master_csv(DATA / fixture, "pbx")[0]
    batch = Batch(tuple(records), (), None)
    rows = {row[1]: dict(zip(CALL_COLUMNS, row, strict=True)) for row in ingester.judge(batch).rows}
    museum = calendars["museum"]
    for record in records:
        if record.record_key not in rows:
            assert record.dialled != "+33199001234"  # only calls to the configured site are stored
            continue
        row = rows[record.record_key]
        (first, *_) = judge_call(record, "maison-victor-hugo", lambda _, at: museum.is_open(at),
                                 config.commitments_for("phone"))
        assert (row["opening"], row["commitment"], row["verdict"], row["delay_seconds"], row["late"],
                row["reason"]) == (first.opening, first.commitment, first.verdict, first.delay_seconds, first.late,
                                   first.reason)
        assert (instant(row["started_at"]), row["answered_at"] and instant(row["answered_at"]),
                instant(row["ended_at"])) == (record.started_at, record.answered_at, record.ended_at)
