"""Simulated museum phone lines for the demo: a small SIP answering service on loopback UDP.

It plays the called party (a UAS) with one behaviour per dialled number:

- `answer`  rings, then an agent picks up after `answer_after` seconds;
- `quick`   an agent picks up after one ring;
- `busy`    486 Busy Here;
- `never`   rings until our CANCEL (200 to the CANCEL, 487 to the INVITE);
- `machine` an answering machine picks up at once (out of opening hours).

It is enough SIP for the demo (the tests use sipp, a real SIP peer): it
answers retransmitted INVITEs, ACKs nothing it does not need to, and
replies 200 to BYE.  It reuses the caller's message parser and builder.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from probes.phone.sip.message import (
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
    parse_uri,
    response_to,
    to_bytes,
)
from probes.phone.sip.sdp import audio_offer

log = logging.getLogger("qualimon.demo")

Address = tuple[str, int]


@dataclass
class PendingCall:
    invite: SipRequest
    peer: Address
    to_tag: str
    last: SipResponse | None = None
    answer: asyncio.TimerHandle | None = None
    done: bool = False


@dataclass
class MuseumLines(asyncio.DatagramProtocol):
    behaviours: Mapping[str, str]          # E.164 number → answer | busy | never | machine
    answer_after: float = 12.0
    calls: dict[str, PendingCall] = field(default_factory=dict)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, peer: Address) -> None:
        try:
            message = parse_message(data)
        except SipParseError:
            return  # not SIP: a real phone line would ignore it too
        if isinstance(message, SipRequest):
            self._request(message, peer)

    def _request(self, request: SipRequest, peer: Address) -> None:
        call_id = request.headers.get("Call-ID") or ""
        if request.method == "INVITE":
            self._invite(call_id, request, peer)
        elif request.method == "CANCEL":
            self._cancel(call_id, request, peer)
        elif request.method == "BYE":
            self._send(response_to(request, 200, "OK"), peer)
            self.calls.pop(call_id, None)
        elif request.method == "ACK":
            pending = self.calls.get(call_id)
            if pending is not None and pending.last is not None and pending.last.status >= 300:
                self.calls.pop(call_id, None)  # a refused or cancelled call is over once acknowledged
        else:
            self._send(response_to(request, 405, "Method Not Allowed"), peer)

    def _invite(self, call_id: str, invite: SipRequest, peer: Address) -> None:
        existing = self.calls.get(call_id)
        if existing is not None:  # a retransmission (or a re-INVITE with credentials): repeat ourselves
            if existing.last is not None:
                self._send(existing.last, peer)
            return
        call = PendingCall(invite, peer, secrets.token_hex(4))
        self.calls[call_id] = call
        self._send(response_to(invite, 100, "Trying"), peer)
        behaviour = self.behaviours.get(_number(invite.uri), "never")
        if behaviour == "busy":
            self._final(call, 486, "Busy Here")
        elif behaviour in ("machine", "quick"):
            self._ring(call)
            call.answer = asyncio.get_running_loop().call_later(1.0 if behaviour == "machine" else 3.0,
                                                                self._pick_up, call)
        elif behaviour == "answer":
            self._ring(call)
            call.answer = asyncio.get_running_loop().call_later(self.answer_after, self._pick_up, call)
        else:
            self._ring(call)

    def _cancel(self, call_id: str, cancel: SipRequest, peer: Address) -> None:
        self._send(response_to(cancel, 200, "OK"), peer)
        call = self.calls.get(call_id)
        if call is not None and not call.done:
            if call.answer is not None:
                call.answer.cancel()
            self._final(call, 487, "Request Terminated")

    def _ring(self, call: PendingCall) -> None:
        call.last = response_to(call.invite, 180, "Ringing", to_tag=call.to_tag)
        self._send(call.last, call.peer)

    def _pick_up(self, call: PendingCall) -> None:
        if call.done:
            return
        local = self.transport.get_extra_info("sockname") if self.transport else ("127.0.0.1", 0)
        ok = response_to(call.invite, 200, "OK", to_tag=call.to_tag)
        headers = ok.headers.replaced("Contact", f"<sip:desk@{local[0]}:{local[1]}>").replaced(
            "Content-Type", "application/sdp")
        call.last = SipResponse(200, "OK", headers, audio_offer(local[0], 40000, 1))
        call.done = True
        self._send(call.last, call.peer)

    def _final(self, call: PendingCall, status: int, reason: str) -> None:
        call.last = response_to(call.invite, status, reason, to_tag=call.to_tag)
        call.done = True
        self._send(call.last, call.peer)

    def _send(self, response: SipResponse, peer: Address) -> None:
        if self.transport is not None:
            self.transport.sendto(to_bytes(response), peer)


def _number(uri: str) -> str:
    try:
        return parse_uri(uri).user or ""
    except Exception:
        return ""


async def start_lines(behaviours: Mapping[str, str], answer_after: float = 12.0,
                      host: str = "127.0.0.1") -> tuple[asyncio.DatagramTransport, int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: MuseumLines(behaviours, answer_after),
                                                       local_addr=(host, 0))
    return transport, transport.get_extra_info("sockname")[1]
