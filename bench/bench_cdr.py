"""CDR ingestion speed: Master.csv and a MariaDB `cdr` table, versus naive row-by-row code in the same run.

Generates a synthetic Master.csv (fictional numbers only; 1 call in 10 is a
three-leg queue call), then measures rows per second for:

1. parsing Master.csv: `iter_master_csv` (streaming, legs grouped by linkedid,
   DST-safe stamps) vs `csv.DictReader` + per-row `datetime.strptime`;
2. parse + insert into a scratch SQLite table: our batches with one
   `executemany` per batch vs one INSERT + commit per row;
3. MariaDB (skipped with --no-mariadb; the server the tests use, see bench/support.py):
   reading the `cdr` table with `aiter_sql_cdr` (keyset pages) vs
   LIMIT/OFFSET pages parsed row by row, and parse + insert into a scratch
   MariaDB table, batched vs row by row.

The naive paths do no grouping, no DST disambiguation and no rejection
accounting, so the ratios understate the work the real path does.  Run:

    .venv/bin/python bench/bench_cdr.py [--rows 200000] [--naive-insert-rows 20000] [--no-mariadb]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time as clock
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from probes.calllogs.asterisk_csv import BASE_COLUMNS, iter_master_csv  # noqa: E402
from probes.calllogs.asterisk_sql import aiter_sql_cdr, asterisk_cdr_table  # noqa: E402
from probes.calllogs.records import CallRecord  # noqa: E402
from support import scratch_mariadb  # noqa: E402

PARIS = ZoneInfo("Europe/Paris")
COLUMNS = BASE_COLUMNS + ("uniqueid", "userfield", "peeraccount", "linkedid", "sequence")
STAMP = "%Y-%m-%d %H:%M:%S"
SCRATCH_DDL = ("CREATE TABLE calls (source VARCHAR(40), record_key VARCHAR(160) PRIMARY KEY, dialled VARCHAR(20), "
               "started_at VARCHAR(40), answered_at VARCHAR(40), ended_at VARCHAR(40), ring_seconds DOUBLE, "
               "outcome VARCHAR(12), legs INTEGER)")
INSERT = "INSERT {ignore} INTO calls VALUES ({marks})"


# ----------------------------------------------------------------- data


def generate_rows(count: int, first_day: date = date(2026, 3, 2)) -> Iterator[list[str]]:
    """Master.csv rows in dispatch order; calls every ~20 s across the weeks (DST change included)."""
    start = datetime.combine(first_day, datetime.min.time()) + timedelta(hours=8)
    made, call = 0, 0
    while made < count:
        call += 1
        t0 = start + timedelta(seconds=call * 20)
        uid = f"{1772438400 + call * 20}.{call}"
        dialled = ("0199001234", "+33199001235", "0033199001236", "33199001237")[call % 4]
        caller = f"019900{call % 10000:04d}"  # the fiction block 01 99 00 xx xx only
        legs = 3 if call % 10 == 0 else 1
        for leg in range(legs):
            answered = leg == legs - 1 and call % 7 != 0
            ring = 4 + (call * 7 + leg) % 40
            talk = 30 + call % 300 if answered else 0
            sequence = call * 3 + leg
            yield ["", caller, dialled, "from-trunk", f'"Appelant" <{caller}>', f"PJSIP/trunk-{sequence:08x}",
                   f"PJSIP/accueil-{leg}-{sequence:08x}", "Queue" if legs > 1 else "Dial", "PJSIP/accueil,30",
                   t0.strftime(STAMP), (t0 + timedelta(seconds=ring)).strftime(STAMP) if answered else "",
                   (t0 + timedelta(seconds=ring + talk)).strftime(STAMP), str(ring + talk), str(talk),
                   "ANSWERED" if answered else ("BUSY" if call % 13 == 0 else "NO ANSWER"), "DOCUMENTATION",
                   uid, "", "", uid, str(sequence)]
            made += 1
            if made == count:
                return


def write_master_csv(path: Path, count: int) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
        for row in generate_rows(count):
            writer.writerow([int(v) if i in (12, 13, 20) else v for i, v in enumerate(row)])


def table_rows(count: int) -> Iterator[dict[str, Any]]:
    for row in generate_rows(count):
        values: dict[str, Any] = dict(zip(COLUMNS, row))
        for name in ("start", "answer", "end"):
            values[name] = datetime.strptime(values[name], STAMP) if values[name] else None
        for name in ("duration", "billsec", "sequence"):
            values[name] = int(values[name])
        yield values


# ----------------------------------------------------------------- naive code, as one would first write it

NAIVE_OUTCOMES = {"ANSWERED": "answered", "NO ANSWER": "no_answer", "BUSY": "busy", "FAILED": "failed",
                  "CONGESTION": "failed"}


def naive_record(row: dict[str, Any]) -> tuple:
    start = _naive_utc(row["start"])
    answer = _naive_utc(row["answer"]) if row["answer"] else None
    end = _naive_utc(row["end"])
    ring = int(row["duration"]) - int(row["billsec"])
    dialled = row["dst"].replace(" ", "").replace(".", "")
    if dialled.startswith("00"):
        dialled = "+" + dialled[2:]
    elif dialled.startswith("0"):
        dialled = "+33" + dialled[1:]
    elif not dialled.startswith("+"):
        dialled = "+" + dialled
    key = row["linkedid"] or row["uniqueid"]
    return ("pbx", f"{key}/{row['sequence']}", dialled, start.isoformat(), answer.isoformat() if answer else None,
            end.isoformat(), float(ring), NAIVE_OUTCOMES[row["disposition"]], 1)


def _naive_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.strptime(value, STAMP)
    return value.replace(tzinfo=PARIS).astimezone(UTC)


def naive_csv(path: Path) -> Iterator[tuple]:
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, fieldnames=COLUMNS):
            yield naive_record(row)


# ----------------------------------------------------------------- our path


def our_csv(path: Path, batch_rows: int = 5000) -> Iterator[list[tuple]]:
    for batch in iter_master_csv(path, "pbx", batch_rows=batch_rows):
        yield [as_tuple(r) for r in batch.records]


def as_tuple(r: CallRecord) -> tuple:
    return (r.source, r.record_key, r.dialled, r.started_at.isoformat(),
            r.answered_at.isoformat() if r.answered_at else None, r.ended_at.isoformat(),
            r.ring_seconds, r.outcome.value, r.legs)


# ----------------------------------------------------------------- measuring


def timed(run: Callable[[], int]) -> tuple[int, float]:
    began = clock.perf_counter()
    count = run()
    return count, clock.perf_counter() - began


def cpu_timed(run: Callable[[], int]) -> tuple[int, float]:
    """CPU seconds of this process: other jobs on a shared machine do not count against the parser."""
    began = clock.process_time()
    count = run()
    return count, clock.process_time() - began


def best_of(times: int, run: Callable[[], int], measure: Callable = timed) -> tuple[int, float]:
    results = [measure(run) for _ in range(times)]
    return min(results, key=lambda r: r[1])


def parse_ours(path: Path) -> int:
    rows = 0
    for batch in iter_master_csv(path, "pbx"):
        rows += batch.rows
    return rows


def parse_naive(path: Path) -> int:
    return sum(1 for _ in naive_csv(path))


def sqlite_insert_ours(path: Path, db: Path) -> int:
    conn = _scratch_sqlite(db)
    rows = 0
    sql = INSERT.format(ignore="OR IGNORE", marks=",".join("?" * 9))
    for batch in iter_master_csv(path, "pbx"):
        with conn:  # one transaction per batch
            conn.executemany(sql, [as_tuple(r) for r in batch.records])
        rows += batch.rows
    conn.close()
    return rows


def sqlite_insert_naive(path: Path, db: Path, limit: int) -> int:
    conn = _scratch_sqlite(db)
    sql = INSERT.format(ignore="OR IGNORE", marks=",".join("?" * 9))
    rows = 0
    for record in naive_csv(path):
        conn.execute(sql, record)
        conn.commit()  # one transaction per row: what a first version usually does
        rows += 1
        if rows == limit:
            break
    conn.close()
    return rows


def _scratch_sqlite(db: Path) -> sqlite3.Connection:
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    conn.execute(SCRATCH_DDL)
    conn.commit()
    return conn


# ----------------------------------------------------------------- MariaDB


async def mariadb_section(csv_path: Path, rows: int, naive_rows: int,
                          naive_read_rows: int) -> dict[str, tuple[int, float]] | None:
    async with scratch_mariadb() as url:
        return None if url is None else await _mariadb_runs(url, csv_path, rows, naive_rows, naive_read_rows)


async def _mariadb_runs(url: str, csv_path: Path, rows: int, naive_rows: int,
                        naive_read_rows: int) -> dict[str, tuple[int, float]]:
    engine = create_async_engine(url)
    try:
        await load_cdr(engine, rows)
        results = {
            "read_ours": await timed_async(lambda: read_ours(engine)),
            "read_naive": await timed_async(lambda: read_naive_offset(engine, naive_read_rows)),
            "insert_ours": await timed_async(lambda: mariadb_insert_ours(engine, csv_path)),
            "insert_naive": await timed_async(lambda: mariadb_insert_naive(engine, csv_path, naive_rows)),
        }
    finally:
        await engine.dispose()
    return results


async def timed_async(run: Callable[[], Any]) -> tuple[int, float]:
    began = clock.perf_counter()
    count = await run()
    return count, clock.perf_counter() - began


async def load_cdr(engine: AsyncEngine, rows: int) -> None:
    metadata = sa.MetaData()
    table = asterisk_cdr_table(metadata)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
        chunk: list[dict[str, Any]] = []
        for row in table_rows(rows):
            chunk.append(row)
            if len(chunk) == 10_000:
                await conn.execute(table.insert(), chunk)
                chunk = []
        if chunk:
            await conn.execute(table.insert(), chunk)


async def read_ours(engine: AsyncEngine) -> int:
    rows = 0
    async for batch in aiter_sql_cdr(engine, "pbx", page_rows=5000):
        rows += batch.rows
    return rows


async def read_naive_offset(engine: AsyncEngine, limit: int) -> int:
    """SELECT * … LIMIT 1000 OFFSET n, each row parsed on its own: the usual first pager."""
    rows = 0
    async with engine.connect() as conn:
        while rows < limit:
            page = (await conn.execute(sa.text(
                f"SELECT * FROM cdr ORDER BY start, uniqueid LIMIT 1000 OFFSET {rows}"))).mappings().all()
            if not page:
                break
            for row in page:
                naive_record(dict(row) | {"linkedid": row["linkedid"] or "", "answer": row["answer"]})
            rows += len(page)
    return rows


async def mariadb_insert_ours(engine: AsyncEngine, path: Path) -> int:
    await _scratch_mariadb(engine)
    sql = sa.text(INSERT.format(ignore="IGNORE", marks=",".join(f":p{i}" for i in range(9))))
    rows = 0
    for batch in iter_master_csv(path, "pbx"):
        params = [{f"p{i}": v for i, v in enumerate(as_tuple(r))} for r in batch.records]
        async with engine.begin() as conn:
            if params:
                await conn.execute(sql, params)  # aiomysql turns this into multi-row INSERTs
        rows += batch.rows
    return rows


async def mariadb_insert_naive(engine: AsyncEngine, path: Path, limit: int) -> int:
    await _scratch_mariadb(engine)
    sql = sa.text(INSERT.format(ignore="IGNORE", marks=",".join(f":p{i}" for i in range(9))))
    rows = 0
    async with engine.connect() as conn:
        for record in naive_csv(path):
            await conn.execute(sql, {f"p{i}": v for i, v in enumerate(record)})
            await conn.commit()
            rows += 1
            if rows == limit:
                break
    return rows


async def _scratch_mariadb(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("DROP TABLE IF EXISTS calls"))
        await conn.execute(sa.text(SCRATCH_DDL))


# ----------------------------------------------------------------- report


def rate(result: tuple[int, float]) -> float:
    return result[0] / result[1]


def number(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def line(label: str, result: tuple[int, float], cpu: tuple[int, float] | None = None) -> str:
    return f"| {label} | {number(result[0])} | {number(rate(result))} | {number(rate(cpu)) if cpu else ''} |"


def ratio(ours: tuple[int, float], naive: tuple[int, float], cpu: tuple[tuple, tuple] | None = None) -> str:
    cpu_ratio = f"**{rate(cpu[0]) / rate(cpu[1]):.1f}×**" if cpu else ""
    return f"| **ratio** | | **{rate(ours) / rate(naive):.1f}×** | {cpu_ratio} |"


def machine() -> str:
    mariadb = ""
    try:
        mariadb = subprocess.run(["mariadb", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    return (f"- machine: `{uname}`, `nproc` = {os.cpu_count()}, load average at start {os.getloadavg()[0]:.1f}, "
            f"Python {platform.python_version()}\n- MariaDB: `{mariadb or 'n/a'}`\n"
            f"- date: {datetime.now(UTC).date().isoformat()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--naive-insert-rows", type=int, default=3_000,
                        help="row-by-row inserts are slow; they run on this prefix only")
    parser.add_argument("--naive-read-rows", type=int, default=50_000,
                        help="OFFSET paging slows down as it goes; it reads this prefix only")
    parser.add_argument("--no-mariadb", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "Master.csv"
        write_master_csv(path, args.rows)
        size = path.stat().st_size
        parse = {"ours": best_of(3, lambda: parse_ours(path)), "naive": best_of(3, lambda: parse_naive(path)),
                 "ours_cpu": best_of(3, lambda: parse_ours(path), cpu_timed),
                 "naive_cpu": best_of(3, lambda: parse_naive(path), cpu_timed)}
        insert = {"ours": timed(lambda: sqlite_insert_ours(path, Path(tmp) / "ours.db")),
                  "naive": timed(lambda: sqlite_insert_naive(path, Path(tmp) / "naive.db", args.naive_insert_rows))}
        maria = None
        if not args.no_mariadb:
            maria = asyncio.run(mariadb_section(path, args.rows, args.naive_insert_rows, args.naive_read_rows))

    out = [f"{args.rows:,}".replace(",", " ") + f" synthetic Master.csv rows ({size / 1e6:.1f} MB, 21 columns, "
           "1 call in 10 with three queue legs).", "", machine(), "",
           "| path | rows | rows/s (wall) | rows/s (CPU) |", "|---|---:|---:|---:|",
           line("parse Master.csv: `iter_master_csv`", parse["ours"], parse["ours_cpu"]),
           line("parse Master.csv: `csv.DictReader` + `strptime` per row", parse["naive"], parse["naive_cpu"]),
           ratio(parse["ours"], parse["naive"], (parse["ours_cpu"], parse["naive_cpu"])),
           line("parse + insert into SQLite (`executemany` per 5 000-row batch)", insert["ours"]),
           line("parse + insert into SQLite (INSERT + commit per row)", insert["naive"]),
           ratio(insert["ours"], insert["naive"])]
    if maria:
        out += [line("read MariaDB `cdr` (`aiter_sql_cdr`, keyset pages of 5 000)", maria["read_ours"]),
                line("read MariaDB `cdr` (LIMIT 1 000 OFFSET n, parse per row)", maria["read_naive"]),
                ratio(maria["read_ours"], maria["read_naive"]),
                line("parse + insert into MariaDB (batches, multi-row INSERT)", maria["insert_ours"]),
                line("parse + insert into MariaDB (INSERT + commit per row)", maria["insert_naive"]),
                ratio(maria["insert_ours"], maria["insert_naive"])]
    print("\n".join(out))


if __name__ == "__main__":
    main()
