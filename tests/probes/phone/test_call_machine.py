"""The sans-IO call machine, driven message by message on a fake clock (no sockets, no sleeping)."""

from __future__ import annotations

from datetime import UTC

import pytest

from probes.phone.result import result_from_record
from probes.phone.sip.call import CallState, OutgoingCall
from probes.phone.sip.message import (
    SipRequest,
    cseq_of,
    parse_message,
    to_bytes,
    top_via_branch,
)
from tests.probes.phone.peer import (
    NUMBER,
    PASSWORD,
    bye_from_callee,
    methods,
    new_call,
    reply,
)

CHALLENGE = 'Digest realm="example.net", nonce="abc123", qop="auth", algorithm=SHA-256'


def started(call: OutgoingCall, now: float = 0.0) -> SipRequest:
    (invite,) = call.start(now)
    assert isinstance(invite, SipRequest)
    return invite


def answered_call(hold: float = 3.0) -> tuple[OutgoingCall, SipRequest]:
    call = new_call(hold_seconds=hold)
    invite = started(call)
    call.receive(reply(invite, 180, "Ringing"), 1.0)
    call.receive(reply(invite, 200, "OK"), 13.0)
    return call, invite


def run_timers(call: OutgoingCall, until: float) -> list[tuple[float, str]]:
    """Tick the machine at each of its deadlines up to `until`; what it sent, and when."""
    sent: list[tuple[float, str]] = []
    while (deadline := call.next_deadline()) is not None and deadline <= until:
        sent += [(deadline, m) for m in methods(call.tick(deadline))]
    return sent


# ---------------------------------------------------------------- INVITE


def test_it_sends_an_invite_with_an_sdp_offer_to_the_number_at_the_proxy() -> None:
    invite = started(new_call())
    assert invite.uri == f"sip:{NUMBER}@trunk.example.net;user=phone"
    assert invite.headers.get("Content-Type") == "application/sdp"
    assert b"RTP/AVP 8 0 101" in invite.body and b"PCMA/8000" in invite.body and b"PCMU/8000" in invite.body
    assert cseq_of(invite) == (1, "INVITE")
    assert (top_via_branch(invite) or "").startswith("z9hG4bK")
    again = parse_message(to_bytes(invite))
    assert (again.headers.without("Content-Length"), again.body) == (invite.headers, invite.body)


def test_it_retransmits_the_invite_over_udp_at_doubling_intervals_then_gives_up_with_timer_b() -> None:
    call = new_call(t1=0.5)
    started(call)
    sent = run_timers(call, until=40.0)
    assert [t for t, m in sent if m == "INVITE"] == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert call.done
    record = call.record()
    assert record.ending.outcome == "no_answer"
    assert "Timer B" in record.ending.detail
    assert record.ended_at == 32.0


def test_it_does_not_retransmit_over_tcp_but_still_applies_timer_b() -> None:
    call = new_call(t1=0.5, transport="TCP")
    started(call)
    assert run_timers(call, until=40.0) == []
    assert call.done and call.record().ended_at == 32.0


def test_it_stops_retransmitting_once_the_trunk_says_trying() -> None:
    call = new_call(t1=0.5)
    invite = started(call)
    call.receive(reply(invite, 100, "Trying"), 0.2)
    assert call.state is CallState.PROCEEDING
    assert "INVITE" not in [m for _, m in run_timers(call, until=59.0)]


# -------------------------------------------------------------- answered


def test_it_acks_a_200_to_its_contact_through_the_record_route_set_then_byes_after_the_hold_time() -> None:
    call = new_call(hold_seconds=3.0)
    invite = started(call)
    call.receive(reply(invite, 180, "Ringing"), 2.0)
    ok = reply(
        invite, 200, "OK",
        ("Contact", "<sip:desk@192.0.2.10:5070>"),
        ("Record-Route", "<sip:p2.example.net;lr>, <sip:p1.example.net;lr>"),
    )
    (ack,) = call.receive(ok, 14.0)
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.uri == "sip:desk@192.0.2.10:5070"
    assert ack.headers.get_all("Route") == ["<sip:p1.example.net;lr>", "<sip:p2.example.net;lr>"]
    assert cseq_of(ack) == (1, "ACK")
    assert top_via_branch(ack) != top_via_branch(invite)  # ACK for 2xx is its own transaction
    assert "tag=museum1" in (ack.headers.get("To") or "")
    assert call.next_deadline() == 17.0
    (bye,) = call.tick(17.0)
    assert isinstance(bye, SipRequest) and bye.method == "BYE" and cseq_of(bye) == (2, "BYE")
    assert bye.uri == "sip:desk@192.0.2.10:5070" and bye.headers.get_all("Route") == ack.headers.get_all("Route")
    call.receive(reply(bye, 200, "OK"), 17.01)
    record = call.record()
    assert record.ending.outcome == "answered"
    assert (record.ringing_at, record.answered_at, record.ended_at) == (2.0, 14.0, 17.01)


def test_it_puts_a_strict_router_in_the_request_uri_and_the_contact_last() -> None:
    call = new_call()
    invite = started(call)
    ok = reply(invite, 200, "OK", ("Contact", "<sip:desk@192.0.2.10>"), ("Record-Route", "<sip:strict.example.net>"))
    (ack,) = call.receive(ok, 1.0)
    assert isinstance(ack, SipRequest)
    assert ack.uri == "sip:strict.example.net"
    assert ack.headers.get_all("Route") == ["<sip:desk@192.0.2.10>"]


def test_it_acks_again_when_the_callee_retransmits_its_200() -> None:
    call, invite = answered_call()
    (again,) = call.receive(reply(invite, 200, "OK"), 13.5)
    assert methods([again]) == ["ACK"]


def test_it_ends_answered_when_the_callee_hangs_up_during_the_hold() -> None:
    call, invite = answered_call()
    (ok,) = call.receive(bye_from_callee(invite), 14.0)
    assert methods([ok]) == ["200"]
    assert call.done and call.record().ending.outcome == "answered"
    assert "callee hung up" in call.record().ending.detail


def test_it_still_counts_the_call_answered_when_nobody_answers_its_bye() -> None:
    call, _ = answered_call(hold=1.0)
    sent = run_timers(call, until=100.0)
    assert [m for _, m in sent].count("BYE") > 1  # retransmitted by Timer E
    assert call.done and call.record().ending.outcome == "answered"


def test_it_hangs_up_at_once_with_a_zero_hold_time() -> None:
    call = new_call(hold_seconds=0.0)
    invite = started(call)
    assert methods(call.receive(reply(invite, 200, "OK"), 1.0)) == ["ACK", "BYE"]


# --------------------------------------------------------------- CANCEL


def test_it_cancels_after_the_maximum_ring_time_counted_from_the_first_ring() -> None:
    call = new_call(max_ring_seconds=25.0)
    invite = started(call)
    call.receive(reply(invite, 100, "Trying"), 0.1)
    call.receive(reply(invite, 180, "Ringing"), 2.0)
    assert call.next_deadline() == 27.0
    (cancel,) = call.tick(27.0)
    assert isinstance(cancel, SipRequest) and cancel.method == "CANCEL"
    assert cancel.uri == invite.uri and cseq_of(cancel) == (1, "CANCEL")
    assert top_via_branch(cancel) == top_via_branch(invite)
    assert call.receive(reply(cancel, 200, "OK"), 27.01) == []
    (ack,) = call.receive(reply(invite, 487, "Request Terminated"), 27.02)
    assert methods([ack]) == ["ACK"] and top_via_branch(ack) == top_via_branch(invite)
    record = call.record()
    assert record.ending.outcome == "no_answer"
    assert record.status_code == 487
    assert record.ring_end_at == 27.0


def test_it_waits_for_a_provisional_response_before_cancelling() -> None:
    call = new_call(max_ring_seconds=1.0, t1=0.5)
    invite = started(call)
    run_timers(call, until=1.0)
    assert call.state is CallState.CALLING
    (cancel,) = call.receive(reply(invite, 100, "Trying"), 1.2)
    assert methods([cancel]) == ["CANCEL"]


def test_it_acks_and_byes_a_200_that_crosses_its_cancel_and_reports_the_call_answered() -> None:
    call = new_call(max_ring_seconds=5.0)
    invite = started(call)
    call.receive(reply(invite, 180, "Ringing"), 1.0)
    (cancel,) = call.tick(6.0)
    ack, bye = call.receive(reply(invite, 200, "OK"), 6.005)
    assert methods([ack, bye]) == ["ACK", "BYE"]
    call.receive(reply(cancel, 200, "OK"), 6.006)
    call.receive(reply(bye, 200, "OK"), 6.01)
    record = call.record()
    assert record.ending.outcome == "answered"
    assert "crossed" in record.ending.detail
    assert record.answered_at == 6.005


def test_it_gives_up_waiting_for_the_487_sixty_four_t1_after_its_cancel() -> None:
    call = new_call(max_ring_seconds=5.0, t1=0.5)
    invite = started(call)
    call.receive(reply(invite, 180, "Ringing"), 0.5)
    call.tick(5.5)
    run_timers(call, until=100.0)
    assert call.done
    assert call.record().ending.outcome == "no_answer"
    assert call.record().ended_at == 5.5 + 32.0


# ------------------------------------------------------------ outcomes


@pytest.mark.parametrize(
    ("status", "reason", "outcome", "wrong_number"),
    [
        (486, "Busy Here", "busy", False),
        (600, "Busy Everywhere", "busy", False),
        (480, "Temporarily Unavailable", "no_answer", False),
        (408, "Request Timeout", "no_answer", False),
        (603, "Decline", "rejected", False),
        (404, "Not Found", "rejected", True),
        (484, "Address Incomplete", "rejected", True),
        (503, "Service Unavailable", "failed", False),
        (403, "Forbidden", "failed", False),
    ],
)
def test_it_classifies_each_final_response(status: int, reason: str, outcome: str, wrong_number: bool) -> None:
    call = new_call()
    invite = started(call)
    (ack,) = call.receive(reply(invite, status, reason), 3.0)
    assert methods([ack]) == ["ACK"]
    assert top_via_branch(ack) == top_via_branch(invite)  # non-2xx ACK belongs to the INVITE transaction
    assert "tag=museum1" in (ack.headers.get("To") or "")
    record = call.record()
    assert (record.ending.outcome, record.ending.wrong_number) == (outcome, wrong_number)
    assert record.status_code == status
    assert (record.ending.failure_reason is not None) == (outcome == "failed")


def test_it_acks_a_retransmitted_final_response_again() -> None:
    call = new_call()
    invite = started(call)
    call.receive(reply(invite, 486, "Busy Here"), 1.0)
    assert call.done
    acks = call.final_acks()
    assert list(acks) == [1] and acks[1].method == "ACK"


def test_it_fails_the_call_when_the_trunk_is_unreachable() -> None:
    call = new_call()
    started(call)
    call.transport_failed("connection refused", 0.01)
    record = call.record()
    assert record.ending.outcome == "failed"
    assert "unreachable" in (record.ending.failure_reason or "")


def test_a_broken_connection_after_the_answer_keeps_the_call_answered() -> None:
    call, _ = answered_call()
    call.transport_failed("connection reset", 14.0)
    assert call.record().ending.outcome == "answered"


def test_abandoning_a_ringing_call_cancels_it() -> None:
    call = new_call()
    invite = started(call)
    call.receive(reply(invite, 180, "Ringing"), 1.0)
    assert methods(call.abandon(2.0)) == ["CANCEL"]
    assert call.record().ending.outcome == "failed"


# ----------------------------------------------------------------- auth


def test_it_answers_a_401_with_credentials_in_a_new_invite_with_the_next_cseq() -> None:
    call = new_call()
    invite = started(call)
    ack, second = call.receive(reply(invite, 401, "Unauthorized", ("WWW-Authenticate", CHALLENGE)), 0.05)
    assert methods([ack, second]) == ["ACK", "INVITE"]
    assert isinstance(second, SipRequest)
    assert cseq_of(second) == (2, "INVITE")
    assert top_via_branch(second) != top_via_branch(invite)
    assert second.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert second.headers.get("From") == invite.headers.get("From")
    authorization = second.headers.get("Authorization") or ""
    assert 'username="33199001000"' in authorization and "algorithm=SHA-256" in authorization
    assert "qop=auth" in authorization and "nc=00000001" in authorization
    call.receive(reply(second, 200, "OK"), 1.0)
    assert call.state is CallState.CONFIRMED


def test_it_answers_a_407_with_proxy_authorization() -> None:
    call = new_call()
    invite = started(call)
    challenge = 'Digest realm="trunk.example.net", nonce="n1"'
    _, second = call.receive(reply(invite, 407, "Proxy Authentication Required", ("Proxy-Authenticate", challenge)), 0.05)
    assert isinstance(second, SipRequest)
    assert "algorithm=MD5" in (second.headers.get("Proxy-Authorization") or "")
    assert second.headers.get("Authorization") is None


def test_a_second_challenge_for_the_same_realm_means_the_trunk_refused_our_credentials() -> None:
    call = new_call()
    invite = started(call)
    _, second = call.receive(reply(invite, 401, "Unauthorized", ("WWW-Authenticate", CHALLENGE)), 0.05)
    (ack,) = call.receive(reply(second, 401, "Unauthorized", ("WWW-Authenticate", CHALLENGE)), 0.1)
    assert methods([ack]) == ["ACK"]
    record = call.record()
    assert record.ending.outcome == "failed"
    assert "refused our credentials" in (record.ending.failure_reason or "")


def test_a_stale_nonce_is_answered_again() -> None:
    call = new_call()
    invite = started(call)
    _, second = call.receive(reply(invite, 401, "Unauthorized", ("WWW-Authenticate", CHALLENGE)), 0.05)
    stale = CHALLENGE.replace("abc123", "fresh") + ", stale=true"
    assert methods(call.receive(reply(second, 401, "Unauthorized", ("WWW-Authenticate", stale)), 0.1)) == ["ACK", "INVITE"]


def test_a_challenge_without_configured_credentials_fails_the_call() -> None:
    call = new_call(username=None, password=None)
    invite = started(call)
    call.receive(reply(invite, 401, "Unauthorized", ("WWW-Authenticate", CHALLENGE)), 0.05)
    assert "no username/password" in (call.record().ending.failure_reason or "")


def test_the_transcript_masks_credentials_and_never_holds_the_password() -> None:
    call = new_call()
    invite = started(call)
    _, second = call.receive(reply(invite, 401, "Unauthorized", ("WWW-Authenticate", CHALLENGE)), 0.05)
    call.receive(reply(second, 486, "Busy Here"), 0.2)
    record = call.record()
    texts = [line.text for line in record.transcript]
    assert any("Authorization: <redacted>" in t for t in texts)
    response = (second.headers.get("Authorization") or "").split('response="')[1].split('"')[0]
    result = result_from_record(record, number=NUMBER, wall_at_invite=_wall())
    for text in (repr(record), repr(result), repr(result.as_dict()), repr(call.plan)):
        assert PASSWORD not in text
        assert response not in text


def _wall():
    from datetime import datetime

    return datetime(2026, 5, 12, 8, 0, tzinfo=UTC)
