"""Judging a real incoming call like a mystery call: which site, open or closed, met or missed.

`map_to_site` finds the site by the dialled number (E.164, exact).
`judge_call` applies every phone commitment whose `during` matches (open,
closed, any) at the instant the call arrived.  The opening-hours test is a
callable `is_open(site_id, instant)` so this module does not depend on the
calendar implementation (wire `BusinessCalendar.is_open` through a lambda).

Rules (docs/design.md §2), with one addition that real calls need:
* answered within the threshold → `met`; answered later → `missed`,
  `late=True`, and the real ring time is kept as the delay;
* busy or rejected → `missed` with that reason;
* no answer after ringing at least the threshold → `missed` (`no_answer`);
* no answer, but the caller hung up *before* the threshold → `void`
  (`abandoned`): the service was never given the time it commits to, so
  the call can neither pass nor fail it;
* failed (technical failure, cause unknown) → `void` (`failed`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from probes.calllogs.records import CallOutcome, CallRecord

IsOpen = Callable[[str, datetime], bool]
Verdict = Literal["met", "missed", "void"]


class PhoneCommitment(Protocol):
    """What judging needs from a commitment; `monitor.config.models.Commitment` fits."""

    @property
    def during(self) -> str: ...

    @property
    def ring_cadence_seconds(self) -> float: ...

    @property
    def threshold_seconds(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class CallJudgement:
    site: str
    commitment: str
    opening: Literal["open", "closed"]
    verdict: Verdict
    rings: int
    ring_seconds: float
    delay_seconds: float | None  # ring time of an answered call, None when nobody answered
    late: bool
    reason: str | None  # busy, rejected, no_answer, abandoned, failed; None when met or answered late


def sites_by_number(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{E.164 number: site id} from (site id, configured number) pairs; a number shared by two sites is an error."""
    table: dict[str, str] = {}
    for site_id, number in pairs:
        if number in table and table[number] != site_id:
            raise ValueError(f"{number} belongs to both {table[number]!r} and {site_id!r}")
        table[number] = site_id
    return table


def map_to_site(record: CallRecord, numbers: Mapping[str, str]) -> str | None:
    """The site whose published number was dialled, or None (an outgoing or unrelated call)."""
    return numbers.get(record.dialled)


def judge_call(
    record: CallRecord, site_id: str, is_open: IsOpen, commitments: Mapping[str, PhoneCommitment]
) -> tuple[CallJudgement, ...]:
    """One judgement per phone commitment that applies when the call arrived."""
    opening: Literal["open", "closed"] = "open" if is_open(site_id, record.started_at) else "closed"
    judged = []
    for name, commitment, threshold in applicable(commitments, opening):
        verdict, delay, late, reason = judge_against(record, threshold)
        judged.append(CallJudgement(
            site=site_id, commitment=name, opening=opening, verdict=verdict,
            rings=record.rings(commitment.ring_cadence_seconds), ring_seconds=record.ring_seconds,
            delay_seconds=delay, late=late, reason=reason,
        ))
    return tuple(judged)


def applicable(commitments: Mapping[str, PhoneCommitment],
               opening: Literal["open", "closed"]) -> tuple[tuple[str, PhoneCommitment, float], ...]:
    """The commitments, in config order, that judge a call arriving while the site is `opening`, with thresholds.

    It depends on the opening only: an importer computes it twice, not once per call.
    """
    chosen = []
    for name, commitment in commitments.items():
        threshold = commitment.threshold_seconds
        if threshold is not None and commitment.during in ("any", opening):
            chosen.append((name, commitment, threshold))
    return tuple(chosen)


def judge_against(record: CallRecord, threshold: float) -> tuple[Verdict, float | None, bool, str | None]:
    """(verdict, delay_seconds, late, reason) of one call against one threshold, per the rules above."""
    answered = record.outcome is CallOutcome.answered
    verdict, reason = _verdict(record, threshold)
    return verdict, record.ring_seconds if answered else None, answered and verdict == "missed", reason


def _verdict(record: CallRecord, threshold: float) -> tuple[Verdict, str | None]:
    outcome = record.outcome
    if outcome is CallOutcome.answered:
        return ("met", None) if record.ring_seconds <= threshold else ("missed", None)
    if outcome in (CallOutcome.busy, CallOutcome.rejected):
        return "missed", outcome.value
    if outcome is CallOutcome.no_answer:
        return ("missed", "no_answer") if record.ring_seconds >= threshold else ("void", "abandoned")
    return "void", "failed"
