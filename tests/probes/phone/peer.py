"""A scripted far end for driving the sans-IO call machine in tests: builds its responses."""

from __future__ import annotations

from probes.phone.sip.call import CallPlan, OutgoingCall
from probes.phone.sip.message import (
    Headers,
    SipMessage,
    SipRequest,
    SipResponse,
    response_to,
)
from probes.phone.sip.sdp import audio_offer
from probes.phone.sip.timers import SipTimers

NUMBER = "+33199001234"
PASSWORD = "correct-horse-battery"


def plan(**changes: object) -> CallPlan:
    base: dict[str, object] = dict(
        request_uri=f"sip:{NUMBER}@trunk.example.net;user=phone",
        to=f"<sip:{NUMBER}@trunk.example.net;user=phone>",
        from_uri="sip:+33199001000@trunk.example.net",
        contact="<sip:33199001000@127.0.0.1:5062>",
        via_sent_by="127.0.0.1:5062",
        transport="UDP",
        max_ring_seconds=60.0,
        hold_seconds=3.0,
        sdp=audio_offer("127.0.0.1", 20000, 1),
        username="33199001000",
        password=PASSWORD,
    )
    base.update(changes)
    return CallPlan(**base)  # type: ignore[arg-type]


def counter_tokens():
    """Deterministic tokens: tags, branches and cnonces that differ and can be read."""
    count = 0

    def token(nbytes: int) -> str:
        nonlocal count
        count += 1
        return f"{count:0{2 * nbytes}x}"

    return token


def new_call(t1: float = 0.5, **changes: object) -> OutgoingCall:
    return OutgoingCall(plan(**changes), call_id="call-1@test", timers=SipTimers(t1=t1), token=counter_tokens())


def reply(request: SipMessage, status: int, reason: str, *headers: tuple[str, str], tag: str = "museum1") -> SipResponse:
    assert isinstance(request, SipRequest)
    base = response_to(request, status, reason, to_tag=tag if status > 100 else None)
    return SipResponse(status, reason, Headers(base.headers.items + headers))


def bye_from_callee(invite: SipMessage, tag: str = "museum1") -> SipRequest:
    assert isinstance(invite, SipRequest)
    h = invite.headers
    return SipRequest(
        "BYE",
        "sip:33199001000@127.0.0.1:5062",
        Headers(
            (
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKcallee"),
                ("From", f"{h.get('To')};tag={tag}"),
                ("To", h.get("From") or ""),
                ("Call-ID", h.get("Call-ID") or ""),
                ("CSeq", "1 BYE"),
            )
        ),
    )


def methods(messages: list[SipMessage]) -> list[str]:
    return [m.method if isinstance(m, SipRequest) else str(m.status) for m in messages]
