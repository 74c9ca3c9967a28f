"""`/metrics` at 10,000 sites × 4 commitments, and one refresh of the derived gauges over 1,000,000 probes.

Part 1 — the exposition.  Each implementation runs in its own server process
(clean memory figures, its own GIL), built from the same config (10,000 sites
with email and phone, 4 commitments, 1 mailbox, 2 call-log sources):

- ours: `monitor.metrics` (the package) as it is now, within the cardinality
  budget (docs/design.md §6: ~16 series per site, 160,228 sample lines);
- before the budget: the same package as it was at `BEFORE_BUDGET_COMMIT`
  (per-site histograms and counters, ~250 series per site, 2,490,027 sample lines),
  taken from git into a temporary package;
- with `--with-prometheus-client`: the first `monitor/metrics.py`
  (prometheus_client objects, every series a `Counter`/`Gauge`/`Histogram`
  child, `make_aiohttp_handler`; `BASELINE_COMMIT`), which must serve the
  same lines as "before the budget" (order aside: its order within a family
  follows set iteration).

The server applies the same seeded writes, then the scraper (`curl`, a
separate process like Prometheus) takes one cold scrape in the text format,
whose sample lines are the series count.  Then load starts — random
writer calls (`--writes-per-second`, far above the ~0.05/s that 10,000 sites
really cause) and a full-size `DerivedSnapshot` (an entry for every site ×
commitment and verdict, as `compute_snapshot` gives) applied on the loop every
5 s as the service does, alternating two snapshots that differ in every value:
the worst case for the text cache.
After `--quiet-seconds` of load alone, the scraper alternates plain scrapes
and the scrape Prometheus makes (OpenMetrics, `Accept-Encoding: gzip`,
decompressed by curl), one second apart.  A 5 ms ticker on the server's
event loop records how late it wakes ("loop lag"), under load alone (the
noise floor of this shared machine) and with the scrapes.

Part 2 — `monitor.derived.compute_snapshot(store, config, now)` over
`--probes` probes (one in three by email, two verdicts; the rest by phone,
one verdict) spread over the year before `now`, ~1 % still open, on SQLite
and on PostgreSQL (a scratch database on the server the tests use; see
bench/support.py).  Rows are bulk-loaded straight into `probes` and
`verdicts` (executemany / COPY), bypassing the runner and the event chain:
the derived figures read only those two tables.  Each query of the refresh is
also timed on its own, with the plan of the slowest.

    .venv/bin/python bench/bench_metrics.py [--sites 10000] [--scrapes 20] [--baseline-scrapes 10]
        [--probes 1000000] [--no-baseline] [--with-prometheus-client] [--no-sqlite] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from support import scratch_postgres  # noqa: E402

from monitor.config import Config, parse_config  # noqa: E402

BASELINE_COMMIT = "9e24bb8"  # the last monitor/metrics.py built on prometheus_client's metric objects
BEFORE_BUDGET_COMMIT = "35c3ad5"  # monitor/metrics/ before the cardinality budget (issue 12)
IMPLEMENTATIONS = {"ours": "ours", "before": "before the budget", "baseline": "prometheus_client objects"}
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
SNAPSHOT_SECONDS = 5.0
TICK = 0.005

HEAD = """
database: {database}
calendars:
  offices: {{working_days: [mon, tue, wed, thu, fri]}}
  museum:
    opening_hours: {{tue-sun: ["10:00-18:00"]}}
commitments:
  email.ack:   {{channel: email, within: {{working_days: 1}}, counts: [auto_reply, human_reply], target: 0.90}}
  email.reply: {{channel: email, within: {{working_days: 5}}, counts: [human_reply], target: 0.90}}
  phone.answer: {{channel: phone, within: {{rings: 5}}, during: open, target: 0.85}}
  phone.out_of_hours: {{channel: phone, within: {{rings: 5}}, during: closed, target: 0.90}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    maildir: /tmp/qualimon-bench-unused
phone_lines:
  mystery:
    sip: {{proxy: "sip:trunk.example.net:5060", from: "sip:+33199001000@trunk.example.net"}}
sites:
"""
SITE = ("  - {{id: site-{i:05d}, name: Site {i}, calendar: museum, office_calendar: offices,"
        " email: {{address: contact{i}@example.org, per_month: 4}},"
        " phone: {{number: \"+3319900{n:04d}\", per_month: 8}}}}\n")
SOURCES = ("asterisk-main", "operator-csv")


def bench_config(sites: int, database: str = "sqlite+aiosqlite:///unused.db") -> Config:
    text = HEAD.format(database=database) + "".join(SITE.format(i=i, n=i % 10_000) for i in range(sites))
    return parse_config(text, environ={})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process, MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# ======================================================================= part 1: the server side


def baseline_module() -> ModuleType:
    """The previous monitor/metrics.py, from git, as a module of its own."""
    source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:monitor/metrics.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_metrics.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_metrics", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def ours_module() -> SimpleNamespace:
    """Ours, with the names the server uses, as the baseline's single module has them."""
    from monitor.metrics import DerivedSnapshot, Metrics
    from monitor.metrics.exposition import Exposition
    from monitor.metrics.http import make_metrics_app_handler

    return SimpleNamespace(Metrics=Metrics, DerivedSnapshot=DerivedSnapshot, Exposition=Exposition,
                           make_metrics_app_handler=make_metrics_app_handler)


def before_budget_module() -> SimpleNamespace:
    """`monitor/metrics/` at BEFORE_BUDGET_COMMIT, from git, as a package of its own."""
    package = "metrics_before_budget"
    directory = Path(tempfile.mkdtemp()) / package
    directory.mkdir()
    for name in ("__init__", "definitions", "exposition", "http"):
        source = subprocess.run(["git", "show", f"{BEFORE_BUDGET_COMMIT}:monitor/metrics/{name}.py"], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout
        (directory / f"{name}.py").write_text(source.replace("monitor.metrics", package))
    sys.path.insert(0, str(directory.parent))
    definitions = importlib.import_module(f"{package}.definitions")
    exposition = importlib.import_module(f"{package}.exposition")
    http = importlib.import_module(f"{package}.http")
    return SimpleNamespace(Metrics=definitions.Metrics, DerivedSnapshot=definitions.DerivedSnapshot,
                           Exposition=exposition.Exposition, make_metrics_app_handler=http.make_metrics_app_handler)


def timed_renders(module: Any) -> list[tuple[float, float]]:
    """Record (wall, CPU of its thread) seconds of each render of the body in the server's worker thread."""
    renders: list[tuple[float, float]] = []
    exposition = getattr(module, "Exposition", None)
    if exposition is not None:
        body = exposition.body

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                return body(self, *args, **kwargs)
            finally:
                renders.append((time.perf_counter() - started, time.thread_time() - cpu))

        exposition.body = timed
    return renders


def implementation(name: str) -> Any:
    return {"ours": ours_module, "before": before_budget_module, "baseline": baseline_module}[name]()


def seeded_writes(metrics: Any, config: Config, count: int, seed: int) -> None:
    """Writer calls on random series: what the runner and the ingesters do."""
    rng = random.Random(seed)
    sites = [s.id for s in config.sites]
    at = datetime(2026, 5, 11, 8, 0, tzinfo=UTC)
    for i in range(count):
        site = rng.choice(sites)
        match i % 4:
            case 0:
                metrics.verdict(site, rng.choice(["email.ack", "email.reply"]), rng.choice(["met", "missed"]),
                                rng.uniform(60, 900_000), rng.uniform(60, 500_000))
            case 1:
                metrics.call(site, "mystery", "answered", rng.uniform(2, 60))
                metrics.verdict(site, "phone.answer", "met", rng.uniform(2, 60))
            case 2:
                metrics.probe_sent(site, rng.choice(["email", "phone"]), at + timedelta(seconds=i))
            case _:
                metrics.send_failed(site, "email", "smtp: connection refused")


def full_snapshot(module: Any, config: Config, rng: random.Random, windows: tuple[str, ...]) -> Any:
    """A snapshot with an entry for every site × commitment, as a store full of history gives
    (`windows`: those the implementation's refresh computes)."""
    pairs = [(s.id, cid) for s in config.sites for ch in ("email", "phone") for cid in config.commitments_for(ch)]
    channels = [(s.id, ch) for s in config.sites for ch in ("email", "phone")]
    samples = {(site, cid, w, v): rng.randrange(12) for site, cid in pairs for w in windows
               for v in ("met", "missed", "pending", "void")}
    return module.DerivedSnapshot(
        compliance_ratio={(site, cid, w): rng.random() for site, cid in pairs for w in windows},
        samples=samples,
        probes_open={key: rng.randrange(3) for key in channels},
        probes_overdue={key: rng.randrange(2) for key in pairs},
        oldest_open_probe_age_seconds={key: rng.uniform(0, 800_000) for key in channels},
    )


class LoopLag:
    """How late a 5 ms ticker wakes, per phase ("load" without scrapes, then "scrapes")."""

    def __init__(self) -> None:
        self.phase = "load"
        self.samples: dict[str, list[float]] = {}

    async def run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            self.samples.setdefault(self.phase, []).append(time.perf_counter() - start - TICK)

    def report(self) -> dict[str, float]:
        return {f"lag_{name}_{stat}_ms": 1000 * value for name, lags in self.samples.items()
                for stat, value in (("p99", percentile(lags, 0.99)), ("max", max(lags)))}


class GcPauses:
    """Garbage-collector passes that took more than 20 ms (they stop every thread)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.long: list[tuple[int, float]] = []
        gc.callbacks.append(self.callback)

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        elif (spent := time.perf_counter() - self.started) > 0.02:
            self.long.append((info["generation"], round(1000 * spent)))


async def load(metrics: Any, module: Any, config: Config, writes_per_second: float, lag: LoopLag,
               applies: list[float], windows: tuple[str, ...]) -> None:
    rng = random.Random(7)
    snapshots = [full_snapshot(module, config, rng, windows) for _ in range(2)]

    async def writer() -> None:
        i = 0
        while True:
            await asyncio.sleep(1 / writes_per_second)
            seeded_writes(metrics, config, 1, seed=1000 + i)
            i += 1

    async def refresher() -> None:
        i = 0
        while True:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            start = time.perf_counter()
            metrics.apply_snapshot(snapshots[i % 2])
            applies.append(time.perf_counter() - start)
            i += 1

    await asyncio.gather(writer(), refresher(), lag.run())


async def serve(name: str, sites: int, writes_per_second: float) -> None:
    """A server process: build, serve, take commands on stdin ("load", "stop"), report JSON on stdout."""
    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from tests.support.integration import free_port

    module = implementation(name)
    # What each one's refresh computes: ours the 30-day window only (monitor.derived), the others 30 and 90 days.
    windows = ("30d",) if name == "ours" else ("30d", "90d")
    started = time.perf_counter()
    config = bench_config(sites)
    config_seconds = time.perf_counter() - started
    registry = CollectorRegistry()
    started = time.perf_counter()
    metrics = module.Metrics(registry, config, source_ids=SOURCES)
    build_seconds = time.perf_counter() - started
    seeded_writes(metrics, config, 2_000, seed=1)
    app = web.Application()
    app.router.add_get("/metrics", module.make_metrics_app_handler(registry, None))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ready = {"port": port, "config_s": config_seconds, "build_s": build_seconds, "rss_after_build_mb": rss_mb()[0]}
    print(json.dumps(ready), flush=True)
    lag, applies, pauses, renders = LoopLag(), [], GcPauses(), timed_renders(module)
    loop = asyncio.get_running_loop()
    task = None
    while True:
        command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if command == "load":
            task = asyncio.create_task(load(metrics, module, config, writes_per_second, lag, applies, windows))
        elif command == "scrapes":
            lag.phase = "scrapes"
            renders.clear()  # the cold one and any before: not warm scrapes
        elif command == "stop" or not command:
            break
    if task is not None:
        task.cancel()
    report = {**lag.report(), "apply_snapshot_ms": [round(1000 * a, 2) for a in applies],
              "gc_pauses_ms": pauses.long, "rss_peak_mb": rss_mb()[1],
              "render_s": [wall for wall, _ in renders], "render_cpu_s": [cpu for _, cpu in renders]}
    print(json.dumps(report), flush=True)
    await runner.cleanup()


# ======================================================================= part 1: the scraper side


def scrape(port: int, prometheus: bool) -> tuple[float, int, bytes]:
    """(seconds, bytes on the wire, text) of one curl scrape."""
    with tempfile.NamedTemporaryFile() as out:
        options = ["-H", f"Accept: {PROMETHEUS_ACCEPT}", "--compressed"] if prometheus else []
        done = subprocess.run(["curl", "-sS", "--max-time", "600", *options, "-o", out.name, "-w",
                               "%{time_total} %{size_download} %{http_code}", f"http://127.0.0.1:{port}/metrics"],
                              capture_output=True, text=True, check=True)
        seconds, size, status = done.stdout.split()
        assert status == "200", done.stdout
        return float(seconds), int(size), Path(out.name).read_bytes()


def same_lines(ours: bytes, theirs: bytes) -> bool:
    return sorted(ours.split(b"\n")) == sorted(theirs.split(b"\n"))


def series_count(body: bytes) -> int:
    """Sample lines: one per series Prometheus stores."""
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


def run_server_bench(implementation: str, args: argparse.Namespace, scrapes: int) -> tuple[dict[str, Any], bytes]:
    server = subprocess.Popen([sys.executable, __file__, "--serve", implementation, "--sites", str(args.sites),
                               "--writes-per-second", str(args.writes_per_second)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdin and server.stdout
    try:
        ready = json.loads(server.stdout.readline())
        cold_seconds, cold_size, cold_body = scrape(ready["port"], prometheus=False)
        print(f"  {IMPLEMENTATIONS[implementation]}: built in {ready['build_s']:.1f} s, cold scrape "
              f"{cold_seconds:.2f} s, {series_count(cold_body):,} series", flush=True)
        server.stdin.write("load\n")
        server.stdin.flush()
        time.sleep(args.quiet_seconds)  # the loop's lag under load alone: the noise floor
        server.stdin.write("scrapes\n")
        server.stdin.flush()
        plain, prometheus = [], []
        for _ in range(scrapes):  # one new snapshot waits for each scrape: Prometheus' case (30 s / 15 s refresh)
            time.sleep(args.scrape_every)
            plain.append(scrape(ready["port"], prometheus=False)[:2])
            time.sleep(args.scrape_every)
            prometheus.append(scrape(ready["port"], prometheus=True)[:2])
        server.stdin.write("stop\n")
        server.stdin.flush()
        report = json.loads(server.stdout.readline())
    finally:
        server.wait(timeout=120)
    result = {**ready, **report, "cold_s": cold_seconds, "size_mb": cold_size / 1e6, "series": series_count(cold_body),
              "plain_s": [s for s, _ in plain], "prometheus_s": [s for s, _ in prometheus],
              "gzip_mb": statistics.median(n for _, n in prometheus) / 1e6}
    return result, cold_body


def print_server_table(results: dict[str, dict[str, Any]]) -> None:
    print("\n| implementation | series | text MB | gzip MB | build s | RSS after build / peak MB | cold scrape s "
          "| plain p50 / p95 ms | Prometheus-style p50 / p95 ms | render in the server, p50 / p95 ms "
          "| its CPU, p50 / p95 ms | loop lag p99 / max ms, load alone | with scrapes "
          "| apply_snapshot on the loop ms (median / max) |")
    print("|---|" + "---:|" * 13)
    for name, r in results.items():
        applies = r["apply_snapshot_ms"] or [0.0]
        renders, cpu = r["render_s"] or [float("nan")], r["render_cpu_s"] or [float("nan")]
        print(f"| {name} | {r['series']:,} | {r['size_mb']:.1f} | {r['gzip_mb']:.1f} | {r['build_s']:.2f} "
              f"| {r['rss_after_build_mb']:.0f} / {r['rss_peak_mb']:.0f} | {r['cold_s']:.2f} "
              f"| {ms(r['plain_s'], 0.5)} / {ms(r['plain_s'], 0.95)} "
              f"| {ms(r['prometheus_s'], 0.5)} / {ms(r['prometheus_s'], 0.95)} "
              f"| {ms(renders, 0.5)} / {ms(renders, 0.95)} | {ms(cpu, 0.5)} / {ms(cpu, 0.95)} "
              f"| {r.get('lag_load_p99_ms', 0):.0f} / {r.get('lag_load_max_ms', 0):.0f} "
              f"| {r.get('lag_scrapes_p99_ms', 0):.0f} / {r.get('lag_scrapes_max_ms', 0):.0f} "
              f"| {statistics.median(applies):.2f} / {max(applies):.2f} |")
    for name, r in results.items():
        print(f"  {name}: config parsed in {r['config_s']:.1f} s; {len(r['plain_s'])} plain + "
              f"{len(r['prometheus_s'])} Prometheus-style warm scrapes: plain {fmt(r['plain_s'])}, "
              f"Prometheus-style {fmt(r['prometheus_s'])}; GC passes > 20 ms (generation, ms): {r['gc_pauses_ms']}")


def ms(values: list[float], q: float) -> str:
    return f"{1000 * percentile(values, q):.0f}"


def standby_series(sites: int) -> int:
    """The series of an instance of a fleet that does not hold the refresh (ours; in-process)."""
    from prometheus_client import CollectorRegistry

    from monitor.metrics import Metrics

    metrics = Metrics(CollectorRegistry(), bench_config(sites), source_ids=SOURCES)
    metrics.export_derived(False)
    return series_count(b"".join(metrics._exposition.body(openmetrics=False, gzip=False)))


def fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


# ======================================================================= part 2: the derived refresh

PROBE_COLUMNS = ("id", "site", "channel", "purpose", "origin", "status", "planned_at", "sent_at",
                 "timer_started_at", "closed_at", "attempts", "details", "created_at", "updated_at")
VERDICT_COLUMNS = ("probe_id", "commitment", "site", "channel", "verdict", "deadline", "started_at", "answered_at",
                   "delay_seconds", "business_delay_seconds", "late", "reason", "decided_at")
DEADLINES = {"email.ack": timedelta(days=1), "email.reply": timedelta(days=7),
             "phone.answer": timedelta(seconds=25), "phone.out_of_hours": timedelta(seconds=25)}


def rows(probes: int, sites: int, now: datetime, seed: int = 3) -> Iterator[tuple[tuple[Any, ...], list[tuple]]]:
    """(probe row, its verdict rows) over the year before `now`; the last week's probes are partly still open."""
    rng = random.Random(seed)
    for i in range(probes):
        site = f"site-{i % sites:05d}"
        channel = "email" if i % 3 == 0 else "phone"
        started = now - timedelta(seconds=rng.random() * 365 * 86_400)
        is_open = now - started < timedelta(days=7) and rng.random() < 0.3
        probe_id = f"{i:032x}"
        if channel == "email":
            commitments = ("email.ack", "email.reply")
        else:
            commitments = ("phone.answer",) if rng.random() < 0.8 else ("phone.out_of_hours",)
        verdicts = [verdict_row(probe_id, site, channel, cid, started, is_open, now, rng) for cid in commitments]
        probe = (probe_id, site, channel, "standard" if channel == "email" else "open", "plan",
                 "sent" if is_open else "closed", started, started, started, None if is_open else started, 1, "{}",
                 started, started)
        yield probe, verdicts


def verdict_row(probe_id: str, site: str, channel: str, cid: str, started: datetime, is_open: bool, now: datetime,
                rng: random.Random) -> tuple[Any, ...]:
    deadline = started + DEADLINES[cid]
    if is_open:
        value = "pending" if deadline > now or rng.random() < 0.5 else "missed"
    else:
        draw = rng.random()
        value = "met" if draw < 0.8 else "missed" if draw < 0.95 else "void"
    delay = rng.uniform(2, 30) if channel == "phone" else rng.uniform(600, 800_000)
    answered = started + timedelta(seconds=delay) if value == "met" else None
    return (probe_id, cid, site, channel, value, deadline, started, answered, delay if answered else None,
            delay if answered else None, False, "no_answer" if value == "missed" else None,
            None if value == "pending" else deadline)


def batches(data: Iterator[tuple[tuple[Any, ...], list[tuple]]], size: int = 50_000) -> Iterator[tuple[list, list]]:
    probes: list[tuple] = []
    verdicts: list[tuple] = []
    for probe, probe_verdicts in data:
        probes.append(probe)
        verdicts.extend(probe_verdicts)
        if len(probes) == size:
            yield probes, verdicts
            probes, verdicts = [], []
    if probes:
        yield probes, verdicts


def sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite DateTime stores: naive UTC text with microseconds."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value


def load_sqlite(path: Path, data: Iterator[tuple[tuple[Any, ...], list[tuple]]]) -> int:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    probe_sql = f"INSERT INTO probes ({', '.join(PROBE_COLUMNS)}) VALUES ({', '.join('?' * len(PROBE_COLUMNS))})"
    verdict_sql = (f"INSERT INTO verdicts ({', '.join(VERDICT_COLUMNS)}) "
                   f"VALUES ({', '.join('?' * len(VERDICT_COLUMNS))})")
    total = 0
    for probes, verdicts in batches(data):
        conn.executemany(probe_sql, [tuple(map(sqlite_value, p)) for p in probes])
        conn.executemany(verdict_sql, [tuple(map(sqlite_value, v)) for v in verdicts])
        conn.commit()
        total += len(verdicts)
    conn.close()  # no ANALYZE: SQLite never runs it by itself, so production has none either
    return total


async def load_postgres(dsn: str, data: Iterator[tuple[tuple[Any, ...], list[tuple]]]) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    total = 0
    try:
        for probes, verdicts in batches(data):
            await conn.copy_records_to_table("probes", records=probes, columns=PROBE_COLUMNS)
            await conn.copy_records_to_table("verdicts", records=verdicts, columns=VERDICT_COLUMNS)
            total += len(verdicts)
        await conn.execute("VACUUM ANALYZE probes")  # what autovacuum does after such a load
        await conn.execute("VACUUM ANALYZE verdicts")
    finally:
        await conn.close()
    return total


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await call()
    return time.perf_counter() - start, result


async def measure_refresh(url: str, config: Config, now: datetime, runs: int = 3) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from monitor import derived
    from monitor.metrics import Metrics
    from monitor.store.store import Store

    store = Store.open(url)
    try:
        # The first refresh of a holder reads every last send; the next ones the recent sends only.
        refresh = [await timed(lambda first=i == 0: derived.compute_snapshot(store, config, now, with_last_sent=first))
                   for i in range(runs)]
        snapshot = refresh[-1][1]
        queries = {
            "verdict_counts(30d)": lambda: store.verdict_counts(now - derived.WINDOWS["30d"]),
            "open_counts": lambda: store.open_counts(now),
            "overdue (both queries)": lambda: derived.overdue(store, now),
            "last_sent (all, first refresh)": lambda: derived.last_sent(store),
            "last_sent (recent, every refresh)": lambda: derived.last_sent(store, now - derived.RECENT_SENDS),
        }
        per_query = {name: (await timed(call))[0] for name, call in queries.items()}
    finally:
        await store.close()
    metrics = Metrics(CollectorRegistry(), config, source_ids=SOURCES)
    metrics._exposition.body(openmetrics=False, gzip=False)  # the cold render, not measured here
    start = time.perf_counter()
    metrics.apply_snapshot(snapshot)
    applied = time.perf_counter()
    metrics._exposition.body(openmetrics=False, gzip=False)
    return {"refresh_s": [s for s, _ in refresh], "per_query_s": per_query,
            "apply_snapshot_s": applied - start, "next_render_s": time.perf_counter() - applied,
            "entries": {"samples": len(snapshot.samples), "open": sum(snapshot.probes_open.values()),
                        "overdue": sum(snapshot.probes_overdue.values()), "last_sent": len(snapshot.last_probe_sent)}}


SQLITE_PLANS = {
    "verdict_counts": "SELECT site, commitment, verdict, count(*) FROM verdicts WHERE started_at >= ? "
                      "GROUP BY site, commitment, verdict",
    "last_sent": "SELECT site, channel, max(sent_at) FROM probes WHERE sent_at IS NOT NULL GROUP BY site, channel",
}


def sqlite_plans(path: Path, since: datetime) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        plans = {}
        for name, sql in SQLITE_PLANS.items():
            params = (sqlite_value(since),) if "?" in sql else ()
            plans[name] = "; ".join(row[-1] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        return plans
    finally:
        conn.close()


async def postgres_plans(dsn: str, since: datetime) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        plans = {}
        for name, sql in SQLITE_PLANS.items():
            rows_ = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql.replace('?', '$1')}",
                                     *((since,) if "?" in sql else ()))
            steps = (r[0].strip() for r in rows_)
            plans[name] = " | ".join(step for step in steps if not step.startswith(("Planning", "Execution")))[:400]
        return plans
    finally:
        await conn.close()


async def derived_sqlite(config: Config, probes: int, now: datetime) -> dict[str, Any]:
    from monitor.store import migrate

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.db"
        url = f"sqlite+aiosqlite:///{path}"
        await asyncio.to_thread(migrate.upgrade, url)
        started = time.perf_counter()
        verdicts = await asyncio.to_thread(load_sqlite, path, rows(probes, len(config.sites), now))
        loaded = time.perf_counter() - started
        result = await measure_refresh(url, config, now)
        result["plans"] = sqlite_plans(path, now - timedelta(days=90))
        return {**result, "load_s": loaded, "verdict_rows": verdicts}


async def derived_postgres(config: Config, probes: int, now: datetime) -> dict[str, Any] | None:

    from monitor.store import migrate

    async with scratch_postgres() as url:
        if url is None:
            return None
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        await asyncio.to_thread(migrate.upgrade, url)
        started = time.perf_counter()
        verdicts = await load_postgres(dsn, rows(probes, len(config.sites), now))
        loaded = time.perf_counter() - started
        result = await measure_refresh(url, config, now)
        result["plans"] = await postgres_plans(dsn, now - timedelta(days=90))
        return {**result, "load_s": loaded, "verdict_rows": verdicts}


def print_derived(name: str, r: dict[str, Any], probes: int) -> None:
    refresh = ", ".join(f"{s:.2f}" for s in r["refresh_s"])
    print(f"\n{name}: {probes:,} probes / {r['verdict_rows']:,} verdicts loaded in {r['load_s']:.0f} s; "
          f"compute_snapshot runs (the first of a holder, then the next ones): {refresh} s; "
          f"then apply_snapshot on the loop {1000 * r['apply_snapshot_s']:.1f} ms "
          f"and the next render (values in, changed lines patched) {1000 * r['next_render_s']:.0f} ms; "
          f"snapshot: {r['entries']}")
    for query, seconds in r["per_query_s"].items():
        print(f"  {query}: {seconds:.2f} s")
    for query, plan in r["plans"].items():
        print(f"  plan {query}: {plan}")


# ======================================================================= main


def machine() -> str:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=True).stdout.strip()
    return f"`{uname}`, `nproc` = {os.cpu_count()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=20, help="warm scrapes of each kind (ours)")
    parser.add_argument("--baseline-scrapes", type=int, default=10,
                        help="warm scrapes of each kind (before the budget; prometheus_client: a fifth of it)")
    parser.add_argument("--scrape-every", type=float, default=SNAPSHOT_SECONDS,
                        help="seconds between two scrapes (default: one snapshot between two)")
    parser.add_argument("--writes-per-second", type=float, default=50.0)
    parser.add_argument("--quiet-seconds", type=float, default=10.0, help="load without scrapes, for the lag floor")
    parser.add_argument("--probes", type=int, default=1_000_000)
    parser.add_argument("--no-baseline", action="store_true", help="ours only, not before the budget")
    parser.add_argument("--with-prometheus-client", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--serve", choices=tuple(IMPLEMENTATIONS), help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.sites, args.writes_per_second))
        return 0

    print(f"machine: {machine()}; date: {datetime.now(UTC):%Y-%m-%d}")
    print(f"\n/metrics at {args.sites:,} sites × 4 commitments", flush=True)
    runs = {"ours": args.scrapes}
    if not args.no_baseline:
        runs["before"] = args.baseline_scrapes
    if args.with_prometheus_client:
        runs["baseline"] = max(1, args.baseline_scrapes // 5)
    results, bodies = {}, {}
    for name, scrapes in runs.items():
        results[IMPLEMENTATIONS[name]], bodies[name] = run_server_bench(name, args, scrapes)
    if "before" in bodies and "baseline" in bodies:
        same = same_lines(bodies["before"], bodies["baseline"])
        print(f"  cold bodies before the budget and of prometheus_client objects: same lines: {same}")
        if not same:
            return 1
    print(f"  an instance that does not hold the refresh: {standby_series(args.sites):,} series")
    print_server_table(results)

    if args.no_sqlite and args.no_postgres:
        return 0
    now = datetime.now(UTC).replace(microsecond=0)
    config = bench_config(args.sites)
    if not args.no_sqlite:
        print_derived("SQLite", asyncio.run(derived_sqlite(config, args.probes, now)), args.probes)
    if not args.no_postgres:
        derived = asyncio.run(derived_postgres(config, args.probes, now))
        if derived is None:
            print("\nPostgreSQL: skipped")
        else:
            print_derived("PostgreSQL", derived, args.probes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
