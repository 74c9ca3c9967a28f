"""Three `qualimon run` processes on one PostgreSQL database, under continuous traffic, and the faults to inject.

`fleet_world(...)` starts the world the acceptance test and `bench/bench_fleet.py`
share:

- a scratch PostgreSQL database (migrated), Dovecot (the mystery mailbox),
  aiosmtpd (our SMTP provider: it keeps what the desks receive and delivers
  our blind copies into Dovecot), sipp (the museums' phones, TCP) and a
  Master.csv the PBX keeps appending to;
- `instances` real `python -m monitor run` processes with one config.

`Traffic` plays the outside world while faults are injected: it plans probes
due now (email and phone, alternately), answers every probe email that reaches
a desk with a reply appended to Dovecot, and appends one call a moment to
Master.csv.  `disrupt(kind)` hits the instance holding the least-taken-over
task — `kill` (SIGKILL, then a fresh process), `stop` (SIGSTOP until each of
its tasks has a new holder, then SIGCONT) or `cut` (`pg_terminate_backend` of
its fleet connection) — and measures, per task it held, the takeover time:
the new holder's `acquired_at` (the database's clock) minus the instant of the
fault.  `audit()` then checks the books: every probe ended (sent, closed, or
void when a kill interrupted its send), none reached the outside world twice,
every reply and every call recorded exactly once, the event chain intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import asyncpg
from sqlalchemy import func, select

from monitor.demo.desks import reply
from monitor.fleet.postgres import read_view
from monitor.fleet.tasks import fleet_tasks
from monitor.fleet.view import FleetView
from monitor.service import load_service_config
from monitor.store import migrate
from monitor.store.records import NewProbe
from monitor.store.schema import Call
from monitor.store.store import Store
from probes.email.message import normalize_message_id
from tests.support.dbservers import DatabaseServer
from tests.support.dovecot import DovecotServer, running_dovecot
from tests.support.sipp import answer, pause, recv, recv_invite, reply_ok, ring, run_sipp, uas
from tests.support.smtp import Received, RecordingHandler, password_checker, smtp_server

ROOT = Path(__file__).resolve().parents[2]
SMTP_PASSWORD = "smtp-fleet-5c1e0a"
SITES = [("petit-palais", "+33199001231"), ("maison-victor-hugo", "+33199001232"),
         ("musee-carnavalet", "+33199001233")]
KINDS = ("kill", "stop", "cut")
PATIENCE = 120.0  # seconds any one wait may take before the run fails (a bound, never a measured duration)

CONFIG = """
database: {database}
http: {{listen: "127.0.0.1:0"}}
calendars:
  always:
    {{holidays: null, working_days: [mon, tue, wed, thu, fri, sat, sun], opening_hours: {{daily: ["00:00-24:00"]}}}}
commitments:
  email.reply: {{channel: email, within: {{seconds: 86400}}}}
  phone.answer: {{channel: phone, within: {{rings: 5}}}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none, username: jeanne, password: "${{SMTP_PASSWORD}}"}}
    imap: {{host: 127.0.0.1, port: {imap_port}, tls: none, username: {imap_user}, password: "${{IMAP_PASSWORD}}",
            poll_seconds: 1}}
phone_lines:
  mystery:
    sip: {{proxy: "{sip_proxy}", from: "sip:+33199001000@probes.example.net", max_ring_seconds: 30,
           hold_seconds: 0.2}}
call_logs:
  pbx: {{kind: asterisk_csv, path: {master_csv}, poll_seconds: 0.5}}
fleet: {{failover_seconds: {failover}}}
runner: {{timeout_seconds: 20, claim_grace_seconds: 10, dispatch_interval_seconds: 0.2, sweep_interval_seconds: 2}}
planner: {{interval_seconds: 5}}
sites:
{sites}
"""

SITE = """  - {{id: {id}, name: {id}, calendar: always, email: {{address: desk@{id}.example.org, per_month: 0}},
      phone: {{number: "{number}", per_month: 0}}}}"""


@dataclass
class Takeover:
    kind: str
    task: str
    seconds: float


@dataclass
class Instance:
    process: subprocess.Popen[bytes]

    @property
    def name(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"


@dataclass
class World:
    url: str
    admin: asyncpg.Connection
    config_path: Path
    env: dict[str, str]
    logs: Path
    dovecot: DovecotServer
    smtp: RecordingHandler
    sipp_log: Path
    master_csv: Path
    tasks: tuple[str, ...]
    instances: dict[str, Instance] = field(default_factory=dict)
    takeovers: list[Takeover] = field(default_factory=list)
    spawned: int = 0

    # ---- processes

    async def launch(self) -> Instance:
        self.spawned += 1
        instance = Instance(start_run(self.config_path, self.env, self.logs / f"instance-{self.spawned}.log"))
        self.instances[instance.name] = instance
        await self.until(lambda: self._joined(instance), f"{instance.name} to join the fleet")
        return instance

    async def _joined(self, instance: Instance) -> bool:
        assert instance.process.poll() is None, f"{instance.name} exited: see {self.logs}"
        return bool(await self.admin.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1 "
            "AND l.locktype = 'advisory' AND l.objid = 0 AND l.granted", f"qualimon {instance.name}"))

    async def view(self) -> FleetView:
        return await read_view(self.admin)

    async def all_held(self) -> bool:
        view = await self.view()
        return all(view.holder(task) is not None for task in self.tasks)

    async def until(self, condition, what: str, patience: float = PATIENCE) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + patience
        while not await condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"still waiting for {what} (logs in {self.logs})")
            await asyncio.sleep(0.05)

    async def stop_all(self) -> None:
        for instance in self.instances.values():
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGCONT)
                instance.process.terminate()
        for instance in self.instances.values():
            try:
                await asyncio.to_thread(instance.process.wait, 30)
            except subprocess.TimeoutExpired:
                instance.process.kill()
                await asyncio.to_thread(instance.process.wait)

    # ---- faults

    async def disrupt(self, kind: str) -> list[Takeover]:
        """Hit the holder of the least-taken-over task; returns the takeovers of the tasks it held."""
        await self.until(self.all_held, "every task to have a holder")
        view = await self.view()
        taken = Counter(t.task for t in self.takeovers)
        victim = view.holder(min(self.tasks, key=lambda task: (taken[task], task)))
        assert victim is not None
        held = {task: view.tasks[task].epoch for task in self.tasks if view.holder(task) == victim}
        instance = self.instances[victim]
        at = datetime.now(UTC)
        if kind == "kill":
            instance.process.send_signal(signal.SIGKILL)
        elif kind == "stop":
            instance.process.send_signal(signal.SIGSTOP)
        else:
            await self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE application_name = $1", f"qualimon {victim}")
        new = await self._taken_over(held, victim if kind != "cut" else None, at, kind)
        if kind == "kill":
            await asyncio.to_thread(instance.process.wait)
            del self.instances[victim]
            await self.launch()
        elif kind == "stop":
            instance.process.send_signal(signal.SIGCONT)
        await self.until(self._everyone_joined, "every instance to be back in the fleet")
        self.takeovers += new
        return new

    async def _taken_over(self, held: dict[str, int], not_by: str | None, at: datetime, kind: str) -> list[Takeover]:
        async def done() -> bool:
            view = await self.view()
            return all(view.tasks[task].epoch > epoch and view.holder(task) not in (None, not_by)
                       for task, epoch in held.items())

        await self.until(done, f"a new holder for {', '.join(held)} after {kind}")
        view = await self.view()
        return [Takeover(kind, task, (_acquired(view, task) - at).total_seconds()) for task in held]

    async def _everyone_joined(self) -> bool:
        return all([await self._joined(instance) for instance in self.instances.values()])


def start_run(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`qualimon run -c CONFIG`, its output in `log`."""
    with open(log, "wb") as output:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(config)], cwd=ROOT, env=env,
                                stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def append_row(path: Path, row: list[object]) -> None:
    with open(path, "a", newline="") as handle:
        csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC).writerow(row)


def _acquired(view: FleetView, task: str) -> datetime:
    acquired = view.tasks[task].acquired_at
    assert acquired is not None
    return acquired


class Traffic:
    """The outside world while faults are injected: probes planned, desks replying, the PBX logging calls."""

    def __init__(self, world: World, store: Store, rng: random.Random):
        self.world, self.store, self.rng = world, store, rng
        self.probes: list[str] = []
        self.replies: set[str] = set()  # normalised Message-IDs of the replies appended to Dovecot
        self.answered: set[str] = set()  # Message-IDs of the probe emails answered
        self.calls_logged = 0
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, probes_per_second: float = 1.0, calls_per_second: float = 2.0) -> None:
        self._tasks = [asyncio.create_task(self._plan(probes_per_second)),
                       asyncio.create_task(self._answer()),
                       asyncio.create_task(self._log_calls(calls_per_second))]

    async def stop_planning(self) -> None:
        """No new probes or calls; desks keep answering what they receive."""
        for task in (self._tasks[0], self._tasks[2]):
            task.cancel()
        await asyncio.gather(self._tasks[0], self._tasks[2], return_exceptions=True)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _plan(self, per_second: float) -> None:
        for n in range(100_000):  # bounded
            site, _ = SITES[n % len(SITES)]
            channel, purpose = (("email", "standard"), ("phone", "open"))[n % 2]
            now = datetime.now(UTC)
            probe = NewProbe(site=site, channel=channel, planned_at=now, purpose=purpose, origin="manual")
            async with self.store.write() as tx:
                await tx.insert_probes([probe], now)
            self.probes.append(probe.id)
            await asyncio.sleep(1 / per_second)

    async def _answer(self) -> None:
        seen = 0
        for _ in range(10_000_000):  # bounded
            received = self.world.smtp.received
            while seen < len(received):
                await self._answer_one(received[seen])
                seen += 1
            await asyncio.sleep(0.1)

    async def _answer_one(self, received: Received) -> None:
        desks = [address for address in received.rcpt_tos if address.startswith("desk@")]
        if not desks:
            return
        sent = message_from_bytes(received.data, policy=default)
        assert isinstance(sent, EmailMessage)
        if sent["Message-ID"] in self.answered:
            return  # a second copy of one probe: the audit counts it; answer once
        answer_ = reply(desks[0], sent, "Bonjour, nous sommes ouverts tous les jours.")
        await self.world.dovecot.aappend(answer_.as_bytes())
        self.answered.add(sent["Message-ID"])
        self.replies.add(normalize_message_id(answer_["Message-ID"]))

    async def _log_calls(self, per_second: float) -> None:
        start = datetime.now().replace(microsecond=0) - timedelta(days=1)
        for n in range(1, 1_000_000):  # bounded
            _, number = SITES[n % len(SITES)]
            t0 = start + timedelta(seconds=20 * n)
            uid = f"{int(t0.timestamp())}.{n}"
            row = ["", f"019900{n % 10000:04d}", "0" + number[3:], "from-trunk", f'"Appelant" <019900{n % 10000:04d}>',
                   f"PJSIP/trunk-{n:08x}", f"PJSIP/accueil-{n:08x}", "Dial", "PJSIP/accueil,30",
                   t0.strftime("%Y-%m-%d %H:%M:%S"), (t0 + timedelta(seconds=6)).strftime("%Y-%m-%d %H:%M:%S"),
                   (t0 + timedelta(seconds=66)).strftime("%Y-%m-%d %H:%M:%S"), 66, 60, "ANSWERED", "DOCUMENTATION",
                   uid, "", "", uid, n]
            append_row(self.world.master_csv, row)
            self.calls_logged = n
            await asyncio.sleep(1 / per_second)


@dataclass
class Audit:
    statuses: Counter[str]
    voided: Counter[str]
    emails_sent_twice: list[str]
    calls_placed_twice: list[str]
    sent_but_never_arrived: list[str]
    replies_recorded: Counter[str]
    calls_recorded: int
    chain_ok: bool

    def problems(self, traffic: Traffic) -> list[str]:
        found = []
        unfinished = {s: n for s, n in self.statuses.items() if s not in ("sent", "closed", "void")}
        if unfinished or sum(self.statuses.values()) != len(traffic.probes):
            found.append(f"probes not finished or missing: {dict(self.statuses)} of {len(traffic.probes)}")
        if self.emails_sent_twice or self.calls_placed_twice:
            found.append(f"sent twice: emails {self.emails_sent_twice}, calls {self.calls_placed_twice}")
        if self.sent_but_never_arrived:
            found.append(f"recorded as sent but never reached the outside: {self.sent_but_never_arrived}")
        wrong = {r: n for r, n in self.replies_recorded.items() if n != 1}
        missing = traffic.replies - set(self.replies_recorded)
        if wrong or missing:
            found.append(f"replies recorded other than once: {wrong}, never: {sorted(missing)}")
        if self.calls_recorded != traffic.calls_logged:
            found.append(f"{self.calls_recorded} call-log calls recorded for {traffic.calls_logged} logged")
        if not self.chain_ok:
            found.append("the event chain is broken")
        bad_voids = {r: n for r, n in self.voided.items() if not r.startswith("interrupted")}
        if bad_voids:
            found.append(f"probes void for another reason than an interrupted send: {bad_voids}")
        return found


async def audit(world: World, store: Store) -> Audit:
    probes = await store.probes_where()
    events = await store.events_since(0, limit=10_000_000)
    attempts: dict[str, list[str]] = {}  # probe -> what each of its send attempts announced (Message-ID, Call-ID)
    for event in events:
        if event.type == "send_started" and event.probe_id is not None:
            key = str(event.data.get("message_id") or event.data.get("call_id"))
            attempts.setdefault(event.probe_id, []).append(normalize_message_id(key) if "@" in key else key)
    emails = Counter(normalize_message_id(message_from_bytes(r.data, policy=default)["Message-ID"])
                     for r in world.smtp.received if any(a.startswith("desk@") for a in r.rcpt_tos))
    calls = sipp_call_ids(world.sipp_log)
    arrived = {probe: sum(emails[k] + calls[k] for k in keys) for probe, keys in attempts.items()}
    by_id = {p.id: p for p in probes}
    replies = Counter(normalize_message_id(e.data.get("message_id", "")) for e in events if e.type == "response"
                      and e.probe_id is not None and by_id[e.probe_id].channel == "email")
    async with store.read() as conn:
        calls_recorded = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
    return Audit(
        statuses=Counter(p.status for p in probes),
        voided=Counter((p.void_reason or "")[:40] for p in probes if p.status == "void"),
        emails_sent_twice=[p for p, n in arrived.items() if n > 1 and by_id[p].channel == "email"],
        calls_placed_twice=[p for p, n in arrived.items() if n > 1 and by_id[p].channel == "phone"],
        sent_but_never_arrived=[p.id for p in probes if p.status in ("sent", "closed") and arrived.get(p.id) != 1],
        replies_recorded=replies,
        calls_recorded=calls_recorded,
        chain_ok=(await store.verify_chain()).ok,
    )


def sipp_call_ids(log_dir: Path) -> Counter[str]:
    """Distinct Call-IDs of the INVITEs sipp received (each call counted once, whatever the retransmissions)."""
    text = "\n".join(p.read_text(errors="replace") for p in sorted(log_dir.glob("*_messages.log")))
    ids = set()
    for block in re.split(r"\n-{10,}", text):
        if re.search(r"^INVITE sip:", block, re.MULTILINE) and "received" in block.split("\n", 3)[1:3].__str__():
            match = re.search(r"^Call-ID:\s*(\S+)", block, re.MULTILINE | re.IGNORECASE)
            if match:
                ids.add(match.group(1))
    return Counter(ids)


def _scenario() -> str:
    return uas(recv_invite(), ring(), pause(300), answer(), recv("ACK"), recv("BYE", timeout_ms=60_000), reply_ok(),
               name="museum")


@contextlib.asynccontextmanager
async def fleet_world(server: DatabaseServer, workdir: Path, *, instances: int = 3,
                      failover_seconds: float = 3.0) -> AsyncIterator[World]:
    name = await server.create_database("qualimon_fleet")
    url = server.url(name)
    try:
        await asyncio.to_thread(migrate.upgrade, url)
        with running_dovecot() as dovecot:
            async def deliver(received: Received) -> None:
                if "jeanne.martin@probes.example.net" in received.rcpt_tos:  # our blind copy
                    await dovecot.aappend(received.data)

            handler = RecordingHandler(on_data=deliver)
            async with smtp_server(handler, authenticator=password_checker("jeanne", SMTP_PASSWORD)) as smtp_port, \
                    run_sipp(_scenario(), workdir / "sipp", transport="tcp", calls=100_000,
                             timeout_s=3600) as sipp:
                master_csv = workdir / "Master.csv"
                master_csv.touch()
                config_path = workdir / "fleet.yaml"
                config_path.write_text(CONFIG.format(
                    database=url, smtp_port=smtp_port, imap_port=dovecot.port, imap_user=dovecot.user,
                    sip_proxy=sipp.proxy, master_csv=master_csv, failover=failover_seconds,
                    sites="\n".join(SITE.format(id=site, number=number) for site, number in SITES)))
                env = {**os.environ, "SMTP_PASSWORD": SMTP_PASSWORD, "IMAP_PASSWORD": dovecot.password}
                config = load_service_config(config_path, environ=env)
                logs = workdir / "logs"
                logs.mkdir(exist_ok=True)
                admin = await asyncpg.connect(server.dsn(name))
                world = World(url, admin, config_path, env, logs, dovecot, handler, workdir / "sipp", master_csv,
                              fleet_tasks(config))
                try:
                    for _ in range(instances):
                        await world.launch()
                    await world.until(world.all_held, "every task to have a holder")
                    yield world
                finally:
                    await world.stop_all()
                    await admin.close()
    finally:
        await server.drop_database(name)


async def settle(world: World, store: Store, traffic: Traffic) -> None:
    """After the faults: until every probe has ended, every reply and every logged call is recorded."""
    async def settled() -> bool:
        probes = await store.probes_where()
        if any(p.status not in ("sent", "closed", "void") for p in probes):
            return False
        if len(world.smtp.received) and traffic.answered != {  # every probe email that reached a desk is answered
                message_from_bytes(r.data, policy=default)["Message-ID"] for r in world.smtp.received
                if any(a.startswith("desk@") for a in r.rcpt_tos)}:
            return False
        found = await audit(world, store)
        return traffic.replies <= set(found.replies_recorded) and found.calls_recorded >= traffic.calls_logged

    await world.until(settled, "every probe, reply and call to be recorded", patience=PATIENCE * 2)
