"""A hand-built history for the 14 Paris museums, written through the real runner.

Probes are sent by fake kinds (no network) and answered with
`Runner.record_response`, so events, evidence and verdicts are exactly what
production writes.  The mix covers every verdict: replies in time, an
auto-reply only, no reply at all, a late reply, calls answered in 12 s and
in 40 s, a void probe (our own crash), a site with enough calls to be
compliant and one with enough slow calls to be non-compliant.  One museum
answers with a hostile subject and sender name, and hostile evidence bytes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from monitor.clock import FakeClock
from monitor.config import Config
from monitor.health import Health
from monitor.kinds import ProbeKind, ProbeOutcome, Response
from monitor.runner import Runner
from monitor.store.records import EvidenceItem, NewProbe
from monitor.store.store import Store
from tests.support import databases

# Tuesday 7 July 2026, 10:30 in Paris: museums open, inside 2026-Q3.
T0 = datetime(2026, 7, 7, 8, 30, tzinfo=UTC)
HOSTILE_SITE = "maison-victor-hugo"
HOSTILE_SUBJECT = "Re: Horaires <script>document.title='pwned'</script>"
HOSTILE_SENDER = "<img src=x onerror=\"document.title='pwned-img'\">"
HOSTILE_EVIDENCE = (b"From: accueil@example.org\r\nSubject: Re: Horaires\r\nContent-Type: text/html\r\n\r\n"
                    b"<html><body><script>document.title='pwned-evidence'</script>Bonjour</body></html>\r\n")
COMPLIANT_SITE, SLOW_SITE, VOID_SITE = "petit-palais", "musee-zadkine", "musee-cernuschi"


class EmailKind:
    """Sends nothing; says the message left, as the email probe does after SMTP DATA."""

    def __init__(self, clock: FakeClock, crash_sites: set[str]):
        self.clock, self.crash_sites = clock, crash_sites

    async def run(self, probe, ctx) -> ProbeOutcome:
        await ctx.mark_sending(token=f"QP-{probe.id[-6:]}", message_id=f"<{probe.id}@probes.example.net>")
        if probe.site in self.crash_sites:
            raise ConnectionResetError("our relay dropped the connection")
        return ProbeOutcome(sent_at=self.clock.now(), details={"subject": "Horaires d'ouverture"})

    async def reconcile(self, probe, ctx):
        return None

    def kind(self) -> ProbeKind:
        return ProbeKind("email", self.run, self.reconcile)


class PhoneKind:
    """A call answered after `rings_seconds[site]` (12 s by default: met; 40 s: missed, late)."""

    def __init__(self, clock: FakeClock, ring_seconds: dict[str, float]):
        self.clock, self.ring_seconds = clock, ring_seconds

    async def run(self, probe, ctx) -> ProbeOutcome:
        await ctx.mark_sending()
        now = self.clock.now()
        ring = self.ring_seconds.get(probe.site, 12.0)
        return ProbeOutcome(sent_at=now, finished=True, timer_started_at=now,
                            responses=(Response("answered", now + timedelta(seconds=ring)),))

    async def reconcile(self, probe, ctx):
        return None

    def kind(self) -> ProbeKind:
        return ProbeKind("phone", self.run, self.reconcile)


@dataclass(frozen=True)
class Dataset:
    clock: FakeClock
    runner: Runner
    email_probes: dict[str, str]      # site -> probe id
    hostile_probe: str


async def build_dataset(store: Store, config: Config) -> Dataset:
    clock = FakeClock(T0)
    sites = [s.id for s in config.sites]
    ring = {s: 40.0 for i, s in enumerate(sites) if i % 3 == 0}
    ring[COMPLIANT_SITE], ring[SLOW_SITE] = 10.0, 45.0
    runner = Runner(store, config, {"email": EmailKind(clock, {VOID_SITE}).kind(),
                                    "phone": PhoneKind(clock, ring).kind()}, clock)
    emails = await _plan(store, clock, [(s, "email") for s in sites if s != VOID_SITE])
    await _plan(store, clock, [(VOID_SITE, "email")])
    calls = [(s, "phone") for s in sites] + [(s, "phone") for s in (COMPLIANT_SITE, SLOW_SITE) for _ in range(11)]
    await _plan(store, clock, calls)
    for _ in range(13):  # one call per site at a time: dispatch until every call went out
        await runner.dispatch_due()
        await runner.wait_idle()
    hostile = await _answer_emails(runner, clock, emails)
    return Dataset(clock, runner, emails, hostile)


async def _plan(store: Store, clock: FakeClock, wanted: list[tuple[str, str]]) -> dict[str, str]:
    probes = [NewProbe(site=site, channel=channel, planned_at=clock.now(),
                       purpose="standard" if channel == "email" else "open") for site, channel in wanted]
    async with store.write() as tx:
        await tx.insert_probes(probes, clock.now())
    return {p.site: p.id for p in probes}


async def _answer_emails(runner: Runner, clock: FakeClock, emails: dict[str, str]) -> str:
    """Replies by pattern of the site's rank, recorded in time order; returns the hostile probe."""
    replies: list[tuple[datetime, str, str, str, str, bytes | None]] = []
    for rank, (site, probe_id) in enumerate(sorted(emails.items())):
        pattern = "hostile" if site == HOSTILE_SITE else ("both", "human", "silent", "auto")[rank % 4]
        if pattern in ("both", "auto"):
            replies.append((T0 + timedelta(minutes=5), probe_id, "auto_reply", "Réponse automatique : Horaires",
                            "Accueil du musée", None))
        if pattern in ("both", "human"):
            replies.append((T0 + timedelta(hours=3), probe_id, "human_reply", "Re: Horaires d'ouverture",
                            "Claire Dupont", None))
        if pattern == "hostile":  # an auto-reply only: email.ack met, email.reply missed, both show it
            replies.append((T0 + timedelta(minutes=2), probe_id, "auto_reply", HOSTILE_SUBJECT, HOSTILE_SENDER,
                            HOSTILE_EVIDENCE))
    for at, probe_id, kind, subject, sender, raw in sorted(replies, key=lambda r: r[0]):
        await _reply(runner, clock, probe_id, kind, at, subject, sender, raw)
    clock.set(T0 + timedelta(days=10))
    await runner.sweep()
    late = next(p for rank, (s, p) in enumerate(sorted(emails.items())) if rank % 4 == 2 and s != HOSTILE_SITE)
    await _reply(runner, clock, late, "human_reply", T0 + timedelta(days=10, hours=1), "Re: Horaires (désolés)",
                 "Paul Martin")
    return emails[HOSTILE_SITE]


async def _reply(runner: Runner, clock: FakeClock, probe_id: str, kind: str, at: datetime, subject: str,
                 sender: str, evidence: bytes | None = None) -> None:
    clock.set(at)
    raw = evidence or f"From: {sender} <accueil@example.org>\r\nSubject: {subject}\r\n\r\nBonjour\r\n".encode()
    details = {"subject": subject, "from": "accueil@example.org", "from_name": sender,
               "message_id": f"<{probe_id}.{kind}@example.org>"}
    await runner.record_response(probe_id, Response(kind, at, details),
                                 (EvidenceItem(f"{kind}-1.eml", "message/rfc822", raw),))


# ---------------------------------------------------------------- shared, built once per test module


@dataclass(frozen=True)
class HistoryFile:
    """The dataset in a SQLite file, for tests that only read it (built once, opened by each test)."""

    url: str
    now: datetime
    hostile_probe: str


def sqlite_history(template: Path, directory: Path, config: Config) -> HistoryFile:
    url = databases.fresh_sqlite(template, directory)

    async def build() -> Dataset:
        store = Store.open(url)
        try:
            return await build_dataset(store, config)
        finally:
            await store.close()

    dataset = asyncio.run(build())
    return HistoryFile(url, dataset.clock.now(), dataset.hostile_probe)


def service_for(config: Config, store: Store | None, now: datetime, snapshot: object = None) -> SimpleNamespace:
    """What `add_status_page` reads from the running service, without starting one."""
    return SimpleNamespace(config=config, store=store, clock=FakeClock(now), health=Health(), snapshot=snapshot,
                           runner=None)


def many_sites(config: Config, count: int) -> Config:
    """The config with `count` copies of its first site (building models directly: parsing 10,000 is slow)."""
    first = config.sites[0]
    sites = tuple(first.model_copy(update={"id": f"site-{i:05d}", "name": f"Site {i}"}) for i in range(count))
    return config.model_copy(update={"sites": sites})
