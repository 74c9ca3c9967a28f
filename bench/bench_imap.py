"""Mailbox watching: reply detection latency with IMAP IDLE, and a 20,000-message backlog after an outage.

Both parts run against a throw-away Dovecot (tests/support/dovecot.py: Debian
`dovecot-imapd`, 127.0.0.1, plain text, `mail_fsync = never`).

1. Latency.  `ImapWatcher` (feeding the real pipeline: parse, classify, the
   shingle index refreshed from the store, match, the whole message fetched
   again by UID when only a prefix was read, sender authentication, the
   message recorded in its bucket with the verdict) sits in IDLE on the
   mystery mailbox beside a bare
   IDLE client (stdlib `imaplib` in a thread: EXAMINE, IDLE, wait for
   `* n EXISTS`, then DONE and one UID FETCH of the new headers) — the floor.
   A third connection APPENDs one reply at a time (`--appends`, default 200,
   50-150 ms apart) and waits until both have seen it.  Latency = from just
   before the APPEND is sent to: `handle()` called (watcher), EXISTS read and
   headers fetched (bare client).

2. Backlog.  `--messages` (default 20,000) replies are waiting (MULTIAPPEND,
   1,000 per command) when the watcher comes back with a cursor at UID 0.
   The mix (see `reply()`): 70 % text+HTML replies (~8 KB), 25 % with an
   inline logo (~45 KB), 5 % with a 300 KB PDF (~420 KB) — about 700 MB.
   Timed from `run()` to the last `handle()`, with the cursor saved per batch
   in a SQLite store, for: the watcher (headers + 16 KiB of body, batches of
   200, also 50 and 1000); the same watcher fetching whole messages
   (BODY.PEEK[]); and a naive client (stock aioimaplib, one
   `UID FETCH n (RFC822)` per message).  The Maildir is read once beforehand
   so every run starts with a warm page cache.

    .venv/bin/python bench/bench_imap.py [--appends 200] [--messages 20000] [--skip-latency] [--skip-backlog]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import imaplib
import os
import platform
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioimaplib  # type: ignore[import-untyped]

from monitor.clock import SystemClock
from monitor.config import parse_config
from monitor.host import StoreQueries
from monitor.runner import Runner
from monitor.store.records import Cursor, NewProbe
from monitor.store.store import Store
from probes.email.imap.watcher import ImapWatcher
from probes.email.pipeline import ReplyPipeline
from probes.email.shingles import fingerprint
from probes.email.watcher import FetchedMessage
from tests.support.databases import fresh_sqlite, sqlite_template
from tests.support.dovecot import ADDRESS, DovecotServer, running_dovecot

SEQUENCE = re.compile(rb"Subject: [^\r\n]*\[bench (\d+)\]")


# ----------------------------------------------------------------- messages

RNG = random.Random(20261126)
LOGO = base64.encodebytes(RNG.randbytes(26_000))
PDF = base64.encodebytes(RNG.randbytes(300_000))
PARAGRAPH = ("Nous avons bien reçu votre demande concernant la visite de groupe et l'accessibilité "
             "des salles pour une personne en fauteuil roulant. ")


def headers(number: int, boundary: str) -> str:
    """About 2.5 KB of the headers a real reply carries (relays, DKIM, ARC, Exchange stamps)."""
    relays = "".join(
        f"Received: from mx{hop}.example.org (mx{hop}.example.org [192.0.2.{hop + 10}])\r\n"
        f"\tby mx.probes.example.net (Postfix) with ESMTPS id 4Q{number:07d}{hop}\r\n"
        f"\tfor <{ADDRESS}>; Thu, 26 Nov 2026 10:0{hop}:00 +0100 (CET)\r\n" for hop in range(4))
    signature = base64.b64encode(RNG.randbytes(256)).decode()
    return (
        f"Return-Path: <accueil.site{number % 50}@example.org>\r\n{relays}"
        "Authentication-Results: mx.probes.example.net; dkim=pass header.d=example.org; spf=pass; dmarc=pass\r\n"
        f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel1;\r\n\tb={signature}\r\n"
        f"ARC-Seal: i=1; a=rsa-sha256; t=1795000000; cv=none; d=example.org; s=arc;\r\n\tb={signature[:200]}\r\n"
        "X-MS-Exchange-Organization-SCL: 1\r\nX-MS-Has-Attach: \r\nX-MS-TNEF-Correlator: \r\n"
        f"From: Accueil du musée {number % 50} <accueil.site{number % 50}@example.org>\r\n"
        f"To: Jeanne Martin <{ADDRESS}>\r\n"
        f"Subject: RE: Visite de groupe - Réf. QP-{number:05d} [bench {number}]\r\n"
        "Date: Thu, 26 Nov 2026 10:04:00 +0100\r\n"
        f"Message-ID: <bench-{number}-{os.getpid()}@mail.example.org>\r\n"
        f"In-Reply-To: <probe-{number}@probes.example.net>\r\n"
        f"References: <probe-{number}@probes.example.net>\r\n"
        "Thread-Topic: Visite de groupe\r\nContent-Language: fr-FR\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
    )


def reply(number: int) -> bytes:
    """70 % plain replies (~8 KB), 25 % with an inline logo (~45 KB), 5 % with a 300 KB PDF (~420 KB)."""
    boundary = f"=_qm{number:08d}"
    text = PARAGRAPH * 12 + "\r\n\r\nBien cordialement,\r\nL'accueil\r\n"
    parts = [
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}",
        f"--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{text}</p></body></html>\r\n",
    ]
    kind = number % 20
    if kind in (1, 2, 3, 4, 5):
        parts.append(f"--{boundary}\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
                     f"Content-ID: <logo>\r\n\r\n{LOGO.decode()}")
    elif kind == 0:
        parts.append(f"--{boundary}\r\nContent-Type: application/pdf; name=plan-acces.pdf\r\n"
                     f"Content-Transfer-Encoding: base64\r\n\r\n{PDF.decode()}")
    body = "\r\n".join(parts) + f"\r\n--{boundary}--\r\n"
    return (headers(number, boundary) + body).encode()


# ----------------------------------------------------------------- part 1: latency


@dataclass
class Seen:
    watcher: dict[int, float] = field(default_factory=dict)
    verdict: dict[int, float] = field(default_factory=dict)  # the pipeline stored the probe's verdict
    bare_exists: dict[int, float] = field(default_factory=dict)
    bare_fetched: dict[int, float] = field(default_factory=dict)
    appended: dict[int, float] = field(default_factory=dict)
    append_rtt: dict[int, float] = field(default_factory=dict)


def sequence_of(raw: bytes) -> int | None:
    found = SEQUENCE.search(raw)
    return int(found.group(1)) if found else None


def open_bare_client(server: DovecotServer) -> tuple[imaplib.IMAP4, int]:
    connection = imaplib.IMAP4(server.host, server.port)
    connection.login(server.user, server.password)
    connection.select("INBOX", readonly=True)
    return connection, int(connection.response("UIDNEXT")[1][0] or 1) - 1


def bare_idle_client(connection: imaplib.IMAP4, last_uid: int, seen: Seen) -> None:
    """The floor: the least an IDLE client can do to notice a message and read its headers.

    Runs in a thread until its socket is shut down from outside.
    """
    for number in range(1, 10**9):
        tag = f"B{number}".encode()
        connection.send(tag + b" IDLE\r\n")
        if not _read_until(connection, starts=b"+") or not _read_until(connection, ends=b"EXISTS\r\n"):
            return
        noticed = time.perf_counter()
        connection.send(b"DONE\r\n")
        _read_until(connection, starts=tag)
        _, data = connection.uid("FETCH", f"{last_uid + 1}:*", "(UID BODY.PEEK[HEADER])")
        fetched = time.perf_counter()
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0])
                last_uid = max(last_uid, int(uid.group(1)) if uid else last_uid)
                sequence = sequence_of(item[1])
                if sequence is not None:
                    seen.bare_exists.setdefault(sequence, noticed)
                    seen.bare_fetched.setdefault(sequence, fetched)


def _read_until(connection: imaplib.IMAP4, *, starts: bytes = b"", ends: bytes = b"") -> bool:
    """Read lines until one starts and ends as asked; False when the connection is closed."""
    while True:
        line = connection.readline()
        if not line:
            return False
        if line.startswith(starts) and line.endswith(ends):
            return True


def appender(server: DovecotServer, seen: Seen, count: int, first: int) -> None:
    with server.client() as connection:
        for sequence in range(first, first + count):
            time.sleep(RNG.uniform(0.05, 0.15))  # do not phase-lock with the server's timers
            started = time.perf_counter()
            connection.append("INBOX", "", None, reply(sequence))
            seen.append_rtt[sequence] = time.perf_counter() - started
            seen.appended[sequence] = started
            deadline = time.monotonic() + 10
            while (sequence not in seen.verdict or sequence not in seen.bare_fetched) and time.monotonic() < deadline:
                time.sleep(0.0005)


PIPELINE_CONFIG = """
calendars: {{offices: {{holidays: null}}}}
commitments:
  email.reply: {{channel: email, within: {{seconds: 86400}}}}
mailboxes:
  mystery: {{address: "Jeanne Martin <{address}>", imap: {{host: 127.0.0.1, port: {port}, tls: none,
            username: {user}, password: "{password}"}}}}
sites:
  - {{id: site, name: Musée, calendar: offices, email: {{address: accueil.site@example.org, per_month: 0}}}}
"""


async def plant_probes(server: DovecotServer, store: Store, numbers: range) -> ReplyPipeline:
    """One sent probe per reply (the reply's In-Reply-To names it), each with the fingerprint of its body so that
    the pipeline's shingle index holds them all, and the pipeline that judges replies."""
    config = parse_config(PIPELINE_CONFIG.format(address=ADDRESS, port=server.port, user=server.user,
                                                 password=server.password), environ={})
    now = datetime.now(UTC)
    probes = [NewProbe(site="site", channel="email", planned_at=now, purpose="standard") for _ in numbers]
    async with store.write() as tx:
        await tx.insert_probes(probes, now)
        for number, probe in zip(numbers, probes):
            await tx.set_probe(probe.id, now, status="sent", sent_at=now, token=f"QP-B{number + 10:04d}",
                               message_id=f"<probe-{number}@probes.example.net>",
                               details={"to": "accueil.site@example.org", "subject": "Visite de groupe"})
            await tx.set_fingerprint(probe.id, "email", fingerprint(
                f"Bonjour, je voudrais visiter le musée avec le groupe numéro {number} le {number % 28 + 1} juin."))
    return ReplyPipeline(Runner(store, config, {}, SystemClock()), StoreQueries(store, SystemClock()), config)


async def measure_latency(server: DovecotServer, store: Store, appends: int) -> Seen:
    seen = Seen()
    idle_reported = asyncio.Event()
    pipeline = await plant_probes(server, store, range(-5, appends))

    async def handle(fetched: FetchedMessage) -> None:
        sequence = sequence_of(fetched.raw)
        if sequence is not None:
            seen.watcher.setdefault(sequence, time.perf_counter())
            if (await pipeline.handle(fetched)).startswith("matched"):  # classified, matched, verdict stored
                seen.verdict.setdefault(sequence, time.perf_counter())

    def status(up: bool, detail: str) -> None:
        if up and detail.endswith("IDLE"):
            idle_reported.set()

    watcher = ImapWatcher("mystery", server.imap_config(), store, on_status=status)
    task = asyncio.create_task(watcher.run(handle))
    connection, last_uid = open_bare_client(server)
    bare = threading.Thread(target=bare_idle_client, args=(connection, last_uid, seen), daemon=True)
    bare.start()
    try:
        await asyncio.wait_for(idle_reported.wait(), 10)
        await asyncio.to_thread(appender, server, seen, 5, -5)   # warm-up, not reported
        await asyncio.to_thread(appender, server, seen, appends, 0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        connection.sock.shutdown(socket.SHUT_RDWR)  # wakes the bare client's blocking read
        bare.join(timeout=5)
    return seen


def latency_rows(seen: Seen, appends: int) -> list[tuple[str, list[float]]]:
    def delays(arrivals: dict[int, float]) -> list[float]:
        return [(arrivals[n] - seen.appended[n]) * 1000 for n in range(appends) if n in arrivals]

    return [
        ("qualimon: APPEND → verdict stored (watcher + pipeline + runner)", delays(seen.verdict)),
        ("ImapWatcher: APPEND → handle() called", delays(seen.watcher)),
        ("bare imaplib IDLE: APPEND → `* n EXISTS` read", delays(seen.bare_exists)),
        ("bare imaplib IDLE: APPEND → headers fetched", delays(seen.bare_fetched)),
        ("APPEND round trip (appender)", [seen.append_rtt[n] * 1000 for n in range(appends)]),
    ]


# ----------------------------------------------------------------- part 2: backlog


@dataclass
class BacklogRun:
    name: str
    seconds: float
    cpu_seconds: float
    handled: int
    megabytes: float


async def time_watcher(name: str, server: DovecotServer, store: Store, uidvalidity: int, expected: int,
                       **options: Any) -> BacklogRun:
    async with store.write() as tx:  # back from an outage: everything above UID 0 is waiting
        await tx.set_cursor(Cursor("imap:bench", uidvalidity, 0), datetime.now(UTC))
    handled = 0
    size = 0
    finished = asyncio.Event()

    async def handle(fetched: FetchedMessage) -> None:
        nonlocal handled, size
        handled += 1
        size += len(fetched.raw)
        if handled >= expected:
            finished.set()

    watcher = ImapWatcher("bench", server.imap_config(timeout_seconds=120), store, **options)
    return await _timed(name, watcher.run(handle), finished, lambda: (handled, size))


async def time_naive(server: DovecotServer, expected: int) -> BacklogRun:
    """What many scripts do: stock aioimaplib, search, then one `UID FETCH n (RFC822)` per message."""
    finished = asyncio.Event()
    handled = 0
    size = 0

    async def run() -> None:
        nonlocal handled, size
        client = aioimaplib.IMAP4(host=server.host, port=server.port, timeout=120)
        await client.wait_hello_from_server()
        await client.login(server.user, server.password)
        await client.select("INBOX")
        found = await client.uid_search("UID", "1:*", charset=None)
        for uid in found.lines[0].split():
            response = await client.uid("fetch", uid.decode(), "(RFC822)")
            handled += 1
            size += sum(len(line) for line in response.lines if isinstance(line, bytearray))
        finished.set()
        await client.logout()

    return await _timed("naive: stock aioimaplib, one FETCH (RFC822) per message", run(), finished,
                        lambda: (handled, size))


async def _timed(name: str, work: Awaitable[None], finished: asyncio.Event,
                 progress: Callable[[], tuple[int, int]]) -> BacklogRun:
    started, cpu = time.perf_counter(), time.process_time()
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait_for(finished.wait(), 900)
    finally:
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    handled, size = progress()
    return BacklogRun(name, seconds, cpu_seconds, handled, size / 1e6)


def fill(server: DovecotServer, count: int) -> tuple[int, float, float]:
    """Append `count` replies; returns the folder's UIDVALIDITY, seconds spent and megabytes stored."""
    started = time.perf_counter()
    total = 0
    for start in range(0, count, 1000):
        batch = [reply(n) for n in range(start, min(count, start + 1000))]
        total += sum(map(len, batch))
        server.append_many(batch)
    seconds = time.perf_counter() - started
    with server.client() as connection:
        connection.select("INBOX", readonly=True)
        uidvalidity = int(connection.response("UIDVALIDITY")[1][0])
    for path in server.maildir.rglob("*"):  # warm the page cache for every run alike
        if path.is_file():
            path.read_bytes()
    return uidvalidity, seconds, total / 1e6


async def measure_backlog(server: DovecotServer, template: Path, scratch: Path, count: int) -> list[BacklogRun]:
    uidvalidity, seconds, megabytes = fill(server, count)
    print(f"backlog: {count} messages, {megabytes:.0f} MB appended in {seconds:.1f} s", flush=True)
    plan: list[tuple[str, dict[str, Any]]] = [
        ("ImapWatcher: headers + 16 KiB, batches of 200", {}),
        ("ImapWatcher fetching whole messages (BODY.PEEK[]), batches of 200", {"fetch_full": True}),
        ("ImapWatcher: headers + 16 KiB, batches of 200 (again)", {}),
        ("ImapWatcher fetching whole messages (again)", {"fetch_full": True}),
        ("ImapWatcher: headers + 16 KiB, batches of 50", {"batch_size": 50}),
        ("ImapWatcher: headers + 16 KiB, batches of 1000", {"batch_size": 1000}),
    ]
    runs = []
    for number, (name, options) in enumerate(plan):
        directory = scratch / f"run{number}"
        directory.mkdir()
        store = Store.open(fresh_sqlite(template, directory))
        try:
            runs.append(await time_watcher(name, server, store, uidvalidity, count, **options))
        finally:
            await store.close()
        print(_backlog_row(runs[-1]), flush=True)
    runs.append(await time_naive(server, count))
    print(_backlog_row(runs[-1]), flush=True)
    return runs


# ----------------------------------------------------------------- report


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _latency_row(name: str, values: list[float]) -> str:
    if not values:
        return f"| {name} | 0 | | | |"
    return (f"| {name} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} "
            f"| {max(values):.1f} |")


def _backlog_row(run: BacklogRun) -> str:
    rate = run.handled / run.seconds if run.seconds else 0
    return (f"| {run.name} | {run.handled} | {run.seconds:.1f} | {rate:,.0f} | {run.cpu_seconds:.1f} "
            f"| {run.megabytes:,.0f} |")


def machine() -> str:
    uname = subprocess.run(["uname", "-a"], check=False, capture_output=True, text=True).stdout.strip()
    return f"`{uname}`, `nproc` = {os.cpu_count()}, Python {platform.python_version()}"


def dovecot_version() -> str:
    return subprocess.run(["dovecot", "--version"], check=False, capture_output=True, text=True).stdout.strip()


async def main_async(args: argparse.Namespace, template: Path, scratch: Path) -> None:
    print(f"- machine: {machine()}\n- Dovecot {dovecot_version()}\n- date: {datetime.now(UTC):%Y-%m-%d}\n")
    if not args.skip_latency:
        with running_dovecot() as server:
            store = Store.open(fresh_sqlite(template, scratch))
            try:
                seen = await measure_latency(server, store, args.appends)
            finally:
                await store.close()
        print("| path | n | p50 ms | p95 ms | max ms |\n|---|---:|---:|---:|---:|")
        for name, values in latency_rows(seen, args.appends):
            print(_latency_row(name, values))
        print(flush=True)
    if not args.skip_backlog:
        print("| reader | handled | seconds | messages/s | client CPU s | MB handed over |\n"
              "|---|---:|---:|---:|---:|---:|", flush=True)
        with running_dovecot() as server:
            await measure_backlog(server, template, scratch, args.messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-backlog", action="store_true")
    args, _ = parser.parse_known_args()  # run_all.py passes its own arguments to every bench
    with tempfile.TemporaryDirectory(prefix="qualimon-bench-imap-") as directory:
        scratch = Path(directory)
        template = sqlite_template(scratch)  # Alembic runs its own event loop: before ours
        asyncio.run(main_async(args, template, scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
