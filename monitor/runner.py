"""The probe runner: the one place for cross-cutting work around every probe kind.

It claims due probes, runs each through its kind with a timeout, turns any
exception into a `void` outcome with a reason (the monitor never blames a
service for its own failure), writes events, evidence and verdicts in one
transaction, updates metrics, and sweeps deadlines.  Watchers hand the
answers they find to `record_response`, so verdicts are always decided here.

Events written: claimed, released, send_started, sent, void, response,
failure, operator_alert, verdict, closed, message (a mailbox message that
answers no probe), attached and dismissed (an auditor's decision on a
mailbox message) (see README "Event log").
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from monitor import quality
from monitor.calendar import BusinessCalendar, calendars_from
from monitor.clock import Clock, iso_utc
from monitor.config.models import Config, Site
from monitor.kinds import NOT_SENT, NotSent, ProbeKind, ProbeOutcome, ProbeRetry, ProbeVoid, Response
from monitor.store.records import (
    ATTACHED,
    CLAIMED,
    CLOSED,
    DISMISSED,
    HELD,
    PLANNED,
    SENDING,
    SENT,
    VOID,
    EventRecord,
    EvidenceItem,
    MailboxMessage,
    NewProbe,
    ProbeRecord,
    StoredMessage,
    VerdictRecord,
)
from monitor.store.store import Store, StoreTx
from monitor.verdicts import (
    OVERRIDES,
    PENDING,
    REVIEW,
    UNDECIDED,
    Answer,
    Judgement,
    applicable_commitments,
    facts_from,
    first_counted,
    judge,
)

log = logging.getLogger("qualimon.runner")


class NullMetrics:
    """Used when no metrics registry is wired (CLI one-offs, some tests)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


@dataclass
class Context:
    """What a kind sees of the world while it runs one probe (implements kinds.ProbeContext)."""

    runner: Runner
    probe: ProbeRecord
    shared: dict[str, Any]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("qualimon.probe"))

    @property
    def config(self) -> Config:
        return self.runner.config

    @property
    def site(self) -> Site:
        return self.runner.config.site(self.probe.site)

    @property
    def clock(self) -> Clock:
        return self.runner.clock

    async def mark_sending(self, *, token: str | None = None, message_id: str | None = None,
                           fingerprint: bytes | None = None, **details: Any) -> None:
        await self.runner.mark_sending(self.probe, token=token, message_id=message_id, details=details,
                                       fingerprint=fingerprint)

    async def open_tokens(self) -> set[str]:
        return await self.runner.store.open_tokens()


class Runner:
    def __init__(self, store: Store, config: Config, kinds: Mapping[str, ProbeKind], clock: Clock,
                 metrics: Any = None, shared: dict[str, Any] | None = None):
        self.store = store
        self.config = config
        self.kinds = dict(kinds)
        self.clock = clock
        self.metrics = metrics or NullMetrics()
        self.shared = shared if shared is not None else {}
        self.calendars: dict[str, BusinessCalendar] = calendars_from(config)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.settings = config.runner
        # Until when the absence of an answer to `probe` is known. The service narrows it for email while
        # our own mailbox cannot be read: a reply may be waiting there, so no deadline passes unobserved.
        self.observed_until: Callable[[ProbeRecord, datetime], datetime] = lambda probe, now: now
        self._tasks: set[asyncio.Task[None]] = set()

    def with_store(self, store: Store) -> Runner:
        """This runner writing through `store`, e.g. a view of its own fenced by a fleet task: the sweeper and a
        mailbox's watcher record under their task's fence, while dispatch, shared by every instance, is not."""
        view = copy.copy(self)
        view.store = store
        return view

    # ------------------------------------------------------------------ dispatch

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def dispatch_due(self) -> list[str]:
        """Recover stale claims, then claim what is due and start it; returns the ids started."""
        await self.recover_stale_claims()
        free = self.settings.max_concurrency - self.in_flight
        if free <= 0:
            return []
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.timeout_seconds + self.settings.claim_grace_seconds)
        exclusive = [name for name, spec in self.config.channels.items() if spec.exclusive]
        async with self.store.write() as tx:
            claimed = await tx.claim_due(now, free, self.owner, lease, exclusive=exclusive)
        for probe in claimed:
            self._start(probe)
        return [p.id for p in claimed]

    def _start(self, probe: ProbeRecord) -> None:
        task = asyncio.create_task(self.run_probe(probe), name=f"probe {probe.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def shutdown(self, grace_seconds: float = 10.0) -> None:
        """Let running probes finish for a moment, then stop them; their claims are recovered on restart."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def recover_stale_claims(self) -> None:
        """Claims whose lease ran out belong to a process that died (or hung) mid-probe."""
        async with self.store.write() as tx:
            stale = await tx.expired_claims(self.clock.now())
            for probe in stale:
                if probe.status == CLAIMED:
                    await tx.release_claim(probe.id, self.clock.now(), "claim expired before sending")
        for probe in stale:
            if probe.status == SENDING:
                await self._reconcile(probe)

    async def _reconcile(self, probe: ProbeRecord) -> None:
        kind = self.kinds.get(probe.channel)
        result: ProbeOutcome | NotSent | None = None
        if kind is not None:
            try:
                result = await asyncio.wait_for(kind.reconcile(probe, self._context(probe)),
                                                self.settings.timeout_seconds)
            except Exception as exc:  # cannot tell: never risk a second send
                log.warning("reconciling probe %s failed: %s", probe.id, _describe(exc))
        if result is NOT_SENT:
            async with self.store.write() as tx:
                await tx.release_claim(probe.id, self.clock.now(), "interrupted before it left us")
        elif isinstance(result, ProbeOutcome):
            await self.record_outcome(probe, result, reconciled=True)
        else:
            await self.record_void(probe, "interrupted: the monitor stopped while sending and cannot tell "
                                          "whether the probe left")

    # ------------------------------------------------------------------ one probe

    def _context(self, probe: ProbeRecord) -> Context:
        return Context(self, probe, self.shared)

    async def run_probe(self, probe: ProbeRecord) -> ProbeOutcome | None:
        kind = self.kinds.get(probe.channel)
        if kind is None:
            await self.record_void(probe, f"no probe kind for channel {probe.channel!r} in this build")
            return None
        started = self.clock.now()
        try:
            outcome = await asyncio.wait_for(kind.run(probe, self._context(probe)), self.settings.timeout_seconds)
        except ProbeVoid as exc:
            await self.record_void(probe, exc.reason, evidence=exc.evidence)
            return None
        except ProbeRetry as exc:
            await self.retry_later(probe, exc.reason)
            return None
        except TimeoutError:
            await self.record_void(probe, f"timeout: the probe took more than {self.settings.timeout_seconds:g} s")
            return None
        except asyncio.CancelledError:
            raise  # shutdown: the claim is recovered on restart
        except Exception as exc:
            log.exception("probe %s (%s) failed inside the monitor", probe.id, probe.channel)
            await self.record_void(probe, f"monitor error: {_describe(exc)}")
            return None
        took = (self.clock.now() - started).total_seconds()
        log.info("probe %s %s/%s sent in %.3f s", probe.id, probe.site, probe.channel, took)
        await self.record_outcome(probe, outcome, duration_seconds=took)
        return outcome

    async def mark_sending(self, probe: ProbeRecord, *, token: str | None, message_id: str | None,
                           details: Mapping[str, Any], fingerprint: bytes | None = None) -> None:
        now = self.clock.now()
        async with self.store.write() as tx:
            merged = {**probe.details, **details}
            await tx.set_probe(probe.id, now, status=SENDING, token=token, message_id=message_id, details=merged)
            if fingerprint is not None:
                await tx.set_fingerprint(probe.id, probe.channel, fingerprint)
            tx.event(probe.id, "send_started", now, token=token, message_id=message_id, **details)

    async def retry_later(self, probe: ProbeRecord, reason: str) -> None:
        """Our side failed before anything left: back to the plan, after 1, 2, 4… minutes (capped at an hour)."""
        if probe.attempts >= self.settings.max_attempts:
            await self.record_void(probe, f"{reason} (gave up after {probe.attempts} attempts)")
            return
        now = self.clock.now()
        retry_at = now + timedelta(seconds=min(3600.0, self.settings.retry_base_seconds * 2 ** (probe.attempts - 1)))
        async with self.store.write() as tx:
            await tx.set_probe(probe.id, now, status=PLANNED, planned_at=retry_at, claimed_at=None,
                               claim_expires_at=None, claimed_by=None, token=None, message_id=None)
            tx.event(probe.id, "send_failed", now, reason=reason, retry_at=retry_at, attempt=probe.attempts)
        self.metrics.send_failed(probe.site, probe.channel, reason)
        log.warning("probe %s: %s; retrying at %s", probe.id, reason, iso_utc(retry_at))

    async def record_void(self, probe: ProbeRecord, reason: str, evidence: tuple[EvidenceItem, ...] = ()) -> None:
        now = self.clock.now()
        async with self.store.write() as tx:
            await tx.set_probe(probe.id, now, status=VOID, void_reason=reason[:200], closed_at=now,
                               claim_expires_at=None)
            tx.event(probe.id, "void", now, reason=reason)
            await tx.add_evidence(probe.id, evidence, now)
            current = await tx.locked_probe(probe.id)
            decided = await self._evaluate(tx, current, now)
        self.metrics.send_failed(probe.site, probe.channel, reason)
        if self._is_call(probe):
            self.metrics.call(probe.site, "mystery", "failed")
        self._publish(decided)

    async def record_outcome(self, probe: ProbeRecord, outcome: ProbeOutcome, *, reconciled: bool = False,
                             duration_seconds: float | None = None) -> None:
        now = self.clock.now()
        async with self.store.write() as tx:
            await tx.set_probe(probe.id, now, status=SENT, sent_at=outcome.sent_at,
                               timer_started_at=outcome.timer_started_at, claim_expires_at=None,
                               details={**probe.details, **outcome.details})
            tx.event(probe.id, "sent", now, sent_at=outcome.sent_at, timer_started_at=outcome.timer_started_at,
                     reconciled=reconciled, duration_seconds=duration_seconds, **outcome.details)
            await tx.add_evidence(probe.id, outcome.evidence, now)
            for response in outcome.responses:
                self._response_event(tx, probe.id, response, now)
            if outcome.failure:
                tx.event(probe.id, "failure", now, reason=outcome.failure)
            if outcome.operator_alert:
                tx.event(probe.id, "operator_alert", now, message=outcome.operator_alert, site=probe.site)
            current = await tx.locked_probe(probe.id)
            decided = await self._evaluate(tx, current, now, finished=outcome.finished)
        self.metrics.probe_sent(probe.site, probe.channel, outcome.sent_at)
        if "call_outcome" in outcome.details:
            self.metrics.call(probe.site, "mystery", outcome.details["call_outcome"],
                              outcome.details.get("ring_seconds"))
        for response in outcome.responses:
            self._count_response(probe, response)
        self._publish(decided)

    # ------------------------------------------------------------------ answers found later

    async def record_response(self, probe_id: str, response: Response,
                              evidence: tuple[EvidenceItem, ...] = ()) -> list[VerdictRecord]:
        """A watcher found an answer to a probe: record it and decide what it decides."""
        now = self.clock.now()
        async with self.store.write() as tx:
            probe = await tx.locked_probe(probe_id)
            self._response_event(tx, probe_id, response, now)
            await tx.add_evidence(probe_id, evidence, now)
            decided = await self._evaluate(tx, probe, now)
        self._count_response(probe, response)
        self._publish(decided)
        return decided

    async def record_failure(self, probe_id: str, reason: str, *, alert: str | None = None,
                             evidence: tuple[EvidenceItem, ...] = ()) -> list[VerdictRecord]:
        """The service failed outright (e.g. its address bounces permanently): missed with `reason`."""
        now = self.clock.now()
        async with self.store.write() as tx:
            probe = await tx.locked_probe(probe_id)
            tx.event(probe_id, "failure", now, reason=reason)
            if alert:
                tx.event(probe_id, "operator_alert", now, message=alert, site=probe.site)
            await tx.add_evidence(probe_id, evidence, now)
            decided = await self._evaluate(tx, probe, now)
        self._publish(decided)
        return decided

    async def record_message(self, message: MailboxMessage, response: Response | None = None, *,
                             alert: str | None = None, evidence: tuple[EvidenceItem, ...] = ()) -> bool:
        """A watcher read `message` and put it in its bucket: store it, and what it means for its probe, at once.

        Matched or held, `response` is appended to the probe (held: it waits for an auditor, the verdicts
        it could change become `review`); a matched `response.failure` (a permanent bounce) also makes the
        service fail.  A message of no probe gets a `message` event.  False when it was recorded before
        (a watcher delivers at least once), and then nothing is written."""
        now = self.clock.now()
        probe: ProbeRecord | None = None
        decided: list[VerdictRecord] = []
        async with self.store.write() as tx:
            message_id = await tx.add_message(message, now)
            if message_id is None:
                return False
            ref = {"mailbox": message.mailbox, "message": message_id}
            if message.probe_id is None or response is None:
                tx.event(message.probe_id, "message", now, bucket=message.bucket, reason=message.reason,
                         digest=message.digest, **ref)
            else:
                probe = await tx.locked_probe(message.probe_id)
                response = replace(response, details={**response.details, **ref, "bucket": message.bucket})
                self._response_event(tx, probe.id, response, now)
                if response.failure and not response.held:
                    tx.event(probe.id, "failure", now, reason=response.failure)
                if alert and not response.held:
                    tx.event(probe.id, "operator_alert", now, message=alert, site=probe.site)
                await tx.add_evidence(probe.id, evidence, now)
                decided = await self._evaluate(tx, probe, now)
        self.metrics.mailbox_message(message.mailbox, message.bucket)
        if probe is not None and response is not None and not response.held:
            self._count_response(probe, response)
        self._publish(decided)
        return True

    async def review_message(self, message_id: int, action: str, *, by: str, reason: str,
                             probe_id: str | None = None) -> StoredMessage:
        """An auditor attaches a mailbox message to a probe (it then counts as what it is) or dismisses it.

        Appended as `attached` / `dismissed` events with who and why; the verdicts of the probes concerned
        are recomputed.  A held message attached elsewhere is dismissed from the probe it was held for."""
        if not reason.strip() or not by.strip():
            raise ValueError("a review needs who made it and why")
        if action not in ("attach", "dismiss") or (action == "attach") != (probe_id is not None):
            raise ValueError("attach needs the probe; dismiss takes none")
        now = self.clock.now()
        async with self.store.write() as tx:
            stored = await tx.locked_message(message_id)
            if stored.decision is not None:
                raise ValueError(f"message {message_id} was already {stored.decision} by {stored.decided_by}")
            touched = await self._apply_review(tx, stored, action, by, reason, probe_id, now)
            await tx.decide_message(message_id, ATTACHED if action == "attach" else DISMISSED, by, reason,
                                    probe_id, now)
            decided = [v for probe in touched for v in await self._evaluate(tx, probe, now)]
            stored = await tx.locked_message(message_id)
        self._publish(decided)
        return stored

    async def _apply_review(self, tx: StoreTx, stored: StoredMessage, action: str, by: str, reason: str,
                            probe_id: str | None, now: datetime) -> list[ProbeRecord]:
        message = stored.message
        ref = {"mailbox": message.mailbox, "message": stored.id, "by": by, "reason": reason}
        touched: list[ProbeRecord] = []
        held_for = message.probe_id if message.bucket == HELD else None
        if action == "attach":
            assert probe_id is not None
            target = await tx.locked_probe(probe_id)
            if target.channel != message.channel:
                raise ValueError(f"probe {probe_id} is a {target.channel} probe; this message can only answer "
                                 f"a {message.channel} probe")
            tx.event(target.id, "attached", now, kind=message.kind, answered_at=iso_utc(message.received_at),
                     counts=message.counts, failure=message.failure, **ref)
            raw = message.raw
            if raw is None and message.probe_id and message.summary.get("evidence"):
                raw = await tx.evidence_named(message.probe_id, str(message.summary["evidence"]))
            if raw is not None and target.id != message.probe_id:  # a held message is already that probe's evidence
                await tx.add_evidence(target.id, (EvidenceItem(f"attached-{stored.id}.eml", "message/rfc822", raw),),
                                      now)
            touched.append(target)
            if held_for is not None and held_for != target.id:
                ref = {**ref, "reason": f"attached to probe {target.id}: {reason}"}
                tx.event(held_for, "dismissed", now, **ref)
                touched.append(await tx.locked_probe(held_for))
        elif held_for is not None:
            tx.event(held_for, "dismissed", now, **ref)
            touched.append(await tx.locked_probe(held_for))
        else:
            tx.event(message.probe_id, "dismissed", now, **ref)
        return touched

    def _response_event(self, tx: StoreTx, probe_id: str, response: Response, now: datetime) -> None:
        extra: dict[str, Any] = {}
        if response.held:
            extra["held"] = response.held
        if response.failure:
            extra["failure"] = response.failure
        tx.event(probe_id, "response", now, kind=response.kind, answered_at=iso_utc(response.answered_at),
                 counts=response.counts, **extra, **response.details)
        if response.assessment is not None:  # grades the response just before it (see verdicts._gradings)
            tx.event(probe_id, "assessment", now, **response.assessment)

    def _count_response(self, probe: ProbeRecord, response: Response) -> None:
        spec = self.config.channels.get(probe.channel)
        if spec is not None and response.kind in spec.responses:
            self.metrics.response(probe.site, probe.channel, response.kind)

    def _is_call(self, probe: ProbeRecord) -> bool:
        spec = self.config.channels.get(probe.channel)
        return spec is not None and spec.calls

    # ------------------------------------------------------------------ verdicts

    async def sweep(self) -> int:
        """Decide verdicts whose deadline passed and close probes no longer watched."""
        now = self.clock.now()
        count = 0
        for probe_id in await self.store.probes_to_sweep(now):
            async with self.store.write() as tx:
                probe = await tx.lock_probe(probe_id)
                if probe is None or probe.status != SENT:
                    continue
                decided = await self._evaluate(tx, probe, now)
            self._publish(decided)
            count += 1
        return count

    async def regrade(self, probe_id: str, *, by: str, reason: str, action: str = "override",
                      commitment: str | None = None, verdict: str | None = None,
                      response_seq: int | None = None) -> list[VerdictRecord]:
        """An auditor's decision, appended to the log with who, when and why; verdicts follow from it."""
        if not reason.strip() or not by.strip():
            raise ValueError("a regrade needs who made it and why")
        if action == "override" and verdict not in OVERRIDES:
            raise ValueError(f"an override sets the verdict to {', '.join(OVERRIDES)}")
        if action == "discount" and response_seq is None:
            raise ValueError("discounting needs the seq of the response event")
        if action not in ("override", "discount", "clear"):
            raise ValueError(f"unknown regrade action {action!r}; use override, discount or clear")
        now = self.clock.now()
        async with self.store.write() as tx:
            probe = await tx.locked_probe(probe_id)
            if commitment is not None and commitment not in applicable_commitments(self.config, probe):
                raise ValueError(f"commitment {commitment!r} does not apply to probe {probe_id}")
            data = {"action": action, "commitment": commitment, "verdict": verdict, "by": by, "reason": reason}
            if response_seq is not None:
                data["response_seq"] = response_seq
            tx.event(probe_id, "regrade", now, **data)
            decided = await self._evaluate(tx, probe, now)
        self._publish(decided)
        return decided

    async def grade(self, probe_id: str, *, by: str, decisions: Mapping[str, bool], reason: str | None = None,
                    response_seq: int | None = None) -> list[VerdictRecord]:
        """An auditor's decisions on quality criteria of one answer, appended as a `grade` event with who and
        why; the quality verdicts follow.  Raises `quality.GradeRefused` (nothing recorded) when the probe has
        no answer to grade, a criterion is unknown, or a criterion already decided is decided again without
        a reason."""
        if not by.strip():
            raise quality.GradeRefused("a grade needs who made it")
        now = self.clock.now()
        async with self.store.write() as tx:
            probe = await tx.locked_probe(probe_id)
            criteria = self._criteria(probe)
            answer = self._graded_answer(probe, await tx.events_for(probe_id), response_seq)
            grading = answer.grading or quality.Grading(answer.seq)
            quality.check_decisions(grading, decisions, reason, criteria)
            tx.event(probe_id, "grade", now, response_seq=grading.response_seq, by=by,
                     reason=reason.strip() if reason and reason.strip() else None,
                     decisions={name: "met" if met else "not_met" for name, met in decisions.items()})
            decided = await self._evaluate(tx, probe, now)
        self._publish(decided)
        return decided

    def _criteria(self, probe: ProbeRecord) -> tuple[str, ...]:
        spec = self.config.channels.get(probe.channel)
        if spec is None or not spec.criteria:
            raise quality.NothingToGrade(f"{probe.channel} answers are not graded: no quality criteria")
        return tuple(spec.criteria)

    def _graded_answer(self, probe: ProbeRecord, events: list[EventRecord], response_seq: int | None) -> Answer:
        """The answer named by `response_seq`, else the first one the probe's quality commitments grade."""
        answers = facts_from(probe, events).answers
        if response_seq is not None:
            chosen = next((a for a in answers if a.seq == response_seq), None)
            if chosen is None:
                raise quality.GradeRefused(f"response_seq: probe {probe.id} has no counted response {response_seq}")
            return chosen
        graded = [c for c in applicable_commitments(self.config, probe).values() if c.is_quality]
        if not graded:
            raise quality.GradeRefused(f"no quality commitment of the config judges probe {probe.id}")
        for commitment in graded:
            answer = first_counted(commitment, answers)
            if answer is not None:
                return answer
        raise quality.NothingToGrade(f"probe {probe.id} has no answer to grade yet")

    async def reevaluate(self, probe_id: str) -> list[VerdictRecord]:
        now = self.clock.now()
        async with self.store.write() as tx:
            probe = await tx.locked_probe(probe_id)
            decided = await self._evaluate(tx, probe, now)
        self._publish(decided)
        return decided

    async def _evaluate(self, tx: StoreTx, probe: ProbeRecord, now: datetime, *,
                        finished: bool = False) -> list[VerdictRecord]:
        """Recompute every verdict of one probe; returns those that became decided now."""
        events = await tx.events_for(probe.id)
        facts = facts_from(probe, events)
        site = self.config.site(probe.site)
        calendar = self.calendars[self.config.calendar_id_for(site, probe.channel)]
        previous = await tx.verdicts_for(probe.id)
        newly_decided: list[VerdictRecord] = []
        verdicts: list[VerdictRecord] = []
        observed = self.observed_until(probe, now)
        for cid, commitment in applicable_commitments(self.config, probe).items():
            judgement = judge(commitment, calendar, facts, observed, cid)
            before = previous.get(cid)
            record = self._verdict_record(probe, cid, judgement, before, now)
            verdicts.append(record)
            if before != record:
                await tx.save_verdict(record, exists=before is not None)
                if judgement.verdict != PENDING and (before is None or before.verdict != record.verdict):
                    if judgement.verdict != REVIEW:  # review awaits an auditor: logged, not yet decided
                        newly_decided.append(record)
                    tx.event(probe.id, "verdict", now, commitment=cid, verdict=record.verdict,
                             reason=record.reason, late=record.late, delay_seconds=record.delay_seconds)
        await self._maybe_close(tx, probe, verdicts, now, finished)
        return newly_decided

    def _verdict_record(self, probe: ProbeRecord, cid: str, judgement: Judgement, before: VerdictRecord | None,
                        now: datetime) -> VerdictRecord:
        decided_at = None
        if judgement.verdict not in UNDECIDED:
            same = before is not None and before.verdict == judgement.verdict
            decided_at = before.decided_at if same and before.decided_at else now
        return VerdictRecord(
            probe_id=probe.id, commitment=cid, site=probe.site, channel=probe.channel,
            # A probe voided before it left has no clock start; its planned instant places it in a period.
            verdict=judgement.verdict, deadline=judgement.deadline, started_at=probe.clock_start or probe.planned_at,
            answered_at=judgement.answered_at, delay_seconds=judgement.delay_seconds,
            business_delay_seconds=judgement.business_delay_seconds, late=judgement.late,
            reason=judgement.reason, decided_at=decided_at,
        )

    async def _maybe_close(self, tx: StoreTx, probe: ProbeRecord, verdicts: list[VerdictRecord], now: datetime,
                           finished: bool) -> None:
        # A quality verdict waits for its answer, then for auditors, never for the mailbox: it keeps a probe
        # open only until an answer comes, and an auditor's grade never reopens a closed probe.
        timed = [v for v in verdicts if not self._is_quality(v.commitment)]
        waiting = timed + [v for v in verdicts if self._is_quality(v.commitment)
                           and v.answered_at is None and v.verdict in UNDECIDED]
        if probe.status == CLOSED and any(v.verdict in UNDECIDED for v in timed):
            # A regrade discounted the answer that closed it: watch it again until decided.
            await tx.set_probe(probe.id, now, status=SENT, closed_at=None)
            tx.event(probe.id, "reopened", now, reason="a verdict is pending again after a regrade")
            return
        if probe.status != SENT:
            return
        deadlines = [v.deadline for v in verdicts if v.deadline is not None]
        watch_until = probe.watch_until
        if watch_until is None and (deadlines or probe.clock_start):
            latest = max(deadlines) if deadlines else probe.clock_start
            assert latest is not None
            watch_until = latest + timedelta(days=self.settings.watch_days)
            await tx.set_probe(probe.id, now, watch_until=watch_until)
        all_answered = all(
            v.verdict not in UNDECIDED and (v.answered_at is not None or v.verdict == VOID
                                            or v.reason not in (None, "no_answer")) for v in waiting)
        expired = watch_until is not None and now >= watch_until
        if finished or all_answered or expired:
            await tx.set_probe(probe.id, now, status=CLOSED, closed_at=now)
            tx.event(probe.id, "closed", now, reason="finished" if finished else
                     "answered" if all_answered else "watch ended")

    def _is_quality(self, commitment: str) -> bool:
        found = self.config.commitments.get(commitment)
        return found is not None and found.is_quality

    def _publish(self, decided: list[VerdictRecord]) -> None:
        for v in decided:
            self.metrics.verdict(v.site, v.commitment, v.verdict, v.delay_seconds, v.business_delay_seconds)

    # ------------------------------------------------------------------ one-off probes

    async def probe_now(self, site_id: str, channel: str) -> tuple[str, ProbeOutcome | None]:
        """`qualimon probe`: create a probe due now, claim it and run it in this process."""
        site = self.config.site(site_id)
        spec = self.config.channels.get(channel)
        if spec is None or site.section(channel) is None:
            raise ValueError(f"site {site_id!r} has no {channel} settings in the config")
        now = self.clock.now()
        purpose = spec.purpose_at(self.calendars[site.calendar].is_open(now))
        new = NewProbe(site=site_id, channel=channel, planned_at=now, purpose=purpose, origin="manual")
        lease = now + timedelta(seconds=self.settings.timeout_seconds + self.settings.claim_grace_seconds)
        async with self.store.write() as tx:
            await tx.insert_probes([new], now)
            await tx.set_probe(new.id, now, status=CLAIMED, claimed_at=now, claim_expires_at=lease,
                               claimed_by=self.owner, attempts=1)
            tx.event(new.id, "claimed", now, by=self.owner)
        probe = await self.store.probe(new.id)
        assert probe is not None
        return new.id, await self.run_probe(probe)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:180] if text else type(exc).__name__
