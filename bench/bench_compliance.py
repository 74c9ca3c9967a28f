"""Compliance API benchmark: one quarter over 1,000,000 probes and 10,000 sites, SQLite and PostgreSQL.

Measures `GET /api/v1/compliance?from=2026-07-01&to=2026-09-30` through the
real aiohttp app on a loopback port (token check, parameter parsing,
`monitor.status.compliance_rows`, JSON of 30,000 rows), median of 5 after a
warm-up, beside a naive baseline in the same run: read every verdict row
into Python and count there.  Both must give the same rows.

Data: 1,000,000 probes spread over 2026 (so ~250,000 in the quarter), one in
three by email (two verdicts: email.ack, email.reply), two in three by phone
(one verdict: phone.answer), about 85 % met, 10 % missed, 3 % void, 2 %
pending.  The rows are bulk-loaded straight into `probes` and `verdicts`
(COPY on PostgreSQL, executemany on SQLite), bypassing the runner and the
event chain: the compliance query reads only those two tables.

`--candidate-index` repeats the API measurement after creating the index
proposed in bench/RESULTS.md, to show what it buys.

    .venv/bin/python bench/bench_compliance.py [--probes 1000000] [--sites 10000] [--no-sqlite] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from monitor.compliance import compliance  # noqa: E402
from support import scratch_postgres, serving_api  # noqa: E402
from monitor.config import Config, parse_config  # noqa: E402
from monitor.status import site_commitments  # noqa: E402
from monitor.store import migrate  # noqa: E402
from monitor.store.records import new_probe_id  # noqa: E402

YEAR_START = datetime(2026, 1, 1, tzinfo=timezone.utc)
QUARTER = ("2026-07-01", "2026-09-30")
TOKEN = "bench-viewer-token-0123456789"
CANDIDATE_INDEX = ("CREATE INDEX ix_verdicts_started_at_site_commitment_verdict "
                   "ON verdicts (started_at, site, commitment, verdict)")

HEADER = """
database: {url}
tokens: [{{name: bench, role: viewer, token: "{token}"}}]
calendars:
  offices: {{holidays: {{country: FR}}, opening_hours: {{mon-fri: ["09:00-17:00"]}}}}
commitments:
  email.ack: {{channel: email, within: {{working_days: 1}}, counts: [auto_reply, human_reply]}}
  email.reply: {{channel: email, within: {{working_days: 5}}}}
  phone.answer: {{channel: phone, within: {{rings: 5}}}}
mailboxes:
  mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: /tmp/unused}}
phone_lines:
  mystery: {{sip: {{proxy: "sip:trunk.example.net", from: "sip:+33199001000@trunk.example.net"}}}}
sites:
"""
SITE = ('  - {{id: site-{i:05d}, name: "Site {i}", calendar: offices, '
        'email: {{address: "accueil{i}@example.org", per_month: 4}}, phone: {{number: "+3319900{n:04d}", per_month: 8}}}}\n')


def bench_config(url: str, sites: int) -> Config:
    text = HEADER.format(url=url, token=TOKEN) + "".join(SITE.format(i=i, n=i % 10000) for i in range(sites))
    return parse_config(text, environ={})


# ------------------------------------------------------------------ data


def verdict_value(rng: random.Random) -> str:
    draw = rng.random()
    return "met" if draw < 0.85 else "missed" if draw < 0.95 else "void" if draw < 0.98 else "pending"


def generate(probes: int, sites: int, seed: int = 1) -> Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]]:
    """(probe row, its verdict rows), in the column order of `PROBE_COLUMNS` / `VERDICT_COLUMNS`."""
    rng = random.Random(seed)
    span = 365 * 86400
    base_ms = int(YEAR_START.timestamp() * 1000)
    for i in range(probes):
        site = f"site-{rng.randrange(sites):05d}"
        channel = "email" if i % 3 == 0 else "phone"
        offset = rng.random() * span
        planned = YEAR_START + timedelta(seconds=offset)
        probe_id = new_probe_id(base_ms + int(offset * 1000))
        commitments = ("email.ack", "email.reply") if channel == "email" else ("phone.answer",)
        verdicts = []
        for cid in commitments:
            value = verdict_value(rng)
            delay = rng.uniform(5, 40) if channel == "phone" else rng.uniform(3600, 600000)
            answered = planned + timedelta(seconds=delay) if value == "met" else None
            verdicts.append((probe_id, cid, site, channel, value, planned + timedelta(days=7), planned, answered,
                             delay if answered else None, delay if answered else None, False,
                             "no_answer" if value == "missed" else None, planned + timedelta(days=7)))
        probe = (probe_id, site, channel, "standard" if channel == "email" else "open", "plan", None, "closed",
                 planned, planned, "{}", planned, planned, planned, 1)
        yield probe, verdicts


PROBE_COLUMNS = ("id", "site", "channel", "purpose", "origin", "plan_key", "status", "planned_at", "sent_at",
                 "details", "created_at", "updated_at", "closed_at", "attempts")
VERDICT_COLUMNS = ("probe_id", "commitment", "site", "channel", "verdict", "deadline", "started_at", "answered_at",
                   "delay_seconds", "business_delay_seconds", "late", "reason", "decided_at")
EVENT_COLUMNS = ("seq", "probe_id", "at", "type", "data", "prev_hash", "hash")


def sqlite_text(value: Any) -> Any:
    """What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def load_sqlite(path: Path, rows: Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]],
                events: Any = None, batch: int = 50_000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    probe_sql = f"INSERT INTO probes ({', '.join(PROBE_COLUMNS)}) VALUES ({', '.join('?' * len(PROBE_COLUMNS))})"
    verdict_sql = (f"INSERT INTO verdicts ({', '.join(VERDICT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(VERDICT_COLUMNS))})")
    event_sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
    for probes, verdicts, event_rows in batches(rows, events, batch):
        conn.executemany(probe_sql, [tuple(map(sqlite_text, p)) for p in probes])
        conn.executemany(verdict_sql, [tuple(map(sqlite_text, v)) for v in verdicts])
        if event_rows:
            conn.executemany(event_sql, [tuple(map(sqlite_text, e)) for e in event_rows])
        conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


async def load_postgres(dsn: str, rows: Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]],
                        events: Any = None, batch: int = 50_000) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        for probes, verdicts, event_rows in batches(rows, events, batch):
            await conn.copy_records_to_table("probes", records=probes, columns=PROBE_COLUMNS)
            await conn.copy_records_to_table("verdicts", records=verdicts, columns=VERDICT_COLUMNS)
            if event_rows:
                await conn.copy_records_to_table("events", records=event_rows, columns=EVENT_COLUMNS)
        await conn.execute("VACUUM ANALYZE probes")
        await conn.execute("VACUUM ANALYZE verdicts")
        if events is not None:
            await conn.execute("VACUUM ANALYZE events")
    finally:
        await conn.close()


def batches(rows: Iterator[tuple[tuple[Any, ...], list[tuple[Any, ...]]]], events: Any,
            size: int) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    probes: list[Any] = []
    verdicts: list[Any] = []
    event_rows: list[Any] = []
    for probe, probe_verdicts in rows:
        probes.append(probe)
        verdicts.extend(probe_verdicts)
        if events is not None:
            event_rows.extend(events(probe, probe_verdicts))
        if len(probes) == size:
            yield probes, verdicts, event_rows
            probes, verdicts, event_rows = [], [], []
    if probes:
        yield probes, verdicts, event_rows


# ------------------------------------------------------------------ databases


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# ------------------------------------------------------------------ measurements


async def api_timings(config: Config, runs: int = 5) -> tuple[list[float], list[dict[str, Any]]]:
    """Median-worthy timings of the real endpoint on a loopback port, and its last answer."""
    from aiohttp import ClientSession

    timings: list[float] = []
    body: list[dict[str, Any]] = []
    async with serving_api(config) as base, ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        for run in range(runs + 1):
            started = time.perf_counter()
            async with http.get(f"{base}/api/v1/compliance", params={"from": QUARTER[0], "to": QUARTER[1]}) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
            if run:  # the first run warms caches and connections
                timings.append(time.perf_counter() - started)
    return timings, body


async def naive(config: Config) -> tuple[float, list[dict[str, Any]]]:
    """Every verdict row into Python, then filter and count there."""
    from sqlalchemy import select

    from monitor.api.params import period
    from monitor.store.schema import Verdict
    from monitor.store.store import Store

    store = Store.open(config.database)
    start, end = period({"from": datetime.fromisoformat(QUARTER[0]).date(),
                         "to": datetime.fromisoformat(QUARTER[1]).date()}, config.timezone)
    started = time.perf_counter()
    async with store.read() as conn:
        rows = (await conn.execute(select(Verdict.site, Verdict.commitment, Verdict.verdict,
                                          Verdict.started_at))).all()
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for site, cid, verdict, started_at in rows:
        if start <= started_at < end:
            counts[(site, cid)][verdict] += 1
    result = [compliance(s, c, counts[(s, c)], config.commitments[c].target_ratio,
                         config.compliance.min_samples).public() for s, c in site_commitments(config)]
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed, result


async def measure(label: str, config: Config, dsn: str | None) -> None:
    timings, body = await api_timings(config)
    naive_seconds, naive_rows = await naive(config)
    assert body == naive_rows, "the naive count disagrees with the API"
    samples = sum(r["n"] + r["pending"] + r["void"] for r in body)
    api = statistics.median(timings)
    print(f"  {label:10s} API median {api * 1000:7.0f} ms (min {min(timings) * 1000:.0f}, max "
          f"{max(timings) * 1000:.0f}) | naive {naive_seconds * 1000:7.0f} ms | {naive_seconds / api:5.1f}x | "
          f"{len(body)} rows, {samples} verdicts in the quarter", flush=True)


async def run_sqlite(probes: int, sites: int, candidate: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate.upgrade, url)
        started = time.perf_counter()
        await asyncio.to_thread(load_sqlite, path, generate(probes, sites))
        print(f"  sqlite     loaded {probes} probes in {time.perf_counter() - started:.0f} s", flush=True)
        config = bench_config(url, sites)
        await measure("sqlite", config, None)
        if candidate:
            with sqlite3.connect(path) as conn:
                conn.execute(CANDIDATE_INDEX)
                conn.execute("ANALYZE")
            await measure("sqlite+ix", config, None)


async def run_postgres(probes: int, sites: int, candidate: bool) -> None:
    async with scratch_postgres() as url:
        if url is None:
            print("  postgresql: skipped")
            return
        await asyncio.to_thread(migrate.upgrade, url)
        started = time.perf_counter()
        await load_postgres(plain_dsn(url), generate(probes, sites))
        print(f"  postgres   loaded {probes} probes in {time.perf_counter() - started:.0f} s", flush=True)
        config = bench_config(url, sites)
        await measure("postgres", config, plain_dsn(url))
        if candidate:
            import asyncpg

            conn = await asyncpg.connect(plain_dsn(url))
            await conn.execute(CANDIDATE_INDEX)
            await conn.execute("VACUUM ANALYZE verdicts")
            await conn.close()
            await measure("postgres+ix", config, plain_dsn(url))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--candidate-index", action="store_true", help="also measure with the proposed index")
    args = parser.parse_args()
    print(f"compliance API: {args.probes} probes over 2026, {args.sites} sites, quarter {QUARTER[0]}..{QUARTER[1]}")
    if not args.no_sqlite:
        await run_sqlite(args.probes, args.sites, args.candidate_index)
    if not args.no_postgres:
        await run_postgres(args.probes, args.sites, args.candidate_index)


if __name__ == "__main__":
    asyncio.run(main())
