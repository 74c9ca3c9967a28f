"""The record of one mystery call: outcome, timings, rings and SIP transcript.

Pure code.  Durations come from the monotonic clock (immune to NTP steps);
UTC instants are the wall-clock reading taken once at the INVITE plus those
durations, so instants and durations always agree.  Rings follow docs/design.md §2:
ring_seconds = t(200) − t(first 180/183), or t(200) − t(INVITE) without a
ringing response, and rings = ceil(ring_seconds / cadence), at least 1.

No credential reaches a result: digest headers are masked in the transcript
and the password is never part of the record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from probes.phone.sip.call import CallRecord
from probes.phone.sip.outcome import Outcome

DEFAULT_RING_CADENCE = 5.0  # seconds, the French ringing cadence (1.5 s on, 3.5 s off)


@dataclass(frozen=True)
class TranscriptEntry:
    at: datetime  # UTC
    elapsed: float  # seconds since the first INVITE
    direction: str  # 'sent' or 'received'
    text: str  # the SIP message, Authorization/Proxy-Authorization masked


@dataclass(frozen=True)
class CallResult:
    number: str
    outcome: Outcome
    detail: str  # how the call ended, in words
    status_code: int | None  # final response to the INVITE, if one came
    status_reason: str | None
    failure_reason: str | None  # set when outcome is 'failed'
    wrong_number: bool  # 404/410/484/604: the published number is wrong
    invite_at: datetime
    first_provisional_ring_at: datetime | None  # first 180/183
    answered_at: datetime | None  # talk start (200 OK)
    ended_at: datetime
    post_dial_delay: float | None  # INVITE -> first 180/183, seconds
    ring_seconds: float | None  # answered: docs/design.md §2; no_answer: until our CANCEL or the 408/480
    rings: int | None
    ring_cadence: float
    call_id: str
    transport: str
    transcript: tuple[TranscriptEntry, ...]

    @property
    def answered(self) -> bool:
        return self.outcome == "answered"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO 8601 UTC instants) for events and evidence."""
        return {
            "number": self.number,
            "outcome": self.outcome,
            "detail": self.detail,
            "status_code": self.status_code,
            "status_reason": self.status_reason,
            "failure_reason": self.failure_reason,
            "wrong_number": self.wrong_number,
            "invite_at": _iso(self.invite_at),
            "first_provisional_ring_at": _iso(self.first_provisional_ring_at),
            "answered_at": _iso(self.answered_at),
            "ended_at": _iso(self.ended_at),
            "post_dial_delay": self.post_dial_delay,
            "ring_seconds": self.ring_seconds,
            "rings": self.rings,
            "ring_cadence": self.ring_cadence,
            "call_id": self.call_id,
            "transport": self.transport,
            "transcript": [
                {"at": _iso(e.at), "elapsed": e.elapsed, "direction": e.direction, "text": e.text}
                for e in self.transcript
            ],
        }


def rings_for(ring_seconds: float, cadence: float = DEFAULT_RING_CADENCE) -> int:
    if cadence <= 0:
        raise ValueError(f"ring cadence must be positive, got {cadence}")
    return max(1, math.ceil(ring_seconds / cadence))


def result_from_record(
    record: CallRecord,
    *,
    number: str,
    wall_at_invite: datetime,
    ring_cadence: float = DEFAULT_RING_CADENCE,
) -> CallResult:
    """Turn the machine's monotonic record into a CallResult anchored at `wall_at_invite` (aware)."""
    if wall_at_invite.tzinfo is None:
        raise ValueError("wall_at_invite must be timezone-aware")
    anchor = wall_at_invite.astimezone(UTC)

    def at(mono: float) -> datetime:
        return anchor + timedelta(seconds=mono - record.invite_at)

    def instant(mono: float | None) -> datetime | None:
        return None if mono is None else at(mono)

    ring_seconds = _ring_seconds(record)
    ending = record.ending
    return CallResult(
        number=number,
        outcome=ending.outcome,
        detail=ending.detail,
        status_code=record.status_code,
        status_reason=record.status_reason,
        failure_reason=ending.failure_reason,
        wrong_number=ending.wrong_number,
        invite_at=anchor,
        first_provisional_ring_at=instant(record.ringing_at),
        answered_at=instant(record.answered_at),
        ended_at=at(record.ended_at),
        post_dial_delay=None if record.ringing_at is None else record.ringing_at - record.invite_at,
        ring_seconds=ring_seconds,
        rings=None if ring_seconds is None else rings_for(ring_seconds, ring_cadence),
        ring_cadence=ring_cadence,
        call_id=record.call_id,
        transport=record.transport,
        transcript=tuple(
            TranscriptEntry(at(line.at), line.at - record.invite_at, line.direction, line.text)
            for line in record.transcript
        ),
    )


def failed_before_invite(
    number: str, reason: str, *, wall: datetime, transport: str, ring_cadence: float = DEFAULT_RING_CADENCE
) -> CallResult:
    """The result of a call that never left: the line to the trunk could not be opened."""
    anchor = wall.astimezone(UTC)
    return CallResult(
        number=number,
        outcome="failed",
        detail=reason,
        status_code=None,
        status_reason=None,
        failure_reason=reason,
        wrong_number=False,
        invite_at=anchor,
        first_provisional_ring_at=None,
        answered_at=None,
        ended_at=anchor,
        post_dial_delay=None,
        ring_seconds=None,
        rings=None,
        ring_cadence=ring_cadence,
        call_id="",
        transport=transport,
        transcript=(),
    )


def _ring_seconds(record: CallRecord) -> float | None:
    if record.ending.outcome not in ("answered", "no_answer") or record.ring_end_at is None:
        return None
    start = record.ringing_at if record.ringing_at is not None else record.invite_at
    return max(0.0, record.ring_end_at - start)


def _iso(instant: datetime | None) -> str | None:
    return None if instant is None else instant.isoformat().replace("+00:00", "Z")
