"""Every reply shape of `shapes.py`, end to end: qualimon sends through aiosmtpd, the answers land in Dovecot.

One real `Service` (runner, IMAP watcher in IDLE, pipeline, SQLite) with
`token: off` and `trust: {authserv_id: mx.probes.example.net}` sends one
probe per shape, each to its own site; every answer is APPENDed to the
mystery mailbox as the receiving server would deliver it.  Then, for each
shape: its bucket, match method, kind, the probe it was attached to, and the
verdicts that follow; and every message in the mailbox (our blind copies
included) is in exactly one bucket.
"""

from __future__ import annotations

import asyncio
import time
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from monitor.service import Service
from monitor.store.records import NewProbe, StoredMessage
from tests.conftest import config_from
from tests.probes.email.shapes import SHAPES, Sent, Shape, from_site_about_something_else, received, utf8_message_id
from tests.support import databases
from tests.support.dovecot import DovecotServer
from tests.support.integration import free_port
from tests.support.smtp import Received, RecordingHandler, password_checker, smtp_server

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "smtp-secret-41d9e7"
AUDIT_TOKEN = "audit-token-0c5f1e9a7b"
MUSEUMS = ("Maison de Victor Hugo", "Musée Carnavalet", "Petit Palais", "Musée Cernuschi", "Maison de Balzac",
           "Musée Zadkine", "Musée Bourdelle", "Musée de la Vie romantique", "Palais Galliera",
           "Musée Cognacq-Jay", "Musée d'Art moderne", "Maison de la Photographie", "Crypte archéologique",
           "Musée du Général Leclerc")

HEAD = """
database: {database}
http: {{listen: "127.0.0.1:{http_port}"}}
calendars:
  offices: {{holidays: null, working_days: [mon, tue, wed, thu, fri, sat, sun]}}
commitments:
  email.ack:   {{channel: email, within: {{seconds: 3600}}, counts: [auto_reply, human_reply]}}
  email.reply: {{channel: email, within: {{seconds: 7200}}}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none, username: jeanne, password: "${{SMTP_PASSWORD}}"}}
    imap: {{host: 127.0.0.1, port: {imap_port}, tls: none, username: {imap_user},
            password: "${{IMAP_PASSWORD}}", poll_seconds: 1}}
    trust: {{authserv_id: mx.probes.example.net}}
tokens:
  - {{name: audit-2026, role: auditor, token: "${{AUDIT_TOKEN}}"}}
runner: {{timeout_seconds: 10, dispatch_interval_seconds: 0.2, sweep_interval_seconds: 0.5, max_concurrency: 8}}
sites:
"""


def site_id(index: int) -> str:
    return f"site-{index:02d}"


def desk(index: int) -> str:
    return f"accueil.{index:02d}@example.org"


def config_text(count: int, **values: Any) -> str:
    sites = "".join(f"  - {{id: {site_id(i)}, name: \"{MUSEUMS[i % len(MUSEUMS)]} {i}\", calendar: offices, "
                    f"email: {{address: {desk(i)}, per_month: 0}}}}\n" for i in range(count))
    return HEAD.format(**values) + sites


class Mailroom:
    """The running service, what our SMTP server received, and the Dovecot mailbox."""

    def __init__(self, service: Service, handler: RecordingHandler, dovecot: DovecotServer):
        self.service, self.handler, self.dovecot = service, handler, dovecot
        self.before = set(dovecot.uids())  # the module's Dovecot keeps earlier tests' mail; the watcher skips it

    async def uids(self) -> list[int]:
        """The messages delivered since this service started watching."""
        return sorted(set(await asyncio.to_thread(self.dovecot.uids)) - self.before)

    async def send(self, count: int) -> list[tuple[str, Sent]]:
        """One probe to each of the first `count` sites; (probe id, the email as it left) in site order."""
        now = self.service.clock.now()
        probes = [NewProbe(site=site_id(i), channel="email", planned_at=now, purpose="standard") for i in range(count)]
        async with self.service.store.write() as tx:
            await tx.insert_probes(probes, now)
        while [p for p in await self.service.store.probes_where() if p.status == "planned"]:
            await self.service.runner.dispatch_due()
            await self.service.runner.wait_idle()
        sent = {}
        for delivery in self.handler.received:
            message = message_from_bytes(delivery.data, policy=default)
            sent[str(message["To"])] = Sent.of(message)
        return [(p.id, sent[desk(i)]) for i, p in enumerate(probes)]

    async def messages(self) -> list[StoredMessage]:
        return await self.service.store.messages("mystery", limit=10_000)

    async def until_bucketed(self, count: int, within: float = 60.0) -> list[StoredMessage]:
        started = time.monotonic()
        while len(found := await self.messages()) < count:
            assert time.monotonic() - started < within, f"only {len(found)} of {count} messages bucketed"
            await asyncio.sleep(0.1)
        return found

    async def verdicts(self, probe_id: str) -> dict[str, str]:
        return {c: v.verdict for c, v in (await self.service.store.verdicts_for(probe_id)).items()}


async def copies_into(dovecot: DovecotServer):  # type: ignore[no-untyped-def]
    async def deliver(received: Received) -> None:
        if "jeanne.martin@probes.example.net" in received.rcpt_tos:  # our blind copy lands in our mailbox
            await dovecot.aappend(received.data)
    return deliver


@pytest.fixture
async def mailroom(tmp_path: Path, sqlite_template: Path, dovecot: DovecotServer):  # type: ignore[no-untyped-def]
    handler = RecordingHandler(on_data=await copies_into(dovecot))
    async with smtp_server(handler, authenticator=password_checker("jeanne", SMTP_PASSWORD)) as smtp_port:
        text = config_text(len(SHAPES), database=databases.fresh_sqlite(sqlite_template, tmp_path),
                           http_port=free_port(), smtp_port=smtp_port, imap_port=dovecot.port,
                           imap_user=dovecot.user)
        service = Service(config_from(text, SMTP_PASSWORD=SMTP_PASSWORD, IMAP_PASSWORD=dovecot.password,
                                      AUDIT_TOKEN=AUDIT_TOKEN))
        async with service:
            started = time.monotonic()
            while service.health.is_ok("mailbox:mystery") is not True:
                assert time.monotonic() - started < 10, "the IMAP watcher never logged in"
                await asyncio.sleep(0.05)
            yield Mailroom(service, handler, dovecot)


def expected_verdicts(shape: Shape) -> dict[str, str]:
    if shape.bucket == "held":
        return {"email.ack": "review", "email.reply": "review" if shape.kind != "auto_reply" else "pending"}
    if shape.kind == "human_reply":
        return {"email.ack": "met", "email.reply": "met"}
    if shape.kind == "auto_reply":
        return {"email.ack": "met", "email.reply": "pending"}
    if shape.name in ("bounce_quoting_our_message_id", "provider_bounce_authenticated"):
        return {"email.ack": "missed", "email.reply": "missed"}
    return {"email.ack": "pending", "email.reply": "pending"}


def test_the_corpus_has_at_least_forty_new_shapes_with_every_bucket_and_method() -> None:
    assert len(SHAPES) >= 40 and len({s.name for s in SHAPES}) == len(SHAPES)
    assert {s.bucket for s in SHAPES} == {"matched", "held", "unrelated"}
    assert {s.method for s in SHAPES if s.method} == {"message_id", "quoted_text", "correspondent"}


async def test_every_reply_shape_lands_in_its_bucket_with_its_method_end_to_end(mailroom: Mailroom) -> None:
    sent = await mailroom.send(len(SHAPES))
    uids: dict[int, Shape] = {}
    for number, (shape, (_, probe)) in enumerate(zip(SHAPES, sent, strict=True)):
        uids[await mailroom.dovecot.aappend(shape.build(probe, number))] = shape
    in_mailbox = await mailroom.uids()
    assert len(in_mailbox) == len(SHAPES) * 2  # each probe's blind copy, and each answer
    rows = await mailroom.until_bucketed(len(in_mailbox))

    assert sorted(int(row.message.location.rsplit(":", 1)[1]) for row in rows) == sorted(in_mailbox)
    by_uid = {int(row.message.location.rsplit(":", 1)[1]): row for row in rows}
    probe_of = {shape.name: probe_id for shape, (probe_id, _) in zip(SHAPES, sent, strict=True)}
    found = {}
    for uid, shape in uids.items():
        message = by_uid[uid].message
        found[shape.name] = (message.bucket, message.method, message.kind if shape.answers else None,
                             message.reason if shape.bucket == "unrelated" else None,
                             message.probe_id == probe_of[shape.name] if shape.answers else None)
    wanted = {shape.name: (shape.bucket, shape.method, shape.kind if shape.answers else None, shape.reason,
                           True if shape.answers else None) for shape in SHAPES}
    assert found == wanted
    copies = [row for row in rows if row.id not in {by_uid[uid].id for uid in uids}]
    assert {(row.message.bucket, row.message.reason) for row in copies} == {("unrelated", "own_copy")}
    for shape in SHAPES:
        if shape.answers:
            assert await mailroom.verdicts(probe_of[shape.name]) == expected_verdicts(shape), shape.name


def shape(name: str) -> tuple[int, Shape]:
    return next((i, s) for i, s in enumerate(SHAPES) if s.name == name)


async def test_a_utf8_message_id_reply_is_recorded_once_and_counts_even_delivered_twice(mailroom: Mailroom) -> None:
    index, _ = shape("raw_utf8_message_id")
    [(probe_id, sent)] = (await mailroom.send(index + 1))[index:]
    raw = utf8_message_id(sent, 1)
    await mailroom.dovecot.aappend(raw)
    await mailroom.dovecot.aappend(received("mail2.example.org", "192.0.2.26").encode() + raw)  # delivered twice
    rows = await mailroom.until_bucketed(len(await mailroom.uids()))
    answers = [r.message for r in rows if r.message.summary.get("message_id", "").startswith("réponse.1.")]
    # the second copy finds its probe answered and closed: it answers nothing more
    assert sorted((m.bucket, m.reason) for m in answers) == [("matched", "human_reply: no machine marker"),
                                                            ("unrelated", "from_site_unmatched")]
    responses = [e for e in await mailroom.service.store.events_for(probe_id) if e.type == "response"]
    assert len(responses) == 1 and responses[0].data["message_id"] == "réponse.1.été@musée.example.org"
    assert await mailroom.verdicts(probe_id) == {"email.ack": "met", "email.reply": "met"}
    assert (await mailroom.service.store.verify_chain()).ok


async def test_auditors_list_a_message_from_the_site_about_something_else_and_attach_it(mailroom: Mailroom) -> None:
    index, _ = shape("from_site_about_something_else")
    [(probe_id, sent)] = (await mailroom.send(index + 1))[index:]
    await mailroom.dovecot.aappend(from_site_about_something_else(sent, 1))
    await mailroom.until_bucketed(len(await mailroom.uids()))
    base = f"http://127.0.0.1:{mailroom.service.http_port}/api/v1/mailboxes/mystery/messages"
    headers = {"Authorization": f"Bearer {AUDIT_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(base, params={"bucket": "unrelated", "decided": "false"}) as response:
            listed = [m for m in (await response.json())["items"] if m["reason"] == "from_site_unmatched"]
        assert len(listed) == 1 and listed[0]["auth"] == {"result": "pass", "method": "dmarc",
                                                          "domain": "example.org"}
        async with session.post(f"{base}/{listed[0]['id']}/attach",
                                json={"probe": probe_id, "reason": "it answers the probe in other words"}) as response:
            assert response.status == 200, await response.text()
    assert await mailroom.verdicts(probe_id) == {"email.ack": "met", "email.reply": "met"}


async def test_a_forged_bounce_is_held_and_the_real_reply_still_counts(mailroom: Mailroom) -> None:
    index, _ = shape("forged_bounce")
    [(probe_id, sent)] = (await mailroom.send(index + 1))[index:]
    await mailroom.dovecot.aappend(SHAPES[index].build(sent, 1))
    await mailroom.until_bucketed(len(await mailroom.uids()))
    assert await mailroom.verdicts(probe_id) == {"email.ack": "review", "email.reply": "review"}
    assert (await mailroom.service.store.probe(probe_id)).status == "sent"  # not closed as undeliverable
    assert not [e for e in await mailroom.service.store.events_for(probe_id) if e.type in ("failure", "operator_alert")]
    await mailroom.dovecot.aappend(shape("thunderbird_format_flowed_threaded")[1].build(sent, 2))
    await mailroom.until_bucketed(len(await mailroom.uids()))
    assert await mailroom.verdicts(probe_id) == {"email.ack": "met", "email.reply": "met"}
