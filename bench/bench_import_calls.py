"""`qualimon import-calls` end to end: Master.csv → judged calls in the store, rows per second.

Where bench_cdr.py measures the readers (parse, and parse + a scratch insert),
this measures the whole ingestion path the service and the CLI run: parse,
map each call to its site by the dialled number, classify it in or out of
opening hours, judge it against the phone commitments, store it (skipping
calls already stored) with the reader's cursor in the same transaction — on
SQLite and on the local PostgreSQL.

In the same run it measures today's path beside the previous one: the
`monitor/` and `probes/` trees of `BASELINE_COMMIT` (before COPY, the
event-loop pipeline and the parsing work), taken from git into a temporary
directory.  Every measured import runs in a process of its own on a fresh
database, variants alternating, best of `--runs`; each reports its wall time
and its own CPU time (the database server's is not in it), and a digest of
the rows it stored, which must be the same for both.  Also: a re-import of
the same file (must add nothing), and the naive row-by-row insert of
bench_cdr.py.

    .venv/bin/python bench/bench_import_calls.py [--rows 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINE_COMMIT = "a5e59e8"  # the last commit before the COPY import (bench/RESULTS.md: ~20,000 rows/s)

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

# Compared between variants: every column but the id and the import instant.
DIGEST_COLUMNS = ("source", "record_key", "site", "dialled", "caller_hash", "started_at", "answered_at", "ended_at",
                  "ring_seconds", "outcome", "legs", "opening", "commitment", "verdict", "delay_seconds", "late",
                  "reason")


# ----------------------------------------------------------------- one import, in its own process


async def worker(tree: str, url: str, csv: str, again: bool) -> dict[str, Any]:
    """Import `csv` into `url` with the code of `tree`; timings, counts and a digest of the stored calls."""
    tree = str(Path(tree).resolve())
    sys.path.insert(0, tree)
    from sqlalchemy import delete, select

    from monitor.calendar import calendars_from
    from monitor.clock import SystemClock
    from monitor.config import parse_config
    from monitor.store import migrate
    from monitor.store.schema import Call, WatcherCursor
    from monitor.store.store import Store
    from probes.calllogs.ingest import CallLogIngester

    assert Path(sys.modules["probes.calllogs.ingest"].__file__ or "").is_relative_to(tree)
    await asyncio.to_thread(migrate.upgrade, url)
    config = parse_config(CONFIG.replace("@URL@", url).replace("@PATH@", csv), environ={})
    store = Store.open(url)
    try:
        ingester = CallLogIngester("pbx", config.call_logs["pbx"], store, config, calendars_from(config),
                                   SystemClock())
        cpu, wall = time.process_time(), time.perf_counter()
        stats = await ingester.run_once(live=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        result = {"rows": stats.rows, "added": stats.added, "seconds": wall, "cpu": cpu}
        async with store.read() as conn:
            rows = await conn.execute(select(*(getattr(Call, c) for c in DIGEST_COLUMNS)).order_by(Call.record_key))
            result["digest"] = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()[:16]
        if again:  # a fresh cursor on the same file: everything is read again, nothing may be added
            async with store.write() as tx:
                await tx.conn.execute(delete(WatcherCursor).where(WatcherCursor.name == "calllog:pbx"))
            result["again_added"] = (await ingester.run_once(live=False)).added
        return result
    finally:
        await store.close()


def measure(tree: Path, url: str, csv: Path, again: bool = False) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", str(tree), url, str(csv), *(["--again"] * again)],
                         cwd=ROOT, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- the run


def baseline_tree(directory: Path) -> Path | None:
    """`monitor/` and `probes/` as they were at BASELINE_COMMIT, or None without git history."""
    target = directory / "baseline"
    target.mkdir()
    archive = subprocess.run(["git", "archive", BASELINE_COMMIT, "monitor", "probes"], cwd=ROOT, capture_output=True)
    if archive.returncode:
        print(f"(no baseline: git archive {BASELINE_COMMIT} failed: {archive.stderr.decode().strip()})")
        return None
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


async def best_of(runs: int, variants: dict[str, Path], database: Any, csv: Path) -> dict[str, dict[str, Any]]:
    """Each variant `runs` times, alternating, each on a fresh database; the fastest run of each."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(runs):
        for name, tree in variants.items():
            async with database() as url:
                if url is None:
                    return {}
                result = await asyncio.to_thread(measure, tree, url, csv)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    return best


def table(backend: str, best: dict[str, dict[str, Any]], runs: int) -> list[str]:
    lines = []
    for name, result in best.items():
        lines.append(f"| {backend} | {name} | {result['rows']:,} | {result['added']:,} | {result['seconds']:.2f} | "
                     f"{result['cpu']:.2f} | **{result['rows'] / result['seconds']:,.0f}** |")
    if len(best) == 2:
        ours, old = best["today"], best["before (baseline)"]
        same = "same rows" if ours["digest"] == old["digest"] else "**ROWS DIFFER**"
        lines.append(f"| {backend} | ratio (best of {runs} each) | | {same} | "
                     f"{old['seconds'] / ours['seconds']:.2f}× | {old['cpu'] / ours['cpu']:.2f}× | |")
    return lines


async def main() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(HERE))
    from contextlib import asynccontextmanager

    from bench_cdr import sqlite_insert_naive, write_master_csv
    from support import machine, scratch_postgres

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--naive-rows", type=int, default=3_000)
    args, _ = parser.parse_known_args()
    print(f"- machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "Master.csv"
        write_master_csv(csv, args.rows)
        variants = {"today": ROOT}
        if (old := baseline_tree(Path(tmp))) is not None:
            variants["before (baseline)"] = old
        counter = iter(range(10_000))

        @asynccontextmanager
        async def sqlite():  # type: ignore[no-untyped-def]
            yield f"sqlite+aiosqlite:///{tmp}/q{next(counter)}.db"

        print("| backend | path | rows | calls stored | seconds | our CPU s | rows/s |\n|---|---|---:|---:|---:|---:|---:|")
        for backend, database in (("PostgreSQL", scratch_postgres), ("SQLite", sqlite)):
            best = await best_of(args.runs, variants, database, csv)
            print("\n".join(table(backend, best, args.runs)) if best else f"| {backend} | unreachable | | | | | |")
        again = measure(ROOT, f"sqlite+aiosqlite:///{tmp}/again.db", csv, again=True)
        print(f"| SQLite | re-import of the same file | {again['rows']:,} | adds {again['again_added']} | | | |")
        started = time.perf_counter()
        naive = await asyncio.to_thread(sqlite_insert_naive, csv, Path(tmp) / "naive.db", args.naive_rows)
        elapsed = time.perf_counter() - started
        print(f"| SQLite | naive: parse + INSERT + commit per row | {naive:,} | | {elapsed:.2f} | | "
              f"{naive / elapsed:,.0f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        print(json.dumps(asyncio.run(worker(sys.argv[2], sys.argv[3], sys.argv[4], "--again" in sys.argv))))
    else:
        asyncio.run(main())
