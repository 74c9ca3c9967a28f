"""A fleet on PostgreSQL: failover times, dispatch throughput with 1-3 instances, the load of standing by.

    .venv/bin/python bench/bench_fleet.py [--failover 15] [--takeovers 50] [--part failover|dispatch|standby]

- failover: three `qualimon run` under traffic (`tests/support/fleet.py`: Dovecot, aiosmtpd, sipp, a
  growing Master.csv); the holder of the least-taken-over task is killed (SIGKILL), paused (SIGSTOP until
  its tasks have new holders) or cut from the database (`pg_terminate_backend`), in turn, until every task
  was taken over `--takeovers` times; takeover time = the new holder's `acquired_at` minus the fault, per
  task and per fault kind, against `fleet.failover_seconds`.  Baseline: what one instance under a
  supervisor would give on SIGKILL — the time until the killed process's replacement has joined again.
  The books are audited at the end (nothing lost or doubled).
- dispatch: N probes due at once, handled by 1, 2 and 3 instances whose probe kind answers at once
  (`bench/fleet_fast_service.py`): probes/s, as a ratio to one instance; each probe sent exactly once.
- standby: three instances while nothing is due (production defaults: failover 15 s, dispatch every 10 s,
  refresh every 15 s): the statements each sends (its pool's, counted by SQLAlchemy, and its looks at the
  fleet), holder and standbys side by side; the instance holding every task is the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from support import machine  # noqa: E402 - after the path set-up above

from monitor.store import migrate  # noqa: E402
from monitor.store.records import NewProbe  # noqa: E402
from monitor.store.store import Store  # noqa: E402
from tests.support import dbservers  # noqa: E402
from tests.support.fleet import KINDS, Traffic, audit, fleet_world, settle  # noqa: E402

FAST_CONFIG = """
database: {database}
http: {{listen: "127.0.0.1:0"}}
calendars:
  offices: {{}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: {maildir}}}
runner: {{{runner}}}
sites:
{sites}
"""
SITES = 50


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# ---------------------------------------------------------------- failover


async def failover(server: dbservers.DatabaseServer, seconds: float, wanted: int) -> None:
    with tempfile.TemporaryDirectory(prefix="qualimon-bench-fleet-") as tmp:
        async with fleet_world(server, Path(tmp), instances=3, failover_seconds=seconds) as world:
            store = Store.open(world.url)
            traffic = Traffic(world, store, random.Random(7))
            restarts: list[float] = []
            rounds = 0
            try:
                traffic.start(probes_per_second=0.5, calls_per_second=1.0)
                while min(sum(t.task == task for t in world.takeovers) for task in world.tasks) < wanted:
                    kind = KINDS[rounds % len(KINDS)]
                    started = time.monotonic()
                    await world.disrupt(kind)
                    if kind == "kill":
                        restarts.append(time.monotonic() - started)
                    rounds += 1
                    if rounds % 10 == 0:
                        print(f"  {rounds} faults, {len(world.takeovers)} takeovers", file=sys.stderr, flush=True)
                await traffic.stop_planning()
                await settle(world, store, traffic)
                found = await audit(world, store)
            finally:
                await traffic.close()
                await store.close()
    report_failover(world.takeovers, restarts, rounds, seconds, found.problems(traffic), found, traffic)


def report_failover(takeovers, restarts, rounds, seconds, problems, found, traffic) -> None:  # type: ignore[no-untyped-def]
    print(f"\n### Failover (fleet.failover_seconds = {seconds:g}): {rounds} faults in a row, "
          f"{len(takeovers)} takeovers\n")
    print("| task / fault | takeovers | p50 s | p95 s | max s | within failover |")
    print("|---|---:|---:|---:|---:|---:|")
    groups: dict[str, list[float]] = defaultdict(list)
    for t in takeovers:
        groups[t.task].append(t.seconds)
    for t in takeovers:
        groups[f"*{t.kind}*"].append(t.seconds)
    groups["**all**"] = [t.seconds for t in takeovers]
    for name, values in groups.items():
        within = sum(v <= seconds for v in values)
        print(f"| {name} | {len(values)} | {percentile(values, 0.5):.2f} | {percentile(values, 0.95):.2f} | "
              f"{max(values):.2f} | {within}/{len(values)} |")
    if restarts:
        print(f"\nbaseline (one instance restarted by a supervisor, SIGKILL → replacement joined): "
              f"p50 {statistics.median(restarts):.2f} s, max {max(restarts):.2f} s over {len(restarts)}")
    print(f"\nbooks: probes {dict(found.statuses)}, void {dict(found.voided)}, replies {len(traffic.replies)}, "
          f"call-log calls {traffic.calls_logged}; problems: {problems or 'none'}")


# ---------------------------------------------------------------- dispatch and standby


def fast_config(workdir: Path, url: str, runner: str) -> Path:
    maildir = workdir / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    sites = "\n".join(f"  - {{id: site-{n:03d}, name: Site {n}, calendar: offices, "
                      f"email: {{address: desk{n}@example.org, per_month: 0}}}}" for n in range(SITES))
    path = workdir / "fast.yaml"
    path.write_text(FAST_CONFIG.format(database=url, maildir=maildir, runner=runner, sites=sites))
    return path


def start_instances(config: Path, count: int) -> list[subprocess.Popen[str]]:
    """Started one after the other, so the first takes every task."""
    processes = []
    for _ in range(count):
        process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fleet_fast_service.py"), str(config)],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        processes.append(process)
    return processes


def stop_instances(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


async def dispatch(server: dbservers.DatabaseServer, probes: int) -> None:
    print(f"\n### Dispatch throughput: {probes} probes due at once, a probe kind that answers at once\n")
    print("| instances | seconds | probes/s | ratio to one | sent twice |")
    print("|---:|---:|---:|---:|---:|")
    single = None
    for count in (1, 2, 3):
        async with server.scratch("qualimon_bench_fleet") as url:
            await asyncio.to_thread(migrate.upgrade, url)
            with tempfile.TemporaryDirectory() as tmp:
                config = fast_config(Path(tmp), url, "dispatch_interval_seconds: 0.05, max_concurrency: 20, "
                                                     "timeout_seconds: 30")
                processes = start_instances(config, count)
                try:
                    seconds, twice = await drain(url, probes)
                finally:
                    stop_instances(processes)
        rate = probes / seconds
        single = single or rate
        print(f"| {count} | {seconds:.1f} | {rate:.0f} | {rate / single:.2f}× | {twice} |")


async def drain(url: str, count: int) -> tuple[float, int]:
    store = Store.open(url)
    try:
        now = datetime.now(UTC)
        probes = [NewProbe(site=f"site-{n % SITES:03d}", channel="email", planned_at=now, purpose="standard",
                           origin="manual") for n in range(count)]
        async with store.write() as tx:
            await tx.insert_probes(probes, now)
        started = time.monotonic()
        async with store.read() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            for _ in range(100_000):  # bounded: 5000 s
                if not await raw.fetchval("SELECT count(*) FROM probes WHERE status <> 'sent'"):
                    break
                await asyncio.sleep(0.05)
            seconds = time.monotonic() - started
            twice = await raw.fetchval("SELECT count(*) FROM (SELECT probe_id FROM events WHERE type = 'sent' "
                                       "GROUP BY probe_id HAVING count(*) > 1) AS doubled")
        return seconds, twice
    finally:
        await store.close()


async def standby(server: dbservers.DatabaseServer, window: float) -> None:
    print(f"\n### Standing by: statements/s each instance sends while nothing is due (production defaults), "
          f"{window:.0f} s, three instances\n")
    print("| instance | holds | statements/s (pool) | looks at the fleet/s | total/s |")
    print("|---|---|---:|---:|---:|")
    async with server.scratch("qualimon_bench_fleet") as url:
        await asyncio.to_thread(migrate.upgrade, url)
        name = url.rsplit("/", 1)[1]
        with tempfile.TemporaryDirectory() as tmp:
            processes = start_instances(fast_config(Path(tmp), url, "max_concurrency: 20"), 3)
            try:
                commits = await commits_per_second(server, name, window)
            finally:
                for process in processes:
                    process.terminate()
                reports = [json.loads(process.communicate(timeout=60)[0].strip().splitlines()[-1])
                           for process in processes]
    idle = []
    for n, report in enumerate(sorted(reports, key=lambda r: -len(r["held"]))):
        pool, looks = report["pool"] / report["seconds"], report["fleet"] / report["seconds"]
        if not report["held"]:
            idle.append(pool + looks)
        print(f"| {n + 1} | {', '.join(report['held']) or '—'} | {pool:.2f} | {looks:.2f} | {pool + looks:.2f} |")
    print(f"\ndatabase side: {commits:.2f} transactions/s committed for the three; an idle instance costs "
          f"{statistics.mean(idle):.2f} statements/s" if idle else "")


async def commits_per_second(server: dbservers.DatabaseServer, name: str, window: float) -> float:
    conn = await asyncpg.connect(server.dsn(name))
    query = ("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        before = await conn.fetchval(query)
        await asyncio.sleep(window)
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        after = await conn.fetchval(query)
    finally:
        await conn.close()
    return (after - before - 2) / window  # minus our own two reads


# ---------------------------------------------------------------- main


async def main(args: argparse.Namespace) -> None:
    print(f"- machine: {machine()}\n- date: {datetime.now(UTC).date()}")
    with dbservers.postgres_server() as server:
        if server.root is not None:
            print("  note: a throw-away PostgreSQL, not the configured server", file=sys.stderr)
        if args.part in ("all", "dispatch"):
            await dispatch(server, args.probes)
        if args.part in ("all", "standby"):
            await standby(server, args.window)
        if args.part in ("all", "failover"):
            await failover(server, args.failover, args.takeovers)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "failover", "dispatch", "standby"], default="all")
    parser.add_argument("--failover", type=float, default=15.0, help="fleet.failover_seconds (default 15)")
    parser.add_argument("--takeovers", type=int, default=50, help="takeovers per task (default 50)")
    parser.add_argument("--probes", type=int, default=2000, help="probes for the dispatch part")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured for the standby part")
    asyncio.run(main(parser.parse_args()))
