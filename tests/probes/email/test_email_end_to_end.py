"""Mystery emails end to end: qualimon sends through aiosmtpd, desks answer into Dovecot, verdicts follow.

Each test runs a real `Service` (runner, IMAP watcher in IDLE, pipeline) against
a throw-away Dovecot and an aiosmtpd server standing for our provider: our
blind copy and every simulated answer are delivered into the Dovecot mailbox
with IMAP APPEND, as a mail server would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiohttp
import pytest

from monitor.config import Config
from monitor.demo.desks import auto_ack, bounce, reply
from monitor.service import Service
from monitor.store.records import NewProbe
from tests.conftest import config_from
from tests.support import databases
from tests.support.dovecot import DovecotServer
from tests.support.integration import free_port
from tests.support.smtp import Received, RecordingHandler, password_checker, smtp_server

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "smtp-secret-41d9e7"
DESK = "contact.mvh@example.org"

CONFIG = """
database: {database}
http: {{listen: "127.0.0.1:{http_port}"}}
calendars:
  offices: {{holidays: null, working_days: [mon, tue, wed, thu, fri, sat, sun]}}
commitments:
  email.ack:   {{channel: email, within: {{seconds: 600}}, counts: [auto_reply, human_reply]}}
  email.reply: {{channel: email, within: {{seconds: 900}}}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none, username: jeanne, password: "${{SMTP_PASSWORD}}"}}
    imap: {{host: 127.0.0.1, port: {imap_port}, tls: none, username: {imap_user},
            password: "${{IMAP_PASSWORD}}", poll_seconds: 1}}
runner: {{timeout_seconds: 10, dispatch_interval_seconds: 0.2, sweep_interval_seconds: 0.5}}
sites:
  - {{id: maison-victor-hugo, name: Maison de Victor Hugo, calendar: offices,
      email: {{address: {desk}, per_month: 0}}}}
"""


class World:
    """One running qualimon, its SMTP provider and the mailbox, with helpers to play the desk."""

    def __init__(self, service: Service, handler: RecordingHandler, dovecot: DovecotServer):
        self.service, self.handler, self.dovecot = service, handler, dovecot

    async def send_probe(self) -> tuple[str, EmailMessage]:
        now = self.service.clock.now()
        probe = NewProbe(site="maison-victor-hugo", channel="email", planned_at=now, purpose="standard")
        async with self.service.store.write() as tx:
            await tx.insert_probes([probe], now)
        await self.service.runner.dispatch_due()
        await self.service.runner.wait_idle()
        sent = [r for r in self.handler.received if DESK in r.rcpt_tos]
        assert sent, "the probe did not reach our SMTP server"
        return probe.id, message_from_bytes(sent[-1].data, policy=default)

    async def desk_writes(self, message: EmailMessage | bytes) -> None:
        raw = message if isinstance(message, bytes) else message.as_bytes()
        await self.dovecot.aappend(raw)

    async def verdicts(self, probe_id: str) -> dict[str, tuple[str, str | None]]:
        found = await self.service.store.verdicts_for(probe_id)
        return {c: (v.verdict, v.reason) for c, v in found.items()}

    async def responses(self, probe_id: str) -> list[dict]:
        return [e.data for e in await self.service.store.events_for(probe_id) if e.type == "response"]

    async def until_responses(self, probe_id: str, count: int, timeout: float = 10.0) -> list[dict]:
        started = time.monotonic()
        while len(found := await self.responses(probe_id)) < count:
            assert time.monotonic() - started < timeout, f"only {len(found)} responses recorded"
            await asyncio.sleep(0.05)
        return found

    async def until(self, probe_id: str, wanted: dict[str, tuple[str, str | None]], timeout: float = 5.0) -> float:
        """Wait (bounded) for the verdicts; returns how long it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if await self.verdicts(probe_id) == wanted:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        assert await self.verdicts(probe_id) == wanted
        return timeout


async def start_world(tmp_path: Path, sqlite_template: Path, dovecot: DovecotServer,
                      handler: RecordingHandler, smtp_port: int) -> tuple[Service, Config]:
    config = config_from(CONFIG.format(
        database=databases.fresh_sqlite(sqlite_template, tmp_path), http_port=free_port(), smtp_port=smtp_port,
        imap_port=dovecot.port, imap_user=dovecot.user, desk=DESK),
        SMTP_PASSWORD=SMTP_PASSWORD, IMAP_PASSWORD=dovecot.password)
    return Service(config), config


async def deliver_copies_to(dovecot: DovecotServer) -> Callable[[Received], Awaitable[None]]:
    async def deliver(received: Received) -> None:
        if "jeanne.martin@probes.example.net" in received.rcpt_tos:  # our blind copy lands in our mailbox
            await dovecot.aappend(received.data)
    return deliver


@pytest.fixture
async def world(tmp_path: Path, sqlite_template: Path, dovecot: DovecotServer):  # type: ignore[no-untyped-def]
    handler = RecordingHandler(on_data=await deliver_copies_to(dovecot))
    async with smtp_server(handler, authenticator=password_checker("jeanne", SMTP_PASSWORD)) as smtp_port:
        service, _ = await start_world(tmp_path, sqlite_template, dovecot, handler, smtp_port)
        async with service:
            await _mailbox_up(service)
            yield World(service, handler, dovecot)


async def _mailbox_up(service: Service, timeout: float = 10.0) -> None:
    started = time.monotonic()
    while service.health.is_ok("mailbox:mystery") is not True:
        assert time.monotonic() - started < timeout, "the IMAP watcher never logged in"
        await asyncio.sleep(0.05)


BOTH_MET = {"email.ack": ("met", None), "email.reply": ("met", None)}
PENDING = {"email.ack": ("pending", None), "email.reply": ("pending", None)}


def colleague_reply(probe: EmailMessage) -> EmailMessage:
    """Forwarded internally, answered by someone else from another address with a new subject, quoting our text."""
    answer = EmailMessage()
    answer["From"] = "Service des publics <publics.mvh@example.org>"
    answer["To"] = probe["From"]
    answer["Subject"] = "Votre demande"
    answer["Date"] = format_datetime(datetime.now(timezone.utc))
    answer["Message-ID"] = make_msgid(domain="example.org")
    quoted = "\n".join(f"> {line}" for line in probe.get_content().splitlines())
    answer.set_content(f"Bonjour,\n\nMa collègue m'a transmis votre message.\n\n{quoted}\n")
    return answer


def delayed_dsn(probe: EmailMessage) -> bytes:
    text = bounce(DESK, probe).as_bytes()
    return (text.replace(b"Status: 5.1.1", b"Status: 4.4.7").replace(b"Action: failed", b"Action: delayed")
            .replace(b"550 5.1.1 User unknown", b"451 4.4.7 Delivery delayed")
            .replace(b"Undelivered Mail Returned to Sender", b"Delayed Mail (still being retried)"))


def newsletter() -> bytes:
    message = EmailMessage()
    message["From"] = "Les musées de Paris <newsletter@example.com>"
    message["To"] = "jeanne.martin@probes.example.net"
    message["Subject"] = "Les expositions de la semaine"
    message["List-Unsubscribe"] = "<mailto:unsubscribe@example.com>"
    message["Message-ID"] = make_msgid(domain="example.com")
    message.set_content("Cette semaine au musée…")
    return message.as_bytes()


async def test_a_thunderbird_style_reply_meets_both_commitments(world: World) -> None:
    probe_id, sent = await world.send_probe()
    assert await world.verdicts(probe_id) == PENDING
    await world.desk_writes(reply(DESK, sent, "Bonjour, nous sommes ouverts de 10 h à 18 h."))
    seconds = await world.until(probe_id, BOTH_MET)
    assert seconds < 2.0  # IDLE: recorded within 2 s of the APPEND
    [response] = [e for e in await world.service.store.events_for(probe_id) if e.type == "response"]
    assert response.data["method"] == "message_id" and response.data["kind"] == "human_reply"


async def test_an_outlook_reply_without_in_reply_to_matches_by_the_text_it_quotes(world: World) -> None:
    probe_id, sent = await world.send_probe()
    await world.desk_writes(reply(DESK, sent, "Bonjour, c'est noté.", outlook=True))
    await world.until(probe_id, BOTH_MET)
    methods = [e.data["method"] for e in await world.service.store.events_for(probe_id) if e.type == "response"]
    assert methods == ["quoted_text"]


async def test_a_colleague_answering_from_another_address_still_matches(world: World) -> None:
    probe_id, sent = await world.send_probe()
    await world.desk_writes(colleague_reply(sent))
    await world.until(probe_id, BOTH_MET)


async def test_an_auto_acknowledgement_then_a_human_reply(world: World) -> None:
    probe_id, sent = await world.send_probe()
    await world.desk_writes(auto_ack(DESK, sent))
    await world.until(probe_id, {"email.ack": ("met", None), "email.reply": ("pending", None)})
    await world.desk_writes(reply(DESK, sent, "Bonjour, voici la réponse."))
    await world.until(probe_id, BOTH_MET)


async def test_a_permanent_bounce_is_the_museums_failure_and_alerts_the_operator(world: World) -> None:
    probe_id, sent = await world.send_probe()
    await world.desk_writes(bounce(DESK, sent))
    await world.until(probe_id, {"email.ack": ("missed", "undeliverable"),
                                 "email.reply": ("missed", "undeliverable")})
    alerts = [e for e in await world.service.store.events_for(probe_id) if e.type == "operator_alert"]
    assert alerts and DESK in alerts[0].data["message"]


async def test_a_transient_bounce_keeps_the_clock_running_until_the_reply(world: World) -> None:
    probe_id, sent = await world.send_probe()
    await world.desk_writes(delayed_dsn(sent))
    [dsn] = await world.until_responses(probe_id, 1)
    assert dsn["bounce"] == "transient"
    assert await world.verdicts(probe_id) == PENDING
    await world.desk_writes(reply(DESK, sent, "Bonjour, désolés du délai."))
    await world.until(probe_id, BOTH_MET)


async def test_an_unrelated_newsletter_matches_nothing(world: World) -> None:
    probe_id, sent = await world.send_probe()
    await world.desk_writes(newsletter())
    await world.desk_writes(reply(DESK, sent, "Bonjour."))  # read after the newsletter (UID order)
    await world.until(probe_id, BOTH_MET)
    assert [r["from"] for r in await world.responses(probe_id)] == [DESK]


async def test_our_own_blind_copy_is_never_taken_for_an_answer(world: World) -> None:
    probe_id, sent = await world.send_probe()  # its blind copy is already in the mailbox
    await world.desk_writes(reply(DESK, sent, "Bonjour."))
    await world.until(probe_id, BOTH_MET)
    assert [r["from"] for r in await world.responses(probe_id)] == [DESK]


async def test_healthz_is_degraded_while_dovecot_is_down_and_nothing_is_missed(world: World) -> None:
    probe_id, sent = await world.send_probe()
    url = f"http://127.0.0.1:{world.service.http_port}/healthz"
    await asyncio.to_thread(world.dovecot.stop)
    try:
        await _until_health(url, "degraded")
        world.dovecot.deliver_file(reply(DESK, sent, "Réponse arrivée pendant la panne.").as_bytes())
    finally:
        await asyncio.to_thread(world.dovecot.start)
    await world.until(probe_id, BOTH_MET, timeout=90)  # the watcher reconnects with backoff
    await _until_health(url, "ok")


async def _until_health(url: str, status: str, timeout: float = 90.0) -> None:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as response:
                body = await response.json()
            if body["status"] == status:
                return
            assert time.monotonic() - started < timeout, f"/healthz stayed {body['status']}: {body['checks']}"
            await asyncio.sleep(0.2)


async def test_no_secret_appears_in_logs_events_or_evidence(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    probe_id, sent = await world.send_probe()
    await world.desk_writes(reply(DESK, sent, "Bonjour."))
    await world.until(probe_id, BOTH_MET)
    secrets = [SMTP_PASSWORD, world.dovecot.password]
    events = await world.service.store.events_since(0, limit=10_000)
    evidence = [await world.service.store.evidence_data(e.id)
                for e in await world.service.store.evidence_for(probe_id)]
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in repr(events)
        assert all(secret.encode() not in item for item in evidence)


async def test_a_long_answer_is_kept_whole_as_evidence(world: World) -> None:
    probe_id, sent = await world.send_probe()
    long_reply = reply(DESK, sent, "Bonjour,\n\n" + "Voici le programme détaillé de la visite.\n" * 1500)
    raw = long_reply.as_bytes()
    assert len(raw) > 40_000  # far past the prefix the watcher reads
    await world.desk_writes(long_reply)
    await world.until(probe_id, BOTH_MET)
    evidence = [e for e in await world.service.store.evidence_for(probe_id) if e.name.startswith("human_reply")]
    stored = await world.service.store.evidence_data(evidence[0].id)
    assert stored.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
