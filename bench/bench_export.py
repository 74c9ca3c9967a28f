"""CSV export benchmark: 1,000,000 probes (with their events and verdicts) streamed as CSV.

Variants, each in its own process so its peak RSS is its own:
- `stream`: what `qualimon export --format csv` runs, `monitor.api.csvout.export_csv`: keyset
  pages of 500 probes, their verdicts bulk-loaded per page (events are not read: the subject is
  in the probe's details), encoded in chunks into a sink that only counts bytes;
- `stream-10pct`: the same over the first ~10 % of the probes, to show the peak does not grow
  with the export (streamed, constant memory);
- `http`: `GET /api/v1/probes?format=csv` through the real app on a loopback port, read by
  an aiohttp client in the same process;
- `naive`: `fetchall` of probes, events and verdicts, every export document built in memory,
  the whole CSV built in one string, then written.

Data: the probes and verdicts of bench_compliance (1/3 email with two verdicts, 2/3 phone with
one), plus ~4.3 events per probe (planned, send_started with the subject or call id, sent,
one verdict event per commitment), bulk-loaded with COPY (PostgreSQL) or executemany (SQLite),
bypassing the runner and the event chain (the hashes are placeholders; export does not check them).

    .venv/bin/python bench/bench_export.py [--probes 1000000] [--sqlite] [--no-postgres] [--variants ...]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_compliance import (  # noqa: E402
    generate,
    load_postgres,
    load_sqlite,
    plain_dsn,
)

from monitor.store import migrate  # noqa: E402
from support import scratch_postgres, serving_api  # noqa: E402

SITES = 10_000
TOKEN = "bench-auditor-token-0123456789"
PLACEHOLDER_HASH = "0" * 64
SUBJECTS = ["Horaires d'ouverture pour un groupe", "Accessibilité en fauteuil, le samedi ?",
            'Tarifs "réduits", étudiants, et visites guidées']


def subject_for(probe_id: str) -> str:
    return SUBJECTS[ord(probe_id[-1]) % len(SUBJECTS)]


def with_subjects(rows: Any) -> Any:
    """Email probes keep the subject sent in their details, as the email kind records it."""
    for probe, verdicts in rows:
        if probe[2] == "email":
            probe = probe[:9] + (json.dumps({"subject": subject_for(probe[0])}, ensure_ascii=False),) + probe[10:]
        yield probe, verdicts


class EventRows:
    """Events for each generated probe, numbered in one sequence."""

    def __init__(self) -> None:
        self.seq = itertools.count(1)

    def __call__(self, probe: tuple[Any, ...], verdicts: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        probe_id, site, channel, planned = probe[0], probe[1], probe[2], probe[7]
        detail = ({"subject": subject_for(probe_id), "to": f"accueil@{site}.example.org", "token": "QP-ABCDE"}
                  if channel == "email" else {"call_id": f"call-{probe_id}", "line": "mystery"})
        rows = [self.row(probe_id, planned, "planned", {"site": site, "channel": channel}),
                self.row(probe_id, planned, "send_started", detail),
                self.row(probe_id, planned + timedelta(seconds=1), "sent", {"reconciled": False})]
        for verdict in verdicts:
            rows.append(self.row(probe_id, verdict[12], "verdict", {"commitment": verdict[1], "verdict": verdict[4]}))
        return rows

    def row(self, probe_id: str, at: datetime, type_: str, data: dict[str, Any]) -> tuple[Any, ...]:
        return (next(self.seq), probe_id, at, type_, json.dumps(data, ensure_ascii=False, sort_keys=True),
                PLACEHOLDER_HASH, PLACEHOLDER_HASH)


# ------------------------------------------------------------------ variants (run in a child process)


class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0
        self.rows = 0

    def write(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        self.rows += chunk.count(b"\n")  # no field of the bench data holds a line break; CRLF may straddle chunks


async def variant_stream(url: str, end: datetime | None) -> dict[str, Any]:
    from monitor.api.csvout import export_csv
    from monitor.store.store import Store

    store = Store.open(url)
    sink = CountingSink()
    probes = await export_csv(store, sink, None, end)  # type: ignore[arg-type]
    await store.close()
    return {"probes": probes, "rows": sink.rows - 1, "bytes": sink.bytes}


async def variant_http(url: str) -> dict[str, Any]:
    from aiohttp import ClientSession, ClientTimeout

    from monitor.config import parse_config

    config = parse_config(HTTP_CONFIG.format(url=url, token=TOKEN), environ={})
    sink = CountingSink()
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/csv"}
    async with serving_api(config) as base, ClientSession(headers=headers, timeout=ClientTimeout(total=None)) as http:
        async with http.get(f"{base}/api/v1/probes") as response:
            assert response.status == 200, await response.text()
            async for chunk in response.content.iter_chunked(1 << 16):
                sink.write(chunk)
    return {"probes": None, "rows": sink.rows - 1, "bytes": sink.bytes}


HTTP_CONFIG = """
database: {url}
tokens: [{{name: bench, role: auditor, token: "{token}"}}]
calendars: {{offices: {{holidays: {{country: FR}}}}}}
commitments: {{email.reply: {{channel: email, within: {{working_days: 5}}}}}}
mailboxes: {{mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: /tmp/unused}}}}
sites: [{{id: site-00000, name: Site, calendar: offices, email: {{address: a@example.org}}}}]
"""


async def variant_naive(url: str) -> dict[str, Any]:
    """The obvious way: everything into memory, then one big string."""
    from sqlalchemy import select

    from monitor.api.csvout import BOM, COLUMNS, document_rows
    from monitor.history import probe_document
    from monitor.store.records import EventRecord, ProbeRecord
    from monitor.store.schema import Event, Probe, Verdict
    from monitor.store.store import Store, verdict_record

    store = Store.open(url)
    async with store.read() as conn:
        probes = [ProbeRecord.from_row(r) for r in
                  (await conn.execute(select(Probe).order_by(Probe.planned_at, Probe.id))).fetchall()]
        events: dict[str, list[EventRecord]] = defaultdict(list)
        for r in (await conn.execute(select(Event).order_by(Event.seq))).fetchall():
            events[r.probe_id].append(EventRecord(r.seq, r.probe_id, r.at, r.type, json.loads(r.data)))
        verdicts: dict[str, dict[str, Any]] = defaultdict(dict)
        for r in (await conn.execute(select(Verdict))).fetchall():
            verdicts[r.probe_id][r.commitment] = verdict_record(r)
    await store.close()
    documents = [probe_document(p, events[p.id], verdicts[p.id]) for p in probes]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(COLUMNS)
    for document in documents:
        writer.writerows(document_rows(document))
    data = buffer.getvalue().encode("utf-8")
    sink = CountingSink()
    sink.write(data)
    return {"probes": len(documents), "rows": sink.rows - 1, "bytes": sink.bytes}


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM).  Not ru_maxrss: Linux carries the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(variant: str, url: str, end: str | None) -> None:
    started = time.perf_counter()
    if variant == "naive":
        result = asyncio.run(variant_naive(url))
    elif variant == "http":
        result = asyncio.run(variant_http(url))
    else:
        result = asyncio.run(variant_stream(url, datetime.fromisoformat(end) if end else None))
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result))


def run_variant(variant: str, url: str, end: datetime | None = None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", variant, "--url", url]
    if end is not None:
        command += ["--end", end.isoformat()]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


# ------------------------------------------------------------------ driver


def report(label: str, variant: str, result: dict[str, Any]) -> None:
    rate = result["rows"] / result["seconds"]
    probes = f"{result['probes']:>8}" if result["probes"] is not None else "       -"
    print(f"  {label:9s} {variant:13s} {probes} probes {result['rows']:>8} rows {result['bytes'] / 2**20:7.1f} MiB "
          f"{result['seconds']:7.1f} s {rate:9,.0f} rows/s  peak RSS {result['peak_rss_mib']:7.0f} MiB", flush=True)


def measure(label: str, url: str, variants: list[str]) -> None:
    tenth = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(days=36.5)
    for variant in variants:
        result = run_variant("stream", url, tenth) if variant == "stream-10pct" else run_variant(variant, url)
        report(label, variant, result)


async def prepare_sqlite(path: Path, probes: int) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrate.upgrade, url)
    started = time.perf_counter()
    await asyncio.to_thread(load_sqlite, path, with_subjects(generate(probes, SITES)), EventRows())
    print(f"  sqlite    loaded {probes} probes with events in {time.perf_counter() - started:.0f} s", flush=True)
    return url


async def prepare_postgres(url: str, probes: int) -> None:
    await asyncio.to_thread(migrate.upgrade, url)
    started = time.perf_counter()
    await load_postgres(plain_dsn(url), with_subjects(generate(probes, SITES)), EventRows())
    print(f"  postgres  loaded {probes} probes with events in {time.perf_counter() - started:.0f} s", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--probes", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--variants", nargs="+", default=["stream", "stream-10pct", "http", "naive"])
    parser.add_argument("--child")
    parser.add_argument("--url")
    parser.add_argument("--end")
    return parser.parse_args()


async def main(args: argparse.Namespace) -> None:
    print(f"CSV export: {args.probes} probes, variants {', '.join(args.variants)}")
    if not args.no_postgres:
        async with scratch_postgres() as url:
            if url is None:
                print("  postgresql: skipped")
            else:
                await prepare_postgres(url, args.probes)
                await asyncio.to_thread(measure, "postgres", url, args.variants)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = await prepare_sqlite(Path(tmp) / "export.db", args.probes)
            await asyncio.to_thread(measure, "sqlite", url, args.variants)


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.child:
        child(arguments.child, arguments.url, arguments.end)
    else:
        asyncio.run(main(arguments))
