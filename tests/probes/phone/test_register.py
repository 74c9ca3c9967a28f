"""REGISTER and its refresh, on a fake clock."""

from __future__ import annotations

from probes.phone.sip.message import SipRequest, cseq_of
from probes.phone.sip.register import Registration, RegistrationPlan, RegistrationState
from probes.phone.sip.timers import SipTimers
from tests.probes.phone.peer import PASSWORD, counter_tokens, reply


def registration(expires: int = 600) -> Registration:
    plan = RegistrationPlan(
        registrar_uri="sip:trunk.example.net",
        aor="sip:+33199001000@trunk.example.net",
        contact="<sip:33199001000@127.0.0.1:5062>",
        via_sent_by="127.0.0.1:5062",
        transport="UDP",
        expires=expires,
        username="33199001000",
        password=PASSWORD,
    )
    return Registration(plan, call_id="reg-1@test", timers=SipTimers(t1=0.5), token=counter_tokens())


def test_it_registers_after_a_challenge_and_refreshes_at_half_the_granted_lifetime() -> None:
    reg = registration()
    (first,) = reg.start(0.0)
    assert isinstance(first, SipRequest) and first.headers.get("Expires") == "600"
    challenge = 'Digest realm="trunk.example.net", nonce="n1", qop="auth"'
    (second,) = reg.receive(reply(first, 401, "Unauthorized", ("WWW-Authenticate", challenge)), 0.1)
    assert isinstance(second, SipRequest) and cseq_of(second) == (2, "REGISTER")
    assert 'uri="sip:trunk.example.net"' in (second.headers.get("Authorization") or "")
    granted = reply(second, 200, "OK", ("Contact", "<sip:33199001000@127.0.0.1:5062>;expires=120"))
    assert reg.receive(granted, 0.2) == []
    assert (reg.state, reg.granted_expires, reg.next_deadline()) == (RegistrationState.REGISTERED, 120, 60.2)
    (refresh,) = reg.tick(60.2)
    assert isinstance(refresh, SipRequest) and refresh.headers.get("Call-ID") == "reg-1@test"
    assert cseq_of(refresh) == (3, "REGISTER")


def test_it_raises_its_expiry_to_the_registrars_minimum() -> None:
    reg = registration(expires=30)
    (first,) = reg.start(0.0)
    (second,) = reg.receive(reply(first, 423, "Interval Too Brief", ("Min-Expires", "300")), 0.1)
    assert isinstance(second, SipRequest) and second.headers.get("Expires") == "300"


def test_a_refused_registration_says_why_and_retries_later() -> None:
    reg = registration()
    (first,) = reg.start(0.0)
    reg.receive(reply(first, 403, "Forbidden"), 0.1)
    assert reg.state is RegistrationState.FAILED and reg.error == "registration refused (403 Forbidden)"
    assert reg.next_deadline() == 0.1 + 32.0


def test_an_unanswered_register_is_retransmitted_then_fails_with_timer_f() -> None:
    reg = registration()
    reg.start(0.0)
    sent_at = []
    while (deadline := reg.next_deadline()) is not None and deadline <= 32.0:
        if reg.tick(deadline):
            sent_at.append(deadline)
    assert sent_at[:5] == [0.5, 1.5, 3.5, 7.5, 11.5]  # Timer E doubles up to T2 = 4 s
    assert reg.state is RegistrationState.FAILED and "did not answer" in (reg.error or "")
