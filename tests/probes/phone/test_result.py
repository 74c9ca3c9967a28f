"""Rings, ring seconds and instants of a CallResult (docs/design.md §2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from probes.phone.result import failed_before_invite, result_from_record, rings_for
from probes.phone.sip.call import CallRecord, TranscriptLine
from probes.phone.sip.outcome import Ending
from probes.phone.sip.timers import SipTimers

WALL = datetime(2026, 5, 12, 8, 0, tzinfo=UTC)


def record(ending: Ending, *, ringing: float | None, answered: float | None, ring_end: float | None, ended: float,
           invite: float = 100.0) -> CallRecord:
    return CallRecord(
        call_id="c", transport="UDP", ending=ending, invite_at=invite, ringing_at=ringing, answered_at=answered,
        ring_end_at=ring_end, ended_at=ended, status_code=200 if answered else None, status_reason=None,
        transcript=(TranscriptLine(invite, "sent", "INVITE ..."),),
    )


@pytest.mark.parametrize(
    ("seconds", "rings"),
    [(0.0, 1), (0.2, 1), (5.0, 1), (5.01, 2), (12.0, 3), (25.0, 5), (31.0, 7)],
)
def test_rings_are_ring_seconds_over_the_cadence_rounded_up_and_at_least_one(seconds: float, rings: int) -> None:
    assert rings_for(seconds, 5.0) == rings


def test_ring_seconds_run_from_the_first_ringing_response_to_the_200() -> None:
    result = result_from_record(
        record(Ending("answered", "answered"), ringing=101.5, answered=113.5, ring_end=113.5, ended=116.6),
        number="+33199001234", wall_at_invite=WALL,
    )
    assert result.post_dial_delay == pytest.approx(1.5)
    assert result.ring_seconds == pytest.approx(12.0)
    assert result.rings == 3
    assert result.first_provisional_ring_at == WALL + timedelta(seconds=1.5)
    assert result.answered_at == WALL + timedelta(seconds=13.5)
    assert result.ended_at == WALL + timedelta(seconds=16.6)


def test_without_a_ringing_response_ring_seconds_run_from_the_invite() -> None:
    result = result_from_record(
        record(Ending("answered", "answered"), ringing=None, answered=104.0, ring_end=104.0, ended=105.0),
        number="+33199001234", wall_at_invite=WALL, ring_cadence=3.0,
    )
    assert (result.post_dial_delay, result.ring_seconds, result.rings) == (None, 4.0, 2)


def test_an_unanswered_call_keeps_how_long_it_rang_but_a_busy_one_has_no_ring_time() -> None:
    no_answer = result_from_record(
        record(Ending("no_answer", "cancelled"), ringing=101.0, answered=None, ring_end=161.0, ended=161.1),
        number="+33199001234", wall_at_invite=WALL,
    )
    busy = result_from_record(
        record(Ending("busy", "486"), ringing=101.0, answered=None, ring_end=None, ended=103.0),
        number="+33199001234", wall_at_invite=WALL,
    )
    assert (no_answer.ring_seconds, no_answer.rings) == (60.0, 12)
    assert (busy.ring_seconds, busy.rings) == (None, None)


def test_it_serialises_to_json_ready_values_with_utc_instants() -> None:
    result = result_from_record(
        record(Ending("answered", "answered"), ringing=101.0, answered=102.0, ring_end=102.0, ended=103.0),
        number="+33199001234", wall_at_invite=WALL,
    )
    data = result.as_dict()
    assert data["invite_at"] == "2026-05-12T08:00:00Z"
    assert data["transcript"][0] == {"at": "2026-05-12T08:00:00Z", "elapsed": 0.0, "direction": "sent", "text": "INVITE ..."}


def test_a_call_that_never_left_is_failed_with_its_reason() -> None:
    result = failed_before_invite("+33199001234", "connection refused", wall=WALL, transport="TCP")
    assert (result.outcome, result.failure_reason, result.transcript) == ("failed", "connection refused", ())


def test_a_naive_anchor_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        result_from_record(
            record(Ending("busy", "486"), ringing=None, answered=None, ring_end=None, ended=101.0),
            number="+33199001234", wall_at_invite=datetime(2026, 5, 12, 8, 0),
        )


def test_timer_intervals_follow_rfc_3261() -> None:
    timers = SipTimers(t1=0.5, t2=4.0)
    assert [timers.invite_retransmit_interval(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 16, 32]
    assert [timers.request_retransmit_interval(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    assert (timers.timer_b, timers.timer_f, timers.timer_d) == (32.0, 32.0, 32.0)
    with pytest.raises(ValueError):
        SipTimers(t1=5.0, t2=4.0)
