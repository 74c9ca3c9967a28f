"""The `review` verdict (pure): a held message holds back what it could change until an auditor decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.calendar import calendars_from
from monitor.store.records import EventRecord, ProbeRecord
from monitor.verdicts import MET, MISSED, PENDING, REVIEW, VERDICTS, applicable_commitments, facts_from, judge
from tests.conftest import config_from

CONFIG = config_from("""
calendars: {offices: {holidays: null, working_days: [mon, tue, wed, thu, fri, sat, sun]}}
commitments:
  email.ack:   {channel: email, within: {seconds: 3600}, counts: [auto_reply, human_reply]}
  email.reply: {channel: email, within: {seconds: 7200}}
mailboxes: {mystery: {address: j@probes.example.net, maildir: /tmp/unused}}
sites: [{id: pp, name: Petit Palais, calendar: offices, email: {address: contact.pp@example.org}}]
""")
T0 = datetime(2026, 5, 7, 8, tzinfo=UTC)
PROBE = ProbeRecord("P1", "pp", "email", "standard", "plan", "sent", T0, T0, None, None, None, "QP-7K2M9",
                    "<p1@probes.example.net>", None, 1, {})


def event(seq: int, type_: str, minutes: int, **data: object) -> EventRecord:
    return EventRecord(seq, "P1", T0 + timedelta(minutes=minutes), type_, dict(data))


def held(seq: int, kind: str = "human_reply", minutes: int = 10, **extra: object) -> EventRecord:
    return event(seq, "response", minutes, kind=kind, answered_at=(T0 + timedelta(minutes=minutes)).isoformat(),
                 counts=False, held="sender not authenticated", message=seq, **extra)


def verdicts(events: list[EventRecord], minutes: int = 30) -> dict[str, str]:
    facts = facts_from(PROBE, events)
    calendar = calendars_from(CONFIG)["offices"]
    now = T0 + timedelta(minutes=minutes)
    commitments = applicable_commitments(CONFIG, PROBE)
    return {cid: judge(c, calendar, facts, now, cid).verdict for cid, c in commitments.items()}


def test_review_is_one_of_the_verdict_values() -> None:
    assert VERDICTS == (PENDING, MET, MISSED, "void", REVIEW)


def test_a_held_reply_puts_both_commitments_in_review_and_a_held_auto_reply_only_the_ack() -> None:
    assert verdicts([held(1)]) == {"email.ack": REVIEW, "email.reply": REVIEW}
    assert verdicts([held(1, "auto_reply")]) == {"email.ack": REVIEW, "email.reply": PENDING}


def test_review_outlasts_the_deadline_instead_of_becoming_missed() -> None:
    assert verdicts([held(1)], minutes=600) == {"email.ack": REVIEW, "email.reply": REVIEW}


def test_an_authenticated_answer_before_it_keeps_met() -> None:
    answer = event(1, "response", 5, kind="human_reply", answered_at=(T0 + timedelta(minutes=5)).isoformat())
    assert verdicts([answer, held(2)]) == {"email.ack": MET, "email.reply": MET}


def test_attached_it_counts_as_the_answer_it_is_at_its_arrival() -> None:
    attach = event(2, "attached", 500, message=1, kind="human_reply", counts=True, by="audit", reason="called",
                   answered_at=(T0 + timedelta(minutes=10)).isoformat())
    assert verdicts([held(1), attach], minutes=600) == {"email.ack": MET, "email.reply": MET}


def test_dismissed_the_clock_decides_again() -> None:
    dismiss = event(2, "dismissed", 20, message=1, by="audit", reason="forged")
    assert verdicts([held(1), dismiss]) == {"email.ack": PENDING, "email.reply": PENDING}
    assert verdicts([held(1), dismiss], minutes=600) == {"email.ack": MISSED, "email.reply": MISSED}


def test_a_held_bounce_attached_is_the_services_failure() -> None:
    bounce = held(1, "bounce", failure="undeliverable")
    assert verdicts([bounce]) == {"email.ack": REVIEW, "email.reply": REVIEW}
    attach = event(2, "attached", 20, message=1, kind="bounce", counts=False, failure="undeliverable", by="audit",
                   reason="the address is gone", answered_at=(T0 + timedelta(minutes=10)).isoformat())
    assert verdicts([bounce, attach]) == {"email.ack": MISSED, "email.reply": MISSED}
