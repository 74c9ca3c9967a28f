"""`qualimon import-calls` end to end: Master.csv → judged calls in the store, rows per second.

Where bench_cdr.py measures the readers (parse, and parse + a scratch insert),
this measures the whole ingestion path the service and the CLI run: parse,
map each call to its site by the dialled number, classify it in or out of
opening hours, judge it against the phone commitments, insert-or-ignore into
the `calls` table with the reader's cursor in the same transaction — on
SQLite and on the local PostgreSQL — beside the naive row-by-row path of
bench_cdr.py (INSERT and commit per row) in the same run, and a re-import of
the same file (which must add nothing).

    .venv/bin/python bench/bench_import_calls.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cdr import sqlite_insert_naive, write_master_csv  # noqa: E402
from support import machine, scratch_postgres  # noqa: E402

from monitor.calendar import calendars_from  # noqa: E402
from monitor.clock import SystemClock  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.store import migrate  # noqa: E402
from monitor.store.store import Store  # noqa: E402
from probes.calllogs.ingest import CallLogIngester  # noqa: E402

CONFIG = """
database: @URL@
calendars:
  museum: {opening_hours: {tue-sun: ["10:00-18:00"]}, holidays: {country: FR}}
commitments:
  phone.answer: {channel: phone, within: {rings: 5}, during: open}
  phone.out_of_hours: {channel: phone, within: {rings: 5}, during: closed}
phone_lines:
  mystery: {sip: {proxy: "sip:trunk.example.net", from: "sip:+33199001000@trunk.example.net"}}
call_logs:
  pbx: {kind: asterisk_csv, path: "@PATH@"}
sites:
""" + "".join(f"  - {{id: site-{n}, name: Site {n}, calendar: museum, phone: {{number: \"+3319900123{n}\", "
              f"per_month: 0}}}}\n" for n in range(4, 8))


async def ingest(url: str, csv: Path) -> tuple[int, float, int]:
    """(rows read, seconds, calls added)."""
    await asyncio.to_thread(migrate.upgrade, url)
    config = parse_config(CONFIG.replace("@URL@", url).replace("@PATH@", str(csv)), environ={})
    store = Store.open(url)
    try:
        ingester = CallLogIngester("pbx", config.call_logs["pbx"], store, config, calendars_from(config),
                                   SystemClock())
        started = time.perf_counter()
        stats = await ingester.run_once(live=False)
        elapsed = time.perf_counter() - started
        return stats.rows, elapsed, stats.added
    finally:
        await store.close()


async def reimport(url: str, csv: Path) -> int:
    """A fresh cursor on the same file: everything is read again, nothing is added."""
    from sqlalchemy import delete

    from monitor.store.schema import WatcherCursor

    store = Store.open(url)
    async with store.write() as tx:
        await tx.conn.execute(delete(WatcherCursor).where(WatcherCursor.name == "calllog:pbx"))
    await store.close()
    _, _, added = await ingest(url, csv)
    return added


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--naive-rows", type=int, default=3_000)
    args, _ = parser.parse_known_args()
    print(f"- machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "Master.csv"
        write_master_csv(csv, args.rows)
        print("| path | rows | seconds | rows/s |\n|---|---:|---:|---:|")
        rows, seconds, added = await ingest(f"sqlite+aiosqlite:///{tmp}/q.db", csv)
        print(f"| import-calls into SQLite ({added} calls judged and stored) | {rows} | {seconds:.2f} | "
              f"{rows / seconds:,.0f} |")
        again = await reimport(f"sqlite+aiosqlite:///{tmp}/q.db", csv)
        print(f"| re-import of the same file into SQLite | adds {again} | | |")
        async with scratch_postgres() as url:
            if url is not None:
                rows, seconds, added = await ingest(url, csv)
                print(f"| import-calls into PostgreSQL ({added} calls) | {rows} | {seconds:.2f} | "
                      f"{rows / seconds:,.0f} |")
        started = time.perf_counter()
        naive = await asyncio.to_thread(sqlite_insert_naive, csv, Path(tmp) / "naive.db", args.naive_rows)
        elapsed = time.perf_counter() - started
        print(f"| naive: parse + INSERT + commit per row into SQLite | {naive} | {elapsed:.2f} | "
              f"{naive / elapsed:,.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
