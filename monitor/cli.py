"""The `qualimon` command line (docs/design.md §4); also `python -m monitor`.

Exit codes: 0 success, 1 the command ran and found a problem (a broken
chain, a failed probe), 2 bad usage or an invalid config (every error is
listed with its YAML path and line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from monitor import __version__, logsecrets
from monitor.config import Config, ConfigError

log = logging.getLogger("qualimon")


class UsageError(Exception):
    """Bad arguments; the message says what to type instead."""


# ---------------------------------------------------------------- commands


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file)
    print(f"{args.file}: ok ({len(config.sites)} sites, {len(config.commitments)} commitments, "
          f"{len(config.calendars)} calendars)")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from monitor.store import migrate
    from monitor.store.engine import safe_url

    config = _load(args.config)
    migrate.upgrade(config.database)
    print(f"{safe_url(config.database)}: schema at revision {migrate.head_revision()}")
    return 0


def _load(path: str) -> Config:
    """The config, validated with the channels of every kind this build runs (the composition root's);
    from then on its secrets are masked in every log record."""
    from monitor.service import load_service_config

    config = load_service_config(path)
    logsecrets.remember(config)
    return config


def cmd_deadline(args: argparse.Namespace) -> int:
    from monitor.calendar import calendars_from, deadline

    config = _load(args.config)
    site = _site(config, args.site)
    if args.commitment not in config.commitments:
        raise UsageError(f"no commitment {args.commitment!r}; known: {', '.join(config.commitments)}")
    commitment = config.commitments[args.commitment]
    if commitment.within is None:
        raise UsageError(f"{args.commitment} is a quality commitment: it grades the answer and has no deadline")
    calendar_id = config.calendar_id_for(site, commitment.channel)
    calendar = calendars_from(config)[calendar_id]
    start = parse_instant(args.start, ZoneInfo(config.calendar_tz(calendar_id)))
    due = deadline(commitment.within, start, calendar, commitment.ring_cadence_seconds)
    print(due.astimezone(calendar.zone).isoformat())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.fleet import AlreadyRunning
    from monitor.service import serve

    config = _load(args.config)
    try:
        return _run_until_signal(lambda stop: serve(config, stop))
    except AlreadyRunning as exc:
        raise UsageError(str(exc)) from None


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    return _run_until_signal(lambda stop: run_demo(stop, duration=args.duration, listen=args.listen,
                                                   workdir=args.workdir, pace=args.pace), duration=args.duration)


def cmd_probe(args: argparse.Namespace) -> int:
    config = _load(args.config)
    return asyncio.run(_probe(config, args.site, args.channel))


async def _probe(config: Config, site_id: str, channel: str) -> int:
    from monitor.clock import SystemClock
    from monitor.runner import Runner
    from monitor.service import default_kinds
    from monitor.store import migrate
    from monitor.store.store import Store

    _site(config, site_id)
    if channel not in config.channels:
        raise UsageError(f"no channel {channel!r}; known: {', '.join(config.channels)}")
    await asyncio.to_thread(migrate.upgrade, config.database)
    store = Store.open(config.database)
    try:
        runner = Runner(store, config, default_kinds(), SystemClock())
        probe_id, _ = await runner.probe_now(site_id, channel)
        probe = await store.probe(probe_id)
    finally:
        await store.close()
    assert probe is not None
    print(probe_id)
    if probe.status == "void":
        print(f"void: {probe.void_reason}", file=sys.stderr)
        return 1
    return 0


def cmd_probes_sample(args: argparse.Namespace) -> int:
    config = _load(args.config)
    site = _site(config, args.site)
    if args.channel not in config.channels or site.section(args.channel) is None:
        raise UsageError(f"site {args.site} has no {args.channel} probes in the config")
    if args.n < 1 or args.n > 100:
        raise UsageError("-n must be between 1 and 100")
    texts = asyncio.run(_with_store(config, lambda store: _samples(store, config, args.site, args.channel, args.n)))
    print("\n\n".join(texts))
    return 0


async def _samples(store: Any, config: Config, site_id: str, channel: str, count: int) -> list[str]:
    """The next planned probes of the site as they will read; imagined ones (a week apart) if fewer are planned."""
    from monitor.clock import SystemClock
    from monitor.service import default_kinds
    from monitor.store.records import PLANNED, NewProbe, ProbeRecord
    from monitor.store.schema import Probe

    kind = default_kinds().get(channel)
    if kind is None or kind.sample is None:
        raise UsageError(f"the {channel} probes cannot show a sample")
    now = SystemClock().now()
    planned = await store.probes_where(Probe.site == site_id, Probe.channel == channel, Probe.status == PLANNED,
                                       Probe.planned_at >= now, limit=count)
    texts = [f"=== probe {p.id}, planned {p.planned_at.isoformat()}\n{kind.sample(p, config)}" for p in planned]
    at = planned[-1].planned_at if planned else now.replace(hour=9, minute=30, second=0, microsecond=0)
    for _ in range(count - len(planned)):
        at += timedelta(days=7)
        new = NewProbe(site=site_id, channel=channel, planned_at=at)
        imagined = ProbeRecord(new.id, site_id, channel, "standard", "plan", PLANNED, at, None, None, None, None,
                               None, None, None, 0, {})
        texts.append(f"=== not planned yet (imagined for {at.isoformat()})\n{kind.sample(imagined, config)}")
    return texts


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.fleet.view import render_view
    from monitor.status import fleet_view, render_table, status_rows

    config = _load(args.config)
    if args.fleet:
        view = asyncio.run(_with_store(config, lambda store: fleet_view(store, config)))
        print(json.dumps(view.public(), indent=2) if args.format == "json" else render_view(view))
        return 0

    async def both(store: Any) -> tuple[Any, Any]:
        return await status_rows(store, config, days=args.days), await fleet_view(store, config)

    rows, view = asyncio.run(_with_store(config, both))
    if args.format == "json":
        print(json.dumps([r.public() for r in rows], indent=2))
    elif args.format == "csv":
        from monitor.api.csvout import compliance_csv

        sys.stdout.buffer.write(compliance_csv(r.compliance.public() for r in rows))
        sys.stdout.flush()
    else:
        print(render_table(rows, days=args.days))
        if view.backend == "postgresql":
            print()
            print(render_view(view))
    return 0


def cmd_plan_size(args: argparse.Namespace) -> int:
    from monitor.clock import SystemClock
    from monitor.plansize import current_quarter, plan_size, render
    from monitor.report import PeriodError, parse_period

    config = _load(args.config)
    try:
        period = parse_period(args.period) if args.period else current_quarter(SystemClock().now(), config.timezone)
    except PeriodError as exc:
        raise UsageError(str(exc)) from None
    rows = asyncio.run(_with_store(config, lambda store: plan_size(store, config, period)))
    if args.format == "json":
        print(json.dumps([r.public() for r in rows], indent=2))
    else:
        print(render(rows, period, config.compliance.confidence))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    config = _load(args.config)
    tz = ZoneInfo(config.timezone)
    start = _day_start(args.from_, tz)
    end = _day_start(args.to, tz, next_day=True)
    if start and end and end <= start:
        raise UsageError("--to is before --from")
    if args.format == "csv":
        count = asyncio.run(_with_store(config, lambda store: _export_csv(store, start, end, args.site, config)))
    else:
        count = asyncio.run(_with_store(config, lambda store: _export_jsonl(store, start, end, args.site)))
    print(f"exported {count} probes", file=sys.stderr)
    return 0


async def _export_jsonl(store: Any, start: datetime | None, end: datetime | None, site: str | None) -> int:
    from monitor.history import iter_documents

    count = 0
    async for document in iter_documents(store, start, end, site=site):
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        count += 1
    return count


async def _export_csv(store: Any, start: datetime | None, end: datetime | None, site: str | None,
                      config: Config) -> int:
    """Streamed (constant memory), UTF-8 with a BOM so spreadsheets read accents right."""
    from monitor.api.csvout import export_csv
    from monitor.progress import ProgressBar

    bar = ProgressBar(total=await store.count_probes(start, end, site=site), unit="probes")
    try:
        count = await export_csv(store, sys.stdout.buffer, start, end, site=site, config=config,
                                 progress=lambda done: bar.update(done, done))
    finally:
        bar.close()
    sys.stdout.flush()
    return count


def cmd_import_calls(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if args.source not in config.call_logs:
        known = ", ".join(config.call_logs) or "none configured (add a call_logs section)"
        raise UsageError(f"no call-log source {args.source!r}; known: {known}")
    source = config.call_logs[args.source]
    if source.kind == "asterisk_sql":
        if args.path:
            raise UsageError(f"{args.source!r} is a database source: give no PATH, it reads {source.kind}")
    elif not args.path:
        raise UsageError(f"give the file to import: qualimon import-calls -c FILE --source {args.source} PATH")
    elif not Path(args.path).is_file():
        raise UsageError(f"{args.path}: no such file")
    stats = asyncio.run(_with_store(config, lambda store: _import_calls(store, config, args)))
    if stats.cursor_reset is not None:
        print(f"{args.source}: the stored cursor was invalid ({stats.cursor_reset}); read again from the start",
              file=sys.stderr)
    print(f"{args.source}: {stats.rows} rows read, {stats.calls} calls, {stats.added} new, "
          f"{stats.rejected} rows rejected, {stats.unknown_site} calls to numbers of no site", file=sys.stderr)
    return 0


async def _import_calls(store: Any, config: Config, args: argparse.Namespace) -> Any:
    from monitor.calendar import calendars_from
    from monitor.clock import SystemClock
    from monitor.progress import ProgressBar
    from probes.calllogs.ingest import CallLogIngester, file_size

    source = config.call_logs[args.source]
    ingester = CallLogIngester(args.source, source, store, config, calendars_from(config), SystemClock())
    bar = ProgressBar(total=file_size(args.path) if args.path else None, unit="rows")
    try:
        return await ingester.run_once(path=args.path, live=False,
                                       progress=lambda stats, batch: bar.update(
                                           getattr(batch.cursor, "offset", None), stats.rows))
    finally:
        bar.close()


def cmd_report(args: argparse.Namespace) -> int:
    from monitor.clock import SystemClock
    from monitor.report import PeriodError, ReportError, build_report

    config = _load(args.config)
    out = Path(args.output)

    async def build(store: Any) -> Path:
        return await build_report(store, config, args.period, args.site, out, SystemClock().now(),
                                  format=args.format)

    try:
        index = asyncio.run(_with_store(config, build))
    except (PeriodError, ReportError) as exc:
        raise UsageError(str(exc)) from None
    print(index)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    config = _load(args.config)
    report = asyncio.run(_with_store(config, lambda store: store.verify_chain()))
    if report.ok:
        print(f"chain intact: {report.events} events, last {report.last_seq}, head {report.last_hash[:16]}…")
        return 0
    print(f"chain BROKEN at {report.broken}", file=sys.stderr)
    return 1


# ---------------------------------------------------------------- helpers


async def _with_store(config: Config, work: Callable[[Any], Any]) -> Any:
    from monitor.store import migrate
    from monitor.store.store import Store

    store = Store.open(config.database)
    try:
        if await migrate.pending(store.engine):
            raise UsageError("the database schema is not current; run: qualimon db upgrade -c <config>")
        return await work(store)
    finally:
        await store.close()


def _run_until_signal(start: Callable[[asyncio.Event], Any], duration: float | None = None) -> int:
    """Run until SIGINT/SIGTERM (or `duration`); a second signal exits at once if shutdown hangs."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                log.error("second signal: exiting without waiting for a clean shutdown")
                os._exit(130)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        if duration:
            loop.call_later(duration, stop.set)
        await start(stop)

    asyncio.run(main())
    return 0


def _site(config: Config, site_id: str) -> Any:
    try:
        return config.site(site_id)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def parse_instant(text: str, local: ZoneInfo) -> datetime:
    """ISO 8601; without an offset the time is read in `local` (the calendar's zone)."""
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO 8601 instant like 2026-04-30T10:00:00+02:00") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=local)


def _day_start(text: str | None, tz: ZoneInfo, next_day: bool = False) -> datetime | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a date like 2026-07-01") from None
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time(), tz).astimezone(timezone.utc)


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qualimon", description="Mystery-user monitor for reception quality.")
    parser.add_argument("--version", action="version", version=f"qualimon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], help_: str,
                config: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        if config:
            p.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML config file")
        p.set_defaults(handler=handler)
        return p

    command("run", cmd_run, "run the service: scheduler, probes, watchers, HTTP server")
    demo = command("demo", cmd_demo, "a self-contained demo on embedded SQLite", config=False)
    demo.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    demo.add_argument("--listen", default="127.0.0.1:9137", help="HTTP address (default 127.0.0.1:9137)")
    demo.add_argument("--workdir", default=None, help="keep the demo's files here instead of a temp dir")
    demo.add_argument("--pace", type=float, default=1.0, help="scale every simulated delay (0.1: ten times faster)")
    check = command("check-config", cmd_check_config, "validate a config file", config=False)
    check.add_argument("file", metavar="FILE")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply migrations (a no-op when up to date)")
    upgrade.add_argument("-c", "--config", required=True, metavar="FILE")
    upgrade.set_defaults(handler=cmd_db_upgrade)
    deadline = command("deadline", cmd_deadline, "print the deadline of a commitment started at an instant")
    deadline.add_argument("--site", required=True)
    deadline.add_argument("--commitment", required=True)
    deadline.add_argument("--start", required=True, help="ISO 8601, e.g. 2026-04-30T10:00:00+02:00")
    probe = command("probe", cmd_probe, "send one probe now (to check a set-up); prints its id")
    probe.add_argument("--site", required=True)
    probe.add_argument("--channel", required=True, help="email, phone, or another registered kind's channel")
    probes = sub.add_parser("probes", help="look at probes before they leave")
    probes_sub = probes.add_subparsers(dest="probes_command", required=True, metavar="ACTION")
    sample = probes_sub.add_parser("sample", help="print what the next probes of a site will look like")
    sample.add_argument("-c", "--config", required=True, metavar="FILE", help="the YAML config file")
    sample.add_argument("--site", required=True)
    sample.add_argument("-n", type=int, default=5, help="how many (default 5)")
    sample.add_argument("--channel", default="email", help="the probes' channel (default email)")
    sample.set_defaults(handler=cmd_probes_sample)
    status = command("status", cmd_status, "table of sites × commitments: compliance, open, overdue")
    status.add_argument("--days", type=int, default=30, help="period: the last N days (default 30)")
    status.add_argument("--format", choices=["table", "json", "csv"], default="table")
    size = command("plan-size", cmd_plan_size, "probes still needed per site × commitment to conclude compliant "
                                               "or non-compliant")
    size.add_argument("--period", help="2026-Q1, 2026-07, 2026 or 2026-07-01..2026-09-30 (default: this quarter)")
    size.add_argument("--format", choices=["table", "json"], default="table")
    status.add_argument("--fleet", action="store_true",
                        help="only the fleet: which instance holds which singleton task (PostgreSQL)")
    export = command("export", cmd_export, "probe history for auditors (JSON Lines or CSV)")
    export.add_argument("--from", dest="from_", metavar="D", help="first day (local), e.g. 2026-07-01")
    export.add_argument("--to", metavar="D", help="last day (local, inclusive)")
    export.add_argument("--site", help="only this site")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl",
                        help="jsonl: one probe per line with events; csv: one row per probe and commitment")
    calls = command("import-calls", cmd_import_calls, "backfill a call log (CDR) into the store, with a progress bar")
    calls.add_argument("--source", required=True, help="the call_logs source id in the config")
    calls.add_argument("path", nargs="?", metavar="PATH", help="the file to read (not for SQL sources)")
    report = command("report", cmd_report, "write the HTML audit report of a period")
    report.add_argument("--period", required=True, help="2026-Q3, 2026-07, 2026 or 2026-07-01..2026-09-30")
    report.add_argument("--site", help="only this site")
    report.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write the report to")
    report.add_argument("--format", choices=["html", "pdf"], default="html",
                        help="html: the browsable pages (default); pdf: one printable file with a cover")
    command("verify", cmd_verify, "check the tamper-evident event chain; exit 1 on a break")
    return parser


def setup_logging(verbose: bool) -> None:
    """Log to stderr (DEBUG with -v), quiet the chattiest libraries, and mask the config's secrets."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("apscheduler", "aiosqlite", "alembic", "asyncio", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # flufl.bounce logs every detector it tries, and a traceback when one trips on a hostile message
    # that we then classify anyway: neither helps an operator.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    # With -v, aioimaplib logs every IMAP command (LOGIN's quoted password included) and SQLAlchemy every
    # statement: each record passes the redactor, which knows the secrets of every config loaded below.
    logsecrets.install()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"qualimon: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
