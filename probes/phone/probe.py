"""The phone probe kind: one mystery call through our SIP trunk.

Success: the call was placed and ended one way or another.  The outcome is
decided at once (`finished`): an answer (`response` of kind `answered`, the
commitment clock starting at the first ring so the delay is the ring time),
or the service's failure (`busy`, `no_answer`, `rejected`; a wrong published
number also raises an operator alert).  A `failed` call — our trunk answered
5xx, refused our credentials, or could not be reached — is the monitor's own
failure: the probe is `void`, never `missed`.  The SIP transcript, with the
authorisation headers redacted, is kept as evidence.

Restart safety: the Call-ID is recorded before the INVITE leaves; a call
interrupted by a crash cannot be checked afterwards, so it is voided
(`interrupted`) rather than placed twice.
"""

from __future__ import annotations

import json
from datetime import timedelta

from monitor.kinds import ProbeContext, ProbeOutcome, ProbeVoid, Response
from monitor.store.records import EvidenceItem, ProbeRecord
from probes.phone.caller import new_call_id, place_call
from probes.phone.result import CallResult

SERVICE_FAILURES = {"busy": "busy", "no_answer": "no_answer", "rejected": "rejected"}


async def run(probe: ProbeRecord, ctx: ProbeContext) -> ProbeOutcome:
    site = ctx.site
    if site.phone is None:
        raise ProbeVoid(f"site {site.id} has no phone number in the config")
    if not ctx.config.phone_lines:
        raise ProbeVoid("no phone_lines in the config to call from")
    line_name, line = ctx.config.line_for(site)
    call_id = new_call_id()
    await ctx.mark_sending(call_id=call_id, number=site.phone.number, line=line_name)
    result = await place_call(line.sip, site.phone.number, max_ring_seconds=line.sip.max_ring_seconds,
                              hold_seconds=line.sip.hold_seconds, ring_cadence=_cadence(ctx), clock=ctx.clock,
                              call_id=call_id)
    return outcome_of(result)


def outcome_of(result: CallResult) -> ProbeOutcome:
    evidence = _evidence(result)
    if result.outcome == "failed":
        raise ProbeVoid(f"sip_failed: {result.failure_reason or result.detail}", evidence=evidence)
    details = {"call_outcome": result.outcome, "status": result.status_code, "detail": result.detail,
               "post_dial_delay": result.post_dial_delay, "ring_seconds": result.ring_seconds,
               "rings": result.rings, "call_id": result.call_id}
    if result.outcome == "answered" and result.answered_at is not None and result.ring_seconds is not None:
        ring_start = result.answered_at - timedelta(seconds=result.ring_seconds)
        return ProbeOutcome(sent_at=result.invite_at, timer_started_at=ring_start, finished=True,
                            responses=(Response("answered", result.answered_at, {"rings": result.rings}),),
                            details=details, evidence=evidence)
    alert = (f"the published number {result.number} is wrong: the network answered "
             f"{result.status_code} {result.status_reason or ''}".strip()) if result.wrong_number else None
    return ProbeOutcome(sent_at=result.invite_at, timer_started_at=result.first_provisional_ring_at,
                        failure=SERVICE_FAILURES[result.outcome], finished=True, details=details,
                        evidence=evidence, operator_alert=alert)


async def reconcile(probe: ProbeRecord, ctx: ProbeContext) -> None:
    return None  # a call leaves no trace we could read back: never call twice


def _cadence(ctx: ProbeContext) -> float:
    cadences = {c.ring_cadence_seconds for c in ctx.config.commitments_for("phone").values()}
    return min(cadences) if cadences else 5.0


def _evidence(result: CallResult) -> tuple[EvidenceItem, ...]:
    transcript = "\n\n".join(f"--- {e.at.isoformat()} {e.direction} (+{e.elapsed:.3f} s)\n{e.text}"
                             for e in result.transcript)
    return (
        EvidenceItem("sip-transcript.txt", "text/plain; charset=utf-8", transcript.encode()),
        EvidenceItem("call.json", "application/json", json.dumps(result.as_dict(), default=str).encode()),
    )
