"""How a mystery call ended, in the terms of docs/design.md §2 and §6.

Pure mapping from what the SIP exchange produced (a final status code, our
CANCEL, a timer, a refused challenge, a network error) to the outcome that
the verdicts use: `answered`, `busy`, `no_answer`, `rejected` or `failed`.
`failed` means the monitor's own side (trunk, credentials, network) broke,
so the runner turns it into a `void` verdict, never a `missed` one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["answered", "busy", "no_answer", "rejected", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("answered", "busy", "no_answer", "rejected", "failed")

BUSY_CODES = frozenset({486, 600})
NO_ANSWER_CODES = frozenset({408, 480})
# The published number does not lead anywhere: an operator event, not the site's fault.
WRONG_NUMBER_CODES = frozenset({404, 410, 484, 604})
RINGING_CODES = frozenset({180, 183})


@dataclass(frozen=True)
class Ending:
    """The classification of one call: outcome, wrong-number flag and, for `failed`, why."""

    outcome: Outcome
    detail: str
    wrong_number: bool = False
    failure_reason: str | None = None


def ending_for_status(status: int, reason: str, *, cancelled_by_us: bool) -> Ending:
    """Classify a final response to our INVITE."""
    said = f"{status} {reason}".strip()
    if 200 <= status < 300:
        return Ending("answered", f"answered ({said})")
    if status in BUSY_CODES:
        return Ending("busy", f"busy ({said})")
    if status in NO_ANSWER_CODES:
        return Ending("no_answer", f"the callee's side gave up ({said})")
    if status == 487 and cancelled_by_us:
        return Ending("no_answer", f"we cancelled after the maximum ring time ({said})")
    if status in WRONG_NUMBER_CODES:
        return Ending("rejected", f"the number does not exist ({said})", wrong_number=True)
    if status >= 600:
        return Ending("rejected", f"declined ({said})")
    return failed(_failure_for(status, said))


def _failure_for(status: int, said: str) -> str:
    if status >= 500:
        return f"our SIP trunk failed the call ({said})"
    if status in (401, 407):
        return f"our SIP trunk refused our credentials ({said})"
    if status == 487:
        return f"the network ended the call before any answer ({said})"
    if 300 <= status < 400:
        return f"the call was redirected, which mystery calls do not follow ({said})"
    return f"our SIP trunk refused the call ({said})"


def failed(reason: str) -> Ending:
    return Ending("failed", reason, failure_reason=reason)
