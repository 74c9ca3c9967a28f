"""Quality verdicts from events (pure): the machine proposes, auditors decide.

A `quality` commitment (docs/design.md §2) grades the first counted answer of
a probe on named criteria.  Two kinds of events feed it:

- `assessment`: what the channel's grader made of one answer (written with
  the `response` event it grades, just after it): per criterion `met`,
  `certain`, the evidence `span` and a `reason`;
- `grade`: an auditor's decisions on criteria of one answer
  (`response_seq`), with who (`by`) and why (`reason`).  The latest
  decision on a criterion wins; a second decision on a criterion an auditor
  already decided must say why.

A criterion stands as the auditor decided it, else as the machine assessed
it.  The verdict is `met` when every required criterion holds, `missed`
when one fails for sure (an auditor said so, or the machine is certain), and
`pending` while a required criterion is uncertain or not assessed and no
auditor has decided it (`reason` says which: they are "to review").  The
score is the share of the graded criteria (required and optional) met.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MET, MISSED, REVIEW = "met", "missed", "review"  # verdict values (monitor.verdicts imports this module)
DECISIONS = {"met": True, "not_met": False}
TO_REVIEW, CONFIRMED = "to_review", "confirmed"
REVIEW_STATUSES = (TO_REVIEW, CONFIRMED)
MACHINE, AUDITOR, NOBODY = "machine", "auditor", "none"


class GradeRefused(ValueError):
    """An auditor's grade that cannot be recorded as given; the message says what to send instead."""


class NothingToGrade(GradeRefused):
    """The probe has no answer to grade (yet)."""


@dataclass(frozen=True)
class Decision:
    """An auditor's decision on one criterion of one answer."""

    criterion: str
    met: bool
    by: str
    reason: str | None
    at: datetime | None = None


@dataclass(frozen=True)
class Grading:
    """One answer as graded: the machine's assessment (None if never assessed) and the auditors' decisions."""

    response_seq: int
    assessment: Mapping[str, Any] | None = None
    decisions: tuple[Decision, ...] = ()      # oldest first

    def latest(self, criterion: str) -> Decision | None:
        found = [d for d in self.decisions if d.criterion == criterion]
        return found[-1] if found else None

    def machine(self, criterion: str) -> Mapping[str, Any] | None:
        criteria = (self.assessment or {}).get("criteria") or {}
        value = criteria.get(criterion)
        return value if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Standing:
    """How one criterion stands now."""

    name: str
    met: bool | None           # None: neither assessed nor decided
    certain: bool              # an auditor decided, or the machine is sure
    source: str                # machine | auditor | none
    reason: str
    span: Mapping[str, Any] | None = None
    machine_met: bool | None = None
    decided_by: str | None = None
    decisions: tuple[Decision, ...] = field(default_factory=tuple)
    machine_reason: str | None = None

    def public(self) -> dict[str, Any]:
        return {"met": self.met, "certain": self.certain, "source": self.source, "reason": self.reason,
                "span": dict(self.span) if self.span else None, "machine": self.machine_met,
                "machine_reason": self.machine_reason, "decided_by": self.decided_by,
                "decisions": [{"met": d.met, "by": d.by, "reason": d.reason,
                               "at": d.at.isoformat().replace("+00:00", "Z") if d.at else None}
                              for d in self.decisions]}


def standing(grading: Grading, criterion: str) -> Standing:
    decided = grading.latest(criterion)
    history = tuple(d for d in grading.decisions if d.criterion == criterion)
    machine = grading.machine(criterion)
    machine_met = bool(machine["met"]) if machine is not None and "met" in machine else None
    span = machine.get("span") if machine is not None else None
    if decided is not None:
        why = decided.reason or ("confirms the machine" if decided.met == machine_met else "no reason given")
        return Standing(criterion, decided.met, True, AUDITOR, f"decided by {decided.by}: {why}",
                        span if decided.met else None, machine_met, decided.by, history,
                        str(machine.get("reason", "")) if machine is not None else None)
    if machine is not None and machine_met is not None:
        reason = str(machine.get("reason", ""))
        return Standing(criterion, machine_met, bool(machine.get("certain", False)), MACHINE, reason, span,
                        machine_met, machine_reason=reason)
    return Standing(criterion, None, False, NOBODY, "not assessed: an auditor must grade it")


def standings(grading: Grading, criteria: Iterable[str]) -> list[Standing]:
    return [standing(grading, name) for name in criteria]


def verdict(grading: Grading | None, required: Sequence[str]) -> tuple[str, str | None]:
    """(met | missed | review, reason) of an answer against the required criteria: `review` while an
    auditor must decide (never assessed, or a required criterion the machine is unsure of)."""
    if grading is None:
        return REVIEW, None
    now = standings(grading, required)
    failed = [s.name for s in now if s.met is False and s.certain]
    if failed:
        return MISSED, _reason("quality not met: ", failed)
    open_ = [s.name for s in now if s.met is None or not s.certain]
    if open_:
        return REVIEW, _reason("to review: ", open_)
    return MET, None


def _reason(prefix: str, names: Sequence[str]) -> str:
    return (prefix + ", ".join(names))[:200]  # the verdict's reason column holds 200 characters


def score(grading: Grading, graded: Sequence[str]) -> float | None:
    """Share of the graded criteria met, counting only those that stand (assessed or decided)."""
    known = [s for s in standings(grading, graded) if s.met is not None]
    return round(sum(bool(s.met) for s in known) / len(known), 4) if known else None


def review_status(grading: Grading, criteria: Sequence[str]) -> str:
    """`to_review` while a criterion is uncertain and undecided, or while no auditor has looked at the answer."""
    now = standings(grading, criteria)
    if any(s.source != AUDITOR and not s.certain for s in now) or not grading.decisions:
        return TO_REVIEW
    return CONFIRMED


def uncertain(grading: Grading, criteria: Sequence[str]) -> list[str]:
    return [s.name for s in standings(grading, criteria) if not s.certain]


def check_decisions(grading: Grading, decisions: Mapping[str, bool], reason: str | None,
                    known: Sequence[str]) -> None:
    """Refuse an unknown criterion, an empty request, or a second decision without a reason."""
    if not decisions:
        raise GradeRefused(f"name at least one criterion: {', '.join(known)}, each met or not_met")
    unknown = [name for name in decisions if name not in known]
    if unknown:
        raise GradeRefused(f"unknown criterion {unknown[0]!r}; known: {', '.join(known)}")
    again = [name for name in decisions if grading.latest(name) is not None]
    if again and not (reason and reason.strip()):
        first = grading.latest(again[0])
        assert first is not None
        raise GradeRefused(f"{again[0]} was already decided by {first.by}; a second decision must give a reason")


def decisions_from(data: Mapping[str, Any], at: datetime | None) -> list[Decision]:
    """The decisions of one `grade` event."""
    by = str(data.get("by", "?"))
    reason = data.get("reason")
    return [Decision(name, value == "met", by, reason if isinstance(reason, str) else None, at)
            for name, value in (data.get("decisions") or {}).items() if value in DECISIONS]
