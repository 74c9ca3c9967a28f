"""Verdicts from events (pure): the one place that decides met / missed / pending / void.

A probe's events say what happened: it was sent (or voided by our own
failure), answers arrived (`response` events with a kind), or the service
failed outright (`failure`: an undeliverable address, a busy line).  For
each commitment that applies to the probe this module computes the
deadline and the verdict:

- `void` when the monitor itself failed: it never counts against the service;
- `met` when the first answer of a counted kind came by the deadline;
- `missed` when it came later (`late`, with its real delay), when the
  service failed outright (`reason` says how), or when the deadline passed
  with no answer (`reason: no_answer`);
- `review` when a message that may decide it is held for an auditor (an
  unauthenticated answer or bounce matched only by its sender): it counts
  like `pending` until the auditor attaches the message (`attached`: it then
  counts as the answer, or the failure, it is) or dismisses it (`dismissed`);
- `pending` otherwise.

An auditor's re-grading is an appended `regrade` event, never an edit:
`override` sets a commitment's verdict (e.g. void: the museum was closed for
works), `discount` makes one response no longer count (this reply is not an
answer), `clear` removes an override.

A `quality` commitment has no deadline: it grades the first counted answer
from its `assessment` event and the auditors' `grade` events
(`monitor.quality`); it stays `pending` while there is no answer to grade.

Because verdicts are a function of the events and the clock, they can be
recomputed at any time (after an auditor's re-grading, after a fix) and the
sweeper only has to re-run this when a deadline passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor import quality
from monitor.calendar import BusinessCalendar, deadline
from monitor.config.models import Commitment, Config
from monitor.store.records import EventRecord, ProbeRecord

PENDING, MET, MISSED, VOID, REVIEW = "pending", "met", "missed", "void", "review"
#: Every verdict value, in the order tables show them: the one list the API, CSV, pages and metrics follow.
VERDICTS = (PENDING, MET, MISSED, VOID, REVIEW)
#: Verdicts an auditor may set by a regrade (`review` is the state of waiting for one).
OVERRIDES = (MET, MISSED, VOID)
#: Not decided yet: compliance leaves them out of ratios, the probe is still watched.
UNDECIDED = (PENDING, REVIEW)


@dataclass(frozen=True)
class Answer:
    kind: str
    at: datetime
    grading: quality.Grading | None = None  # the answer's assessment and auditors' decisions (graded channels)
    seq: int = 0                            # of its `response` event (0 while still queued in a transaction)


@dataclass(frozen=True)
class Held:
    """A message held for an auditor: what it would be if attached (an answer of `kind`, or `failure`)."""

    kind: str
    at: datetime
    reason: str
    failure: str | None = None


@dataclass(frozen=True)
class Override:
    verdict: str
    reason: str


@dataclass(frozen=True)
class Facts:
    """What the events of one probe establish, reduced to what verdicts need."""

    start: datetime | None
    answers: tuple[Answer, ...] = ()
    failure: str | None = None
    void_reason: str | None = None
    overrides: dict[str | None, Override] = field(default_factory=dict)  # commitment (None: all) → regrade
    held: tuple[Held, ...] = ()  # messages awaiting an auditor's attach or dismiss


@dataclass(frozen=True)
class Judgement:
    verdict: str
    deadline: datetime | None = None
    answered_at: datetime | None = None
    delay_seconds: float | None = None
    business_delay_seconds: float | None = None
    late: bool = False
    reason: str | None = None


def facts_from(probe: ProbeRecord, events: Iterable[EventRecord]) -> Facts:
    events = list(events)
    discounted = {e.data["response_seq"] for e in events if e.type == "regrade" and e.data.get("action") == "discount"}
    gradings = _gradings(events)
    reviewed = {e.data.get("message") for e in events if e.type in ("attached", "dismissed")}
    held_at = {e.data.get("message"): position for position, e in enumerate(events)
               if e.type == "response" and e.data.get("held")}
    answers: list[Answer] = []
    held: list[Held] = []
    failure = None
    void_reason = probe.void_reason
    overrides: dict[str | None, Override] = {}
    for position, event in enumerate(events):
        if event.type == "response" and event.data.get("held"):
            if event.data.get("message") not in reviewed and event.seq not in discounted:
                held.append(_held(event.data))
        elif event.type == "response" and event.data.get("counts", True) and event.seq not in discounted:
            answers.append(Answer(event.data["kind"], datetime.fromisoformat(event.data["answered_at"]),
                                  gradings.get(position), event.seq))
        elif event.type == "attached" and event.data.get("failure"):
            failure = failure or event.data["failure"]
        elif event.type == "attached" and event.data.get("counts", True):
            # An attached message is graded as it was assessed when it was held.
            grading = gradings.get(held_at.get(event.data.get("message"), -1))
            answers.append(Answer(event.data["kind"], datetime.fromisoformat(event.data["answered_at"]),
                                  grading, grading.response_seq if grading else 0))
        elif event.type == "failure" and failure is None:
            failure = event.data["reason"]
        elif event.type == "void" and void_reason is None:
            void_reason = event.data["reason"]
        elif event.type == "regrade":
            _apply_regrade(overrides, event.data)
    answers.sort(key=lambda a: a.at)
    return Facts(probe.clock_start, tuple(answers), failure, void_reason, overrides, tuple(held))


def _held(data: dict[str, Any]) -> Held:
    return Held(data["kind"], datetime.fromisoformat(data["answered_at"]), str(data["held"]),
                data.get("failure") or None)


def _gradings(events: list[EventRecord]) -> dict[int, quality.Grading]:
    """Each response (by its position in `events`) with the assessment written just after it and the
    auditors' decisions naming its seq.  Positions, not seqs: events still queued in a transaction
    have no seq yet."""
    assessed: dict[int, dict[str, Any]] = {}
    decided: dict[int, list[quality.Decision]] = {}
    position_of: dict[int, int] = {}
    last: int | None = None
    for position, event in enumerate(events):
        if event.type == "response":
            last = position
            if event.seq:
                position_of[event.seq] = position
        elif event.type == "assessment":
            named = event.data.get("response_seq")
            target = position_of.get(named) if named else last
            if target is not None:
                assessed[target] = event.data
        elif event.type == "grade" and event.data.get("response_seq") in position_of:
            decided.setdefault(position_of[event.data["response_seq"]], []).extend(
                quality.decisions_from(event.data, event.at))
    return {p: quality.Grading(events[p].seq, assessed.get(p), tuple(decided.get(p, ())))
            for p in {*assessed, *decided}}


def _apply_regrade(overrides: dict[str | None, Override], data: dict[str, Any]) -> None:
    """Later regrades win; `clear` drops an override so the computed verdict shows again."""
    target = data.get("commitment")
    if data.get("action") == "override":
        if target is None:
            overrides.clear()
        # The verdict's reason column holds 200 characters; the full text stays in the event.
        overrides[target] = Override(data["verdict"], f"regraded by {data['by']}: {data['reason']}"[:200])
    elif data.get("action") == "clear":
        if target is None:
            overrides.clear()
        else:
            overrides.pop(target, None)


def judge(commitment: Commitment, calendar: BusinessCalendar, facts: Facts, now: datetime,
          commitment_id: str | None = None) -> Judgement:
    """`now`: until when we know no answer came. It lags the clock while our own mailbox cannot be
    read, so a deadline that passed during our outage stays pending: never missed for our failure."""
    override = facts.overrides.get(commitment_id) or facts.overrides.get(None)
    computed = _held_back(commitment, facts, _computed(commitment, calendar, facts, now))
    if override is None:
        return computed
    return Judgement(override.verdict, deadline=computed.deadline, answered_at=computed.answered_at,
                     delay_seconds=computed.delay_seconds, business_delay_seconds=computed.business_delay_seconds,
                     late=computed.late, reason=override.reason)


def _computed(commitment: Commitment, calendar: BusinessCalendar, facts: Facts, now: datetime) -> Judgement:
    if facts.void_reason is not None:
        return Judgement(VOID, reason=facts.void_reason)
    if facts.start is None:
        return Judgement(PENDING)
    if commitment.is_quality:
        return _graded(commitment, facts)
    due = deadline(commitment.deadline_rule, facts.start, calendar, commitment.ring_cadence_seconds)
    answer = first_counted(commitment, facts.answers)
    if answer is not None:
        return _answered(calendar, facts.start, due, answer)
    if facts.failure is not None:
        return Judgement(MISSED, deadline=due, reason=facts.failure)
    if now >= due:
        return Judgement(MISSED, deadline=due, reason="no_answer")
    return Judgement(PENDING, deadline=due)


def _graded(commitment: Commitment, facts: Facts) -> Judgement:
    """A quality commitment: the first counted answer, graded; nothing to grade yet is pending."""
    answer = first_counted(commitment, facts.answers)
    if answer is None:
        return Judgement(PENDING)
    verdict, reason = quality.verdict(answer.grading, commitment.required_criteria)
    if answer.grading is None:
        reason = "not assessed: an auditor must grade it"
    return Judgement(verdict, answered_at=answer.at, reason=reason)


def _held_back(commitment: Commitment, facts: Facts, computed: Judgement) -> Judgement:
    """`review` while a held message could change a verdict that is not already met (or void: ours)."""
    if computed.verdict in (MET, VOID):
        return computed
    waiting = [h for h in facts.held if h.failure is not None or h.kind in commitment.answer_kinds]
    if not waiting:
        return computed
    return Judgement(REVIEW, deadline=computed.deadline, reason=f"held for review: {waiting[0].reason}"[:200])


def first_counted(commitment: Commitment, answers: Sequence[Answer]) -> Answer | None:
    return next((a for a in answers if a.kind in commitment.answer_kinds), None)


def _answered(calendar: BusinessCalendar, start: datetime, due: datetime, answer: Answer) -> Judgement:
    late = answer.at > due
    return Judgement(
        MISSED if late else MET,
        deadline=due,
        answered_at=answer.at,
        delay_seconds=max(0.0, (answer.at - start).total_seconds()),
        business_delay_seconds=calendar.business_delay(start, answer.at),
        late=late,
    )


def applicable_commitments(config: Config, probe: ProbeRecord) -> dict[str, Commitment]:
    """Commitments of the probe's channel; phone ones only when their `during` fits the probe's purpose."""
    return {
        cid: c for cid, c in config.commitments_for(probe.channel).items()
        if c.during == "any" or c.during == probe.purpose
    }

