"""Sending mystery emails through a real SMTP server (aiosmtpd), via the runner."""

from __future__ import annotations

import random
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from monitor.clock import SystemClock
from monitor.store.store import Store
from probes.email import KIND
from probes.email.compose import compose, default_template_dir, load_templates
from probes.email.owncopy import find_in_maildir
from tests.conftest import config_from
from tests.support.probing import run_one
from tests.support.smtp import RecordingHandler, password_checker, smtp_server

SMTP_PASSWORD = "smtp-secret-7f3a9c"

CONFIG = """
calendars:
  offices: {{holidays: {{country: FR}}}}
commitments:
  email.ack: {{channel: email, within: {{working_days: 1}}, counts: [auto_reply, human_reply]}}
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: 127.0.0.1, port: {port}, tls: none{login}}}
    maildir: {maildir}
runner: {{timeout_seconds: 10}}
sites:
  - {{id: maison-victor-hugo, name: Maison de Victor Hugo, calendar: offices,
      email: {{address: contact.mvh@example.org, per_month: 0}}}}
"""



LOGIN = ', username: jeanne, password: "${SMTP_PASSWORD}"'


async def send_one(store: Store, port: int, tmp_path: Path, login: bool = False) -> str:
    text = CONFIG.format(port=port, maildir=tmp_path / "Maildir", login=LOGIN if login else "")
    config = config_from(text, SMTP_PASSWORD=SMTP_PASSWORD)
    return await run_one(store, config, {"email": KIND}, "maison-victor-hugo", "email")


async def test_a_probe_reaches_the_museum_and_a_blind_copy_reaches_us(tmp_path, sqlite_store) -> None:
    handler = RecordingHandler()
    async with smtp_server(handler, authenticator=password_checker("jeanne", SMTP_PASSWORD)) as port:
        probe_id = await send_one(sqlite_store, port, tmp_path, login=True)
    probe = await sqlite_store.probe(probe_id)
    [received] = handler.received
    assert probe.status == "sent" and probe.sent_at is not None
    assert received.mail_from == "jeanne.martin@probes.example.net"
    assert received.rcpt_tos == ["contact.mvh@example.org", "jeanne.martin@probes.example.net"]
    message = message_from_bytes(received.data, policy=default)
    assert message["Message-ID"] == probe.message_id and probe.message_id.endswith("@probes.example.net>")
    assert probe.token not in received.data.decode("utf-8", "replace")  # token: off by default
    assert not {"Auto-Submitted", "Precedence", "Bcc", "List-Unsubscribe", "List-Id", "X-Campaign",
                "X-Mailgun-Tag", "Feedback-ID"} & set(message.keys())
    assert message["User-Agent"].startswith("Mozilla/5.0") and message["Content-Language"] == "fr"
    assert message["From"] == "Jeanne Martin <jeanne.martin@probes.example.net>"


async def test_the_token_and_message_id_are_recorded_before_data(tmp_path, sqlite_store) -> None:
    seen_at_data: list[tuple[str, str | None]] = []

    async def look_in_the_store(_received) -> None:  # runs while our server holds the DATA reply
        [probe] = await sqlite_store.probes_where()
        seen_at_data.append((probe.status, probe.message_id))

    async with smtp_server(RecordingHandler(on_data=look_in_the_store)) as port:
        probe_id = await send_one(sqlite_store, port, tmp_path)
    probe = await sqlite_store.probe(probe_id)
    assert seen_at_data == [("sending", probe.message_id)]
    types = [e.type for e in await sqlite_store.events_for(probe_id)]
    assert types.index("send_started") < types.index("sent")


async def test_the_message_sent_is_kept_as_evidence_without_our_password(tmp_path, sqlite_store) -> None:
    async with smtp_server(RecordingHandler(), authenticator=password_checker("jeanne", SMTP_PASSWORD)) as port:
        probe_id = await send_one(sqlite_store, port, tmp_path, login=True)
    [evidence] = await sqlite_store.evidence_for(probe_id)
    raw = await sqlite_store.evidence_data(evidence.id)
    assert evidence.name == "sent.eml" and b"Subject:" in raw
    assert SMTP_PASSWORD.encode() not in raw
    events = await sqlite_store.events_for(probe_id)
    assert SMTP_PASSWORD not in repr(events)


async def test_our_server_refusing_permanently_voids_the_probe(tmp_path, sqlite_store) -> None:
    handler = RecordingHandler(refuse_mail="554 5.7.1 Relay access denied")
    async with smtp_server(handler) as port:
        probe_id = await send_one(sqlite_store, port, tmp_path)
    probe = await sqlite_store.probe(probe_id)
    assert probe.status == "void" and "554 5.7.1 Relay access denied" in probe.void_reason
    assert {v.verdict for v in (await sqlite_store.verdicts_for(probe_id)).values()} == {"void"}


async def test_a_wrong_password_voids_the_probe_and_names_the_cause(tmp_path, sqlite_store) -> None:
    async with smtp_server(RecordingHandler(), authenticator=password_checker("jeanne", "other")) as port:
        probe_id = await send_one(sqlite_store, port, tmp_path, login=True)
    probe = await sqlite_store.probe(probe_id)
    assert probe.status == "void" and probe.void_reason.startswith("smtp_auth_refused")
    assert SMTP_PASSWORD not in probe.void_reason


async def test_a_busy_server_puts_the_probe_back_for_a_later_try(tmp_path, sqlite_store) -> None:
    before = SystemClock().now()
    async with smtp_server(RecordingHandler(refuse_data="421 4.3.2 Service shutting down")) as port:
        probe_id = await send_one(sqlite_store, port, tmp_path)
    probe = await sqlite_store.probe(probe_id)
    assert probe.status == "planned" and (probe.planned_at - before).total_seconds() >= 59
    failed = [e for e in await sqlite_store.events_for(probe_id) if e.type == "send_failed"]
    assert failed and "421" in failed[0].data["reason"]


async def test_a_server_that_is_not_listening_is_our_failure_not_the_museums(tmp_path, sqlite_store) -> None:
    from tests.support.integration import free_port

    probe_id = await send_one(sqlite_store, free_port(), tmp_path)
    probe = await sqlite_store.probe(probe_id)
    assert probe.status == "planned"  # retried later; never missed
    assert await sqlite_store.verdicts_for(probe_id) == {}


def test_every_template_composes_a_plausible_french_email() -> None:
    config = config_from(CONFIG.format(port=25, maildir="/tmp/unused", login=""))
    site, mailbox = config.sites[0], config.mailboxes["mystery"]
    rng = random.Random(4)
    bodies = set()
    for template in load_templates(default_template_dir()):
        composed = compose(template, site=site, mailbox=mailbox, token="QP-7K2M9", message_id="<a@b.example.net>",
                           now=SystemClock().now(), rng=rng)
        body = composed.message.get_content()
        assert "Maison de Victor Hugo" in body + composed.subject and "Jeanne Martin" in body
        assert "{" not in body and "{" not in composed.subject
        assert "QP-7K2M9" not in body + composed.subject  # token: off
        bodies.add(body)
    assert len(bodies) >= 20


def test_the_blind_copy_is_found_by_message_id(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "cur").mkdir()
    (tmp_path / "cur" / "1.eml").write_bytes(b"Message-ID: <other@example.net>\r\n\r\nx")
    (tmp_path / "new" / "2.eml").write_bytes(b"Subject: hi\r\nMessage-ID: <abc@probes.example.net>\r\n\r\nx")
    assert find_in_maildir(tmp_path, "<abc@probes.example.net>") is not None
    assert find_in_maildir(tmp_path, "<missing@probes.example.net>") is None


@pytest.mark.parametrize("mode", ["subject", "body"])
def test_a_mailbox_can_still_show_the_token_in_the_subject_or_the_body(mode: str) -> None:
    config = config_from(CONFIG.format(port=25, maildir="/tmp/unused", login=""))
    mailbox = config.mailboxes["mystery"].model_copy(update={"token": mode})
    [template] = load_templates(default_template_dir())[:1]
    composed = compose(template, site=config.sites[0], mailbox=mailbox, token="QP-7K2M9",
                       message_id="<a@b.example.net>", now=SystemClock().now(), rng=random.Random(1))
    assert ("(Réf. QP-7K2M9)" in composed.subject) == (mode == "subject")
    assert ("Réf. QP-7K2M9" in composed.message.get_content()) == (mode == "body")
