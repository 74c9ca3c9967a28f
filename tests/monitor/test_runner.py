"""The runner around every probe kind: outcomes, void on our own failures, verdicts, sweeping, recovery."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from monitor.clock import FakeClock
from monitor.config import Config
from monitor.kinds import NOT_SENT, ProbeKind, ProbeOutcome, ProbeVoid, Response
from monitor.runner import Runner
from monitor.store.records import CLOSED, PLANNED, SENDING, SENT, VOID
from monitor.store.store import Store
from tests.conftest import config_from
from tests.support.probing import dispatch, plan

CONFIG = """
calendars:
  always:
    working_days: [mon, tue, wed, thu, fri, sat, sun]
    holidays: null
    opening_hours: {daily: ["00:00-24:00"]}
commitments:
  email.ack:   {channel: email, within: {seconds: 60}, counts: [auto_reply, human_reply]}
  email.reply: {channel: email, within: {seconds: 300}}
  phone.answer: {channel: phone, within: {rings: 5}, during: open}
mailboxes:
  mystery: {address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: /tmp/unused}
phone_lines:
  mystery: {sip: {proxy: "sip:127.0.0.1:5060", from: "sip:+33199001000@127.0.0.1"}}
runner: {timeout_seconds: 5, claim_grace_seconds: 0}
sites:
  - id: petit-palais
    name: Petit Palais
    calendar: always
    email: {address: info.pp@example.org, per_month: 0}
    phone: {number: "+33199001234", per_month: 0}
"""


class FakeKind:
    """A probe kind that does what the test says and remembers what it was asked."""

    def __init__(self, channel: str, clock: FakeClock):
        self.channel, self.clock = channel, clock
        self.sent: list[str] = []
        self.behaviour = "send"
        self.reconcile_result: object = None

    async def run(self, probe, ctx) -> ProbeOutcome:
        await ctx.mark_sending(token=f"QP-{probe.id[-5:]}", message_id=f"<{probe.id}@example.net>")
        if self.behaviour == "crash":
            raise ConnectionResetError("our relay dropped the connection")
        if self.behaviour == "refused":
            raise ProbeVoid("smtp_refused: 554 relay denied by our own server")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        self.sent.append(probe.id)
        if self.channel == "phone":
            return ProbeOutcome(sent_at=self.clock.now(), finished=True, timer_started_at=self.clock.now(),
                                responses=(Response("answered", self.clock.now() + timedelta(seconds=12)),))
        return ProbeOutcome(sent_at=self.clock.now(), details={"subject": "Horaires"})

    async def reconcile(self, probe, ctx):
        return self.reconcile_result

    def kind(self) -> ProbeKind:
        return ProbeKind(self.channel, self.run, self.reconcile)


@pytest.fixture
def config() -> Config:
    return config_from(CONFIG)


@pytest.fixture
def email(clock: FakeClock) -> FakeKind:
    return FakeKind("email", clock)


@pytest.fixture
def runner(store: Store, config: Config, clock: FakeClock, email: FakeKind) -> Runner:
    return Runner(store, config, {"email": email.kind(), "phone": FakeKind("phone", clock).kind()}, clock)


async def plan_one(store: Store, clock: FakeClock, channel: str = "email") -> str:
    return await plan(store, clock.now(), channel)


async def verdicts(store: Store, probe_id: str) -> dict[str, tuple[str, str | None]]:
    return {c: (v.verdict, v.reason) for c, v in (await store.verdicts_for(probe_id)).items()}


async def test_it_sends_a_due_probe_and_leaves_its_verdicts_pending(runner, store, clock, email) -> None:
    probe_id = await plan_one(store, clock)
    assert await dispatch(runner) == [probe_id]
    probe = await store.probe(probe_id)
    assert probe.status == SENT and probe.sent_at == clock.now() and probe.token == f"QP-{probe_id[-5:]}"
    assert await verdicts(store, probe_id) == {"email.ack": ("pending", None), "email.reply": ("pending", None)}
    types = [e.type for e in await store.events_for(probe_id)]
    assert types == ["planned", "claimed", "send_started", "sent"]


async def test_an_auto_reply_meets_the_ack_but_not_the_reply(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    clock.advance(30)
    await runner.record_response(probe_id, Response("auto_reply", clock.now()))
    assert await verdicts(store, probe_id) == {"email.ack": ("met", None), "email.reply": ("pending", None)}
    clock.advance(60)
    await runner.record_response(probe_id, Response("human_reply", clock.now()))
    decided = await store.verdicts_for(probe_id)
    assert decided["email.reply"].verdict == "met" and decided["email.reply"].delay_seconds == 90
    assert (await store.probe(probe_id)).status == CLOSED


async def test_a_late_reply_stays_missed_and_records_its_real_delay(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    clock.advance(400)
    await runner.sweep()
    assert await verdicts(store, probe_id) == {"email.ack": ("missed", "no_answer"),
                                               "email.reply": ("missed", "no_answer")}
    assert (await store.probe(probe_id)).status == SENT  # still watched for a late answer
    clock.advance(100)
    await runner.record_response(probe_id, Response("human_reply", clock.now()))
    reply = (await store.verdicts_for(probe_id))["email.reply"]
    assert (reply.verdict, reply.late, reply.delay_seconds, reply.reason) == ("missed", True, 500, None)


async def test_the_sweeper_closes_probes_when_their_watch_ends(runner, store, clock, config) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    clock.advance(400)
    await runner.sweep()
    clock.advance(days=config.runner.watch_days)
    await runner.sweep()
    assert (await store.probe(probe_id)).status == CLOSED


async def test_a_crash_inside_the_monitor_voids_the_probe(runner, store, clock, email) -> None:
    email.behaviour = "crash"
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    probe = await store.probe(probe_id)
    assert probe.status == VOID and "ConnectionResetError" in probe.void_reason
    assert await verdicts(store, probe_id) == {"email.ack": ("void", probe.void_reason),
                                               "email.reply": ("void", probe.void_reason)}


async def test_our_own_server_refusing_voids_the_probe_with_its_reason(runner, store, clock, email) -> None:
    email.behaviour = "refused"
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    assert (await store.probe(probe_id)).void_reason == "smtp_refused: 554 relay denied by our own server"


async def test_a_probe_that_hangs_is_voided_by_the_timeout(store, clock, email, config) -> None:
    email.behaviour = "hang"
    quick = config.model_copy(update={"runner": config.runner.model_copy(update={"timeout_seconds": 0.05})})
    runner = Runner(store, quick, {"email": email.kind()}, clock)
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    assert (await store.probe(probe_id)).void_reason.startswith("timeout")


async def test_a_service_failure_is_missed_not_void(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    await runner.record_failure(probe_id, "undeliverable", alert="the published address bounces")
    assert await verdicts(store, probe_id) == {"email.ack": ("missed", "undeliverable"),
                                               "email.reply": ("missed", "undeliverable")}
    assert "operator_alert" in [e.type for e in await store.events_for(probe_id)]


async def test_a_transient_bounce_is_recorded_and_the_clock_keeps_running(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    await runner.record_response(probe_id, Response("bounce", clock.now(), {"status": "4.4.7"}, counts=False))
    clock.advance(20)
    await runner.record_response(probe_id, Response("human_reply", clock.now()))
    assert await verdicts(store, probe_id) == {"email.ack": ("met", None), "email.reply": ("met", None)}


async def test_a_call_is_decided_and_closed_at_once(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock, channel="phone")
    await dispatch(runner)
    answer = (await store.verdicts_for(probe_id))["phone.answer"]
    assert (answer.verdict, answer.delay_seconds) == ("met", 12)
    assert (await store.probe(probe_id)).status == CLOSED


async def test_a_claim_left_by_a_dead_process_goes_back_to_the_plan(runner, store, clock, email) -> None:
    probe_id = await plan_one(store, clock)
    async with store.write() as tx:  # a dispatcher claimed it, then died before the kind ran
        await tx.claim_due(clock.now(), 10, "dead:1", clock.now() + timedelta(seconds=5))
    assert await dispatch(runner) == []
    clock.advance(6)
    assert await dispatch(runner) == [probe_id]
    assert email.sent == [probe_id]


async def test_an_interrupted_send_that_never_left_is_sent_again(runner, store, clock, email) -> None:
    probe_id = await plan_one(store, clock)
    async with store.write() as tx:
        await tx.claim_due(clock.now(), 10, "dead:1", clock.now() + timedelta(seconds=5))
        await tx.set_probe(probe_id, clock.now(), status=SENDING)
    email.reconcile_result = NOT_SENT
    clock.advance(6)
    await runner.recover_stale_claims()
    assert (await store.probe(probe_id)).status == PLANNED
    assert await dispatch(runner) == [probe_id]
    assert email.sent == [probe_id]


async def test_an_interrupted_send_that_cannot_be_checked_is_void_not_sent_twice(runner, store, clock, email) -> None:
    probe_id = await plan_one(store, clock)
    async with store.write() as tx:
        await tx.claim_due(clock.now(), 10, "dead:1", clock.now() + timedelta(seconds=5))
        await tx.set_probe(probe_id, clock.now(), status=SENDING)
    clock.advance(6)
    await dispatch(runner)
    probe = await store.probe(probe_id)
    assert probe.status == VOID and probe.void_reason.startswith("interrupted")
    assert email.sent == []


async def test_an_interrupted_send_found_delivered_is_recorded_as_sent(runner, store, clock, email) -> None:
    probe_id = await plan_one(store, clock)
    async with store.write() as tx:
        await tx.claim_due(clock.now(), 10, "dead:1", clock.now() + timedelta(seconds=5))
        await tx.set_probe(probe_id, clock.now(), status=SENDING)
    email.reconcile_result = ProbeOutcome(sent_at=clock.now())
    clock.advance(6)
    await dispatch(runner)
    assert (await store.probe(probe_id)).status == SENT
    sent = [e for e in await store.events_for(probe_id) if e.type == "sent"]
    assert sent[0].data["reconciled"] is True and email.sent == []


async def test_a_one_off_probe_runs_now_and_is_kept_in_the_history(runner, store, clock, email) -> None:
    probe_id, outcome = await runner.probe_now("petit-palais", "email")
    assert outcome is not None and email.sent == [probe_id]
    probe = await store.probe(probe_id)
    assert probe.origin == "manual" and probe.status == SENT


async def test_the_event_chain_stays_intact_through_a_probe_life(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    clock.advance(10)
    await runner.record_response(probe_id, Response("human_reply", clock.now()))
    report = await store.verify_chain()
    assert report.ok and report.events >= 6


async def test_an_auditor_regrade_is_an_appended_event_and_verdicts_follow(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    clock.advance(10)
    await runner.record_response(probe_id, Response("human_reply", clock.now()))
    [reply] = [e for e in await store.events_for(probe_id) if e.type == "response"]

    await runner.regrade(probe_id, by="auditor-2026", reason="this reply is not an answer", action="discount",
                         response_seq=reply.seq)
    assert (await store.verdicts_for(probe_id))["email.reply"].verdict == "pending"
    assert (await store.probe(probe_id)).status == SENT  # watched again until decided

    await runner.regrade(probe_id, by="auditor-2026", reason="museum closed for works", commitment="email.reply",
                         verdict="void")
    regraded = (await store.verdicts_for(probe_id))["email.reply"]
    assert regraded.verdict == "void" and regraded.reason == "regraded by auditor-2026: museum closed for works"

    await runner.regrade(probe_id, by="auditor-2026", reason="reopened", action="clear", commitment="email.reply")
    assert (await store.verdicts_for(probe_id))["email.reply"].verdict == "pending"
    assert [e.type for e in await store.events_for(probe_id)].count("regrade") == 3
    assert (await store.verify_chain()).ok


async def test_a_regrade_without_a_reason_is_refused(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    with pytest.raises(ValueError, match="who made it and why"):
        await runner.regrade(probe_id, by="auditor", reason=" ", verdict="void")


async def test_a_deadline_passing_while_our_mailbox_is_unreadable_stays_pending(runner, store, clock) -> None:
    probe_id = await plan_one(store, clock)
    await dispatch(runner)
    outage = clock.now() + timedelta(seconds=10)  # our IMAP went down ten seconds after sending
    runner.observed_until = lambda probe, now: min(now, outage)
    clock.advance(400)  # both deadlines pass during the outage
    await runner.sweep()
    assert await verdicts(store, probe_id) == {"email.ack": ("pending", None), "email.reply": ("pending", None)}
    runner.observed_until = lambda probe, now: now  # the mailbox is read again: no answer was there
    await runner.sweep()
    assert await verdicts(store, probe_id) == {"email.ack": ("missed", "no_answer"),
                                               "email.reply": ("missed", "no_answer")}


async def test_email_answers_are_known_only_while_the_mailbox_is_watched(config, clock, sqlite_store) -> None:
    from monitor.health import Health
    from monitor.host import ServiceHost
    from monitor.store.records import ProbeRecord
    from probes.email import KIND

    health = Health()
    host = ServiceHost(config, clock, Runner(sqlite_store, config, {}, clock), sqlite_store, health, gauges={})
    probe = ProbeRecord(id="p", site="petit-palais", channel="email", purpose="standard", origin="plan",
                        status="sent", planned_at=clock.now(), sent_at=clock.now(), timer_started_at=None,
                        closed_at=None, watch_until=None, token=None, message_id=None, void_reason=None,
                        attempts=1, details={})
    now = clock.now()
    assert KIND.observed_until is not None
    assert KIND.observed_until(probe, now, host).year == 1  # not read yet since start
    host.report_status("mailbox", "mystery", True, "IDLE")
    assert KIND.observed_until(probe, now, host) == now
    clock.advance(180)
    host.report_status("mailbox", "mystery", False, "connection refused")
    assert KIND.observed_until(probe, clock.now(), host) == now + timedelta(minutes=3)
