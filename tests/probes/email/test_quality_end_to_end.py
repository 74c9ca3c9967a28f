"""Reply quality end to end: every corpus answer goes through SMTP, Dovecot, the watcher and the pipeline.

A real `Service` sends each probe with the case's template (through the real
email kind), the desk's answer is built from the message that really left
(quoting it the way the case's mail client does) and appended to Dovecot; the
IMAP watcher reads it, the pipeline grades it, and the runner records the
`assessment` event with the `response` and decides `email.quality`.  Then an
auditor's grade changes the verdict through an event, and the chain verifies.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from monitor.service import Service
from monitor.store.records import NewProbe
from probes.email.compose import default_template_dir
from tests.conftest import config_from
from tests.probes.email.replies import CASES, DESK, ENGLISH_TEMPLATES, Case, build, template
from tests.support import databases
from tests.support.dovecot import DovecotServer
from tests.support.integration import free_port
from tests.support.smtp import Received, RecordingHandler, password_checker, smtp_server

pytestmark = pytest.mark.integration

SMTP_PASSWORD = "smtp-secret-5e0b21"
REQUIRED = ("signed", "contact", "answers_question", "not_holding", "language")  # the email channel's defaults

CONFIG = """
database: {database}
http: {{listen: "127.0.0.1:{http_port}"}}
calendars:
  offices: {{holidays: null, working_days: [mon, tue, wed, thu, fri, sat, sun]}}
commitments:
  email.reply:   {{channel: email, within: {{seconds: 900}}}}
  email.quality: {{channel: email, kind: quality, target: 0.8}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none, username: jeanne, password: "${{SMTP_PASSWORD}}"}}
    imap: {{host: 127.0.0.1, port: {imap_port}, tls: none, username: {imap_user},
            password: "${{IMAP_PASSWORD}}", poll_seconds: 1}}
runner: {{timeout_seconds: 10, dispatch_interval_seconds: 0.2, sweep_interval_seconds: 0.5}}
templates: {templates}
tokens:
  - {{name: alice, role: auditor, token: "alice-token-0123456789"}}
sites:
  - {{id: maison-victor-hugo, name: Maison de Victor Hugo, calendar: offices,
      email: {{address: {desk}, per_month: 0}}}}
"""


class Desk:
    """The running service and the mailbox the desk's answers land in."""

    def __init__(self, service: Service, handler: RecordingHandler, dovecot: DovecotServer):
        self.service, self.handler, self.dovecot = service, handler, dovecot

    async def ask(self, case: Case) -> tuple[str, EmailMessage]:
        """Send one probe with the case's template, through the real email kind."""
        self.service.runner.shared["email_templates"] = [template(case.template)]
        now = self.service.clock.now()
        probe = NewProbe(site="maison-victor-hugo", channel="email", planned_at=now, purpose="standard")
        async with self.service.store.write() as tx:
            await tx.insert_probes([probe], now)
        await self.service.runner.dispatch_due()
        await self.service.runner.wait_idle()
        sent = [r for r in self.handler.received if DESK in r.rcpt_tos]
        return probe.id, message_from_bytes(sent[-1].data, policy=default)

    async def assessment(self, probe_id: str, within: float = 15.0) -> dict[str, Any]:
        started = time.monotonic()
        while time.monotonic() - started < within:
            found = [e.data for e in await self.service.store.events_for(probe_id) if e.type == "assessment"]
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no assessment recorded for {probe_id}")

    async def quality(self, probe_id: str) -> tuple[str, str | None]:
        verdict = (await self.service.store.verdicts_for(probe_id))["email.quality"]
        return verdict.verdict, verdict.reason


@pytest.fixture
async def desk(tmp_path: Path, sqlite_template: Path, dovecot: DovecotServer) -> AsyncIterator[Desk]:
    async def deliver(received: Received) -> None:
        if "jeanne.martin@probes.example.net" in received.rcpt_tos:
            await dovecot.aappend(received.data)

    templates = tmp_path / "templates"  # the shipped ones and the English one of the corpus
    templates.mkdir()
    for source in (*default_template_dir().glob("*.yaml"), *ENGLISH_TEMPLATES.glob("*.yaml")):
        shutil.copy(source, templates / source.name)
    handler = RecordingHandler(on_data=deliver)
    async with smtp_server(handler, authenticator=password_checker("jeanne", SMTP_PASSWORD)) as smtp_port:
        config = config_from(CONFIG.format(
            database=databases.fresh_sqlite(sqlite_template, tmp_path), http_port=free_port(), smtp_port=smtp_port,
            imap_port=dovecot.port, imap_user=dovecot.user, desk=DESK, templates=templates),
            SMTP_PASSWORD=SMTP_PASSWORD, IMAP_PASSWORD=dovecot.password)
        async with Service(config) as service:
            started = time.monotonic()
            while service.health.is_ok("mailbox:mystery") is not True:
                assert time.monotonic() - started < 10, "the IMAP watcher never logged in"
                await asyncio.sleep(0.05)
            yield Desk(service, handler, dovecot)


def expected_verdict(case: Case) -> str:
    required = {name: case.expected[name] for name in REQUIRED}
    if any(not met and name not in case.uncertain for name, met in required.items()):
        return "missed"
    if any(name in case.uncertain for name in REQUIRED):
        return "review"
    return "met"


async def test_every_corpus_answer_is_graded_through_the_real_pipeline(desk: Desk) -> None:
    wrong = []
    for case in CASES:
        probe_id, sent = await desk.ask(case)
        assert sent["Subject"] and sent.get_content().strip()
        await desk.dovecot.aappend(build(case, sent))
        assessment = await desk.assessment(probe_id)
        got = {name: c["met"] for name, c in assessment["criteria"].items()}
        unsure = {name for name, c in assessment["criteria"].items() if not c["certain"]}
        verdict = (await desk.quality(probe_id))[0]
        if (got, unsure, verdict) != (case.expected, set(case.uncertain), expected_verdict(case)):
            wrong.append((case.id, got, unsure, verdict))
        for name, criterion in assessment["criteria"].items():
            span = criterion["span"]
            if criterion["met"]:
                assert span and span["text"] in assessment["answer"][span["start"]:span["end"]], (case.id, name)
    assert not wrong, wrong
    report = await desk.service.store.verify_chain()
    assert report.ok and report.events > len(CASES) * 5


async def test_an_auditors_grade_changes_the_verdict_through_an_event(desk: Desk) -> None:
    case = next(c for c in CASES if c.id == "name-without-function")  # signed fails: missed
    probe_id, sent = await desk.ask(case)
    await desk.dovecot.aappend(build(case, sent))
    await desk.assessment(probe_id)
    assert await desk.quality(probe_id) == ("missed", "quality not met: signed, contact")

    await desk.service.runner.grade(probe_id, by="alice", decisions={"signed": True, "contact": True},
                                    reason="the museum's phone number is in its footer image")

    assert await desk.quality(probe_id) == ("met", None)
    [grade] = [e for e in await desk.service.store.events_for(probe_id) if e.type == "grade"]
    assert grade.data["by"] == "alice" and grade.data["decisions"] == {"signed": "met", "contact": "met"}
    assert (await desk.service.store.verify_chain()).ok
