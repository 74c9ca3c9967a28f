"""One outgoing call as a sans-IO state machine (RFC 3261 UAC).

Messages and timer ticks go in (`receive`, `tick`, `transport_failed`, each
with the current monotonic instant); messages to send come out, and
`next_deadline()` says when to tick next.  Nothing here reads a clock, a
socket or a random source it was not given, so every path is tested with a
fake clock.

The call: INVITE with an SDP offer, retransmitted by Timer A over UDP and
abandoned by Timer B; 401/407 answered once per realm with digest
credentials (CSeq+1, new branch); 180/183 start the ring count; after the
maximum ring time a CANCEL (we expect 200 to it and 487 to the INVITE); a
2xx is ACKed to its Contact through the Record-Route set, held for the hold
time and ended with a BYE; a 2xx that crosses our CANCEL is ACKed and BYEd
at once and counts as answered.  Every message is kept, credentials masked,
as the call's transcript.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from probes.phone.sip.credentials import REFUSED, Credentials
from probes.phone.sip.message import (
    Headers,
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    cseq_of,
    parse_name_addr,
    parse_params,
    response_to,
    to_bytes,
    top_via_branch,
)
from probes.phone.sip.outcome import RINGING_CODES, Ending, ending_for_status, failed
from probes.phone.sip.timers import RFC3261_TIMERS, SipTimers

MASK = "<redacted>"
_CREDENTIAL_LINE = re.compile(r"^((?:Proxy-)?Authorization)[ \t]*:.*$", re.IGNORECASE | re.MULTILINE)


def redact_text(text: str) -> str:
    """Mask credential headers in a serialised message; a digest response must not reach evidence."""
    return _CREDENTIAL_LINE.sub(lambda m: f"{m.group(1)}: {MASK}", text)


def new_token(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


@dataclass(frozen=True)
class CallPlan:
    """Everything the call needs to know, resolved by the transport layer."""

    request_uri: str
    to: str  # To header value, e.g. '<sip:+33199001234@trunk.example.net>'
    from_uri: str
    contact: str  # Contact header value, our address as the transport sees it
    via_sent_by: str  # 'host:port' for our Via
    transport: str  # 'UDP' or 'TCP'
    max_ring_seconds: float
    hold_seconds: float
    sdp: bytes
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    user_agent: str = "qualimon"

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"


class CallState(Enum):
    CALLING = "calling"  # INVITE sent, nothing heard
    PROCEEDING = "proceeding"  # a provisional response came
    CANCELLING = "cancelling"  # our CANCEL sent, waiting for the INVITE's final response
    CONFIRMED = "confirmed"  # answered, ACKed, holding the line
    TERMINATING = "terminating"  # our BYE sent
    DONE = "done"


@dataclass(frozen=True)
class TranscriptLine:
    at: float  # monotonic instant
    direction: str  # 'sent' or 'received'
    text: str  # the message, credentials masked


@dataclass(frozen=True)
class CallRecord:
    """What the machine observed, on the monotonic clock; `probes.phone.result` turns it into a CallResult."""

    call_id: str
    transport: str
    ending: Ending
    invite_at: float
    ringing_at: float | None
    answered_at: float | None
    ring_end_at: float | None
    ended_at: float
    status_code: int | None
    status_reason: str | None
    transcript: tuple[TranscriptLine, ...]


@dataclass
class _Dialog:
    remote_tag: str
    to: str
    remote_target: str
    route_set: list[str]


class OutgoingCall:
    """The UAC side of one mystery call."""

    def __init__(
        self,
        plan: CallPlan,
        *,
        call_id: str,
        timers: SipTimers = RFC3261_TIMERS,
        token: Callable[[int], str] = new_token,
    ) -> None:
        self.plan = plan
        self.call_id = call_id
        self.timers = timers
        self._token = token
        self._from_tag = token(6)
        self._credentials = Credentials(plan.username, plan.password, token)
        self.state = CallState.CALLING
        self._cseq = 0
        self._invite: SipRequest | None = None
        self._invite_branch = ""
        self._invite_final_ack: SipRequest | None = None
        self._old_acks: dict[str, SipRequest] = {}  # branch of a challenged INVITE -> its ACK
        self._cancel: SipRequest | None = None
        self._cancel_pending = False
        self._crossed = False  # a 200 OK came after our CANCEL had left
        self._bye: SipRequest | None = None
        self._bye_branch = ""
        self._bye_challenged = False
        self._dialog: _Dialog | None = None
        self._ack_2xx: SipRequest | None = None
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._transcript: list[TranscriptLine] = []
        self._heard_from_peer = False
        self._ending: Ending | None = None
        self._status: tuple[int, str] | None = None
        self._marks: dict[str, float] = {}

    # ------------------------------------------------------------------ inputs

    def start(self, now: float) -> list[SipMessage]:
        self._marks["invite"] = now
        self._deadlines["ring"] = now + self.plan.max_ring_seconds
        return self._send_invite(now)

    def receive(self, message: SipMessage, now: float) -> list[SipMessage]:
        if self.state is CallState.DONE:
            return []  # the transport answers late retransmissions from `final_acks()`
        self._log("received", message, now)
        try:
            if isinstance(message, SipResponse):
                return self._on_response(message, now)
            return self._on_request(message, now)
        except SipParseError:
            return []  # a malformed message from the peer is dropped, as a proxy would

    def tick(self, now: float) -> list[SipMessage]:
        out: list[SipMessage] = []
        for name, deadline in sorted(self._deadlines.items(), key=lambda item: item[1]):
            if deadline <= now and self._deadlines.get(name) == deadline and self.state is not CallState.DONE:
                del self._deadlines[name]
                out += self._on_timer(name, now)
        return out

    def transport_failed(self, reason: str, now: float) -> list[SipMessage]:
        if self.state is CallState.DONE:
            return []
        if self.state in (CallState.CONFIRMED, CallState.TERMINATING):
            self._finish(now, Ending("answered", f"answered; then the connection to the trunk broke ({reason})"))
        elif self._heard_from_peer:
            self._finish(now, failed(f"the connection to our SIP trunk broke during the call ({reason})"))
        else:
            self._finish(now, failed(f"our SIP trunk is unreachable ({reason})"))
        return []

    def abandon(self, now: float) -> list[SipMessage]:
        """Our caller gives up (a runner timeout): CANCEL a ringing call, BYE an answered one."""
        out: list[SipMessage] = []
        if self.state is CallState.PROCEEDING:
            out = self._send_cancel(now)
        elif self.state is CallState.CONFIRMED:
            out = self._send_bye(now)
        if self.state is not CallState.DONE:
            self._finish(now, failed("the call was abandoned before it ended (the probe was cancelled)"))
        return out

    # ----------------------------------------------------------------- outputs

    @property
    def done(self) -> bool:
        return self.state is CallState.DONE

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def record(self) -> CallRecord:
        if self._ending is None:
            raise RuntimeError("the call is not finished")
        status, reason = self._status or (None, None)
        return CallRecord(
            call_id=self.call_id,
            transport=self.plan.transport.upper(),
            ending=self._ending,
            invite_at=self._marks["invite"],
            ringing_at=self._marks.get("ringing"),
            answered_at=self._marks.get("answered"),
            ring_end_at=self._marks.get("ring_end"),
            ended_at=self._marks["ended"],
            status_code=status,
            status_reason=reason,
            transcript=tuple(self._transcript),
        )

    def final_acks(self) -> dict[int, SipRequest]:
        """ACKs to resend, by INVITE CSeq, if the peer retransmits a final response after we are done."""
        acks = {cseq_of(ack)[0]: ack for ack in self._old_acks.values()}
        for ack in (self._invite_final_ack, self._ack_2xx):
            if ack is not None:
                acks[cseq_of(ack)[0]] = ack
        return acks

    # ---------------------------------------------------------------- INVITE

    def _send_invite(self, now: float) -> list[SipMessage]:
        self._cseq += 1
        self._invite_branch = self._new_branch()
        self._invite_final_ack = None
        auth = self._credentials.headers_for("INVITE", self.plan.request_uri)
        self._invite = SipRequest(
            "INVITE",
            self.plan.request_uri,
            Headers(
                (
                    *self._common_headers(self._invite_branch, self.plan.to, self._cseq, "INVITE"),
                    ("Contact", self.plan.contact),
                    *auth,
                    ("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"),
                    ("Content-Type", "application/sdp"),
                )
            ),
            self.plan.sdp,
        )
        self.state = CallState.CALLING
        self._deadlines["B"] = now + self.timers.timer_b
        if not self.plan.reliable:
            self._arm_retransmit("A", now, self.timers.t1)
        return [self._sent(self._invite, now)]

    def _common_headers(self, branch: str, to: str, cseq: int, method: str) -> tuple[tuple[str, str], ...]:
        return (
            ("Via", f"SIP/2.0/{self.plan.transport.upper()} {self.plan.via_sent_by};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"<{self.plan.from_uri}>;tag={self._from_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("User-Agent", self.plan.user_agent),
        )

    def _on_response(self, response: SipResponse, now: float) -> list[SipMessage]:
        _, method = cseq_of(response)
        branch = top_via_branch(response)
        if method == "INVITE" and branch == self._invite_branch:
            self._heard_from_peer = True
            return self._on_invite_response(response, now)
        if method == "INVITE" and branch in self._old_acks:
            return [self._sent(self._old_acks[branch], now)]  # retransmitted 401/407: ACK it again
        if method == "CANCEL" and self._cancel is not None and branch == self._invite_branch:
            return self._on_cancel_response(response)
        if method == "BYE" and branch == self._bye_branch:
            return self._on_bye_response(response, now)
        return []

    def _on_invite_response(self, response: SipResponse, now: float) -> list[SipMessage]:
        if response.status < 200:
            return self._on_provisional(response, now)
        if response.status < 300:
            return self._on_success(response, now)
        return self._on_failure(response, now)

    def _on_provisional(self, response: SipResponse, now: float) -> list[SipMessage]:
        if self.state not in (CallState.CALLING, CallState.PROCEEDING, CallState.CANCELLING):
            return []
        if self.state is CallState.CALLING:
            self.state = CallState.PROCEEDING
            self._stop("A", "B")
        if response.status in RINGING_CODES and "ringing" not in self._marks:
            self._marks["ringing"] = now
            if "ring" in self._deadlines:
                # Count the maximum ring time from the first ring, like `ring_seconds`.
                self._deadlines["ring"] = now + self.plan.max_ring_seconds
        if self._cancel_pending and self.state is CallState.PROCEEDING:
            return self._send_cancel(now)
        return []

    def _on_failure(self, response: SipResponse, now: float) -> list[SipMessage]:
        if self._invite_final_ack is not None:
            return [self._sent(self._invite_final_ack, now)]  # a retransmission: ACK again
        if self.state in (CallState.CONFIRMED, CallState.TERMINATING):
            return []  # a late failure after a 2xx of another fork: nothing to do for us
        ack = self._ack_for_failure(response)
        self._invite_final_ack = ack
        self._stop("A", "B")
        out: list[SipMessage] = [self._sent(ack, now)]
        if response.status in (401, 407) and self.state in (CallState.CALLING, CallState.PROCEEDING):
            return out + self._answer_challenge(response, now)
        self._status = (response.status, response.reason)
        cancelled = self.state is CallState.CANCELLING
        if response.status in (408, 480):
            self._marks.setdefault("ring_end", now)
        self._finish(now, ending_for_status(response.status, response.reason, cancelled_by_us=cancelled))
        return out

    def _ack_for_failure(self, response: SipResponse) -> SipRequest:
        """The ACK of a non-2xx final response: part of the INVITE transaction (RFC 3261 §17.1.1.3)."""
        assert self._invite is not None
        invite = self._invite.headers
        to = response.headers.get("To") or self.plan.to
        return SipRequest(
            "ACK",
            self._invite.uri,
            Headers(
                (
                    ("Via", invite.get_all("Via")[0]),
                    ("Max-Forwards", "70"),
                    ("From", invite.get("From") or ""),
                    ("To", to),
                    ("Call-ID", self.call_id),
                    ("CSeq", f"{self._cseq} ACK"),
                    *(("Route", r) for r in invite.get_all("Route")),
                )
            ),
        )

    def _answer_challenge(self, response: SipResponse, now: float) -> list[SipMessage]:
        name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        problem = self._credentials.accept(response.status, response.headers.get_all(name))
        if problem is not None:
            self._status = (response.status, response.reason)
            if problem == REFUSED:
                reason = f"our SIP trunk refused our credentials ({response.status} {response.reason})"
            else:
                reason = problem
            self._finish(now, failed(reason))
            return []
        self._old_acks[self._invite_branch] = self._invite_final_ack  # type: ignore[assignment]
        return self._send_invite(now)

    # ------------------------------------------------------------ answered

    def _on_success(self, response: SipResponse, now: float) -> list[SipMessage]:
        if self._ack_2xx is not None:
            return [self._sent(self._ack_2xx, now)]  # the callee did not see our ACK yet
        crossed = self._crossed = self.state is CallState.CANCELLING
        self._marks["answered"] = now
        self._marks.setdefault("ring_end", now)
        self._status = (response.status, response.reason)
        self._stop("A", "B", "ring", "cancel_guard", "E_cancel", "F_cancel")
        self._dialog = self._dialog_from(response)
        self._ack_2xx = self._in_dialog_request("ACK", self._cseq, self._new_branch(), with_auth=True)
        self.state = CallState.CONFIRMED
        self._ending = Ending("answered", "answered" + (" as our CANCEL crossed the 200 OK" if crossed else ""))
        out: list[SipMessage] = [self._sent(self._ack_2xx, now)]
        if crossed or self.plan.hold_seconds <= 0:
            return out + self._send_bye(now)
        self._deadlines["hold"] = now + self.plan.hold_seconds
        return out

    def _dialog_from(self, response: SipResponse) -> _Dialog:
        to = response.headers.get("To") or self.plan.to
        contact = response.headers.get_all("Contact")
        target = parse_name_addr(contact[0]).uri if contact else self.plan.request_uri
        # The UAC's route set is the Record-Route list reversed (RFC 3261 §12.1.2).
        routes = [r.strip() for r in reversed(response.headers.get_all("Record-Route"))]
        return _Dialog(parse_name_addr(to).tag or "", to, target, routes)

    def _in_dialog_request(self, method: str, cseq: int, branch: str, *, with_auth: bool) -> SipRequest:
        assert self._dialog is not None
        uri, routes = _request_target(self._dialog.remote_target, self._dialog.route_set)
        auth = self._credentials.headers_for(method, uri) if with_auth else []
        return SipRequest(
            method,
            uri,
            Headers(
                (
                    *self._common_headers(branch, self._dialog.to, cseq, method),
                    *(("Route", r) for r in routes),
                    *auth,
                )
            ),
        )

    def _send_bye(self, now: float) -> list[SipMessage]:
        self._cseq += 1
        self._bye_branch = self._new_branch()
        self._bye = self._in_dialog_request("BYE", self._cseq, self._bye_branch, with_auth=True)
        self.state = CallState.TERMINATING
        self._start_non_invite("bye", now)
        return [self._sent(self._bye, now)]

    def _on_bye_response(self, response: SipResponse, now: float) -> list[SipMessage]:
        if response.status < 200 or self.state is not CallState.TERMINATING:
            return []
        self._stop("E_bye", "F_bye")
        if response.status in (401, 407) and not self._bye_challenged:
            self._bye_challenged = True
            name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            if self._credentials.accept(response.status, response.headers.get_all(name)) is None:
                return self._send_bye(now)
        self._finish_answered(now, f"we hung up after the hold time (BYE: {response.status} {response.reason})")
        return []

    def _on_request(self, request: SipRequest, now: float) -> list[SipMessage]:
        if request.method == "ACK":
            return []
        if request.method != "BYE":
            return [self._sent(response_to(request, 501, "Not Implemented"), now)]
        if self.state not in (CallState.CONFIRMED, CallState.TERMINATING):
            return [self._sent(response_to(request, 481, "Call/Transaction Does Not Exist"), now)]
        reply = self._sent(response_to(request, 200, "OK"), now)
        self._finish_answered(now, "the callee hung up during the hold time")
        return [reply]

    def _finish_answered(self, now: float, detail: str) -> None:
        suffix = "; our CANCEL had crossed the 200 OK" if self._crossed else ""
        self._finish(now, Ending("answered", detail + suffix))

    # ------------------------------------------------------------- CANCEL

    def _send_cancel(self, now: float) -> list[SipMessage]:
        assert self._invite is not None
        self._cancel_pending = False
        self._marks["ring_end"] = now
        invite = self._invite.headers
        self._cancel = SipRequest(
            "CANCEL",
            self._invite.uri,
            Headers(
                (
                    ("Via", invite.get_all("Via")[0]),  # same branch: it names the INVITE it cancels
                    ("Max-Forwards", "70"),
                    ("From", invite.get("From") or ""),
                    ("To", invite.get("To") or ""),
                    ("Call-ID", self.call_id),
                    ("CSeq", f"{self._cseq} CANCEL"),
                    *(("Route", r) for r in invite.get_all("Route")),
                    ("User-Agent", self.plan.user_agent),
                )
            ),
        )
        self.state = CallState.CANCELLING
        self._start_non_invite("cancel", now)
        # RFC 3261 §9.1: without a final response 64*T1 after the CANCEL, consider the INVITE cancelled.
        self._deadlines["cancel_guard"] = now + self.timers.timer_f
        return [self._sent(self._cancel, now)]

    def _on_cancel_response(self, response: SipResponse) -> list[SipMessage]:
        if response.status >= 200:
            self._stop("E_cancel", "F_cancel")
        return []

    # ------------------------------------------------------------- timers

    def _on_timer(self, name: str, now: float) -> list[SipMessage]:
        handler = {
            "A": self._retransmit_invite,
            "B": self._timer_b,
            "ring": self._max_ring_reached,
            "hold": self._send_bye,
            "E_cancel": lambda t: self._retransmit("E_cancel", self._cancel, t),
            "F_cancel": self._cancel_timed_out,
            "cancel_guard": self._cancel_unanswered,
            "E_bye": lambda t: self._retransmit("E_bye", self._bye, t),
            "F_bye": self._bye_timed_out,
        }[name]
        return handler(now)

    def _cancel_timed_out(self, now: float) -> list[SipMessage]:
        self._stop("E_cancel")  # the INVITE's fate is left to the cancel guard
        return []

    def _bye_timed_out(self, now: float) -> list[SipMessage]:
        self._finish_answered(now, "we hung up after the hold time (no answer to our BYE)")
        return []

    def _retransmit_invite(self, now: float) -> list[SipMessage]:
        assert self._invite is not None
        self._arm_retransmit("A", now, self._intervals["A"] * 2)
        return [self._sent(self._invite, now)]

    def _retransmit(self, name: str, request: SipRequest | None, now: float) -> list[SipMessage]:
        if request is None:
            return []
        self._arm_retransmit(name, now, min(self._intervals[name] * 2, self.timers.t2))
        return [self._sent(request, now)]

    def _arm_retransmit(self, name: str, now: float, interval: float) -> None:
        self._intervals[name] = interval
        self._deadlines[name] = now + interval

    def _start_non_invite(self, kind: str, now: float) -> None:
        self._deadlines[f"F_{kind}"] = now + self.timers.timer_f
        if not self.plan.reliable:
            self._arm_retransmit(f"E_{kind}", now, self.timers.t1)

    def _timer_b(self, now: float) -> list[SipMessage]:
        self._stop("A")
        seconds = self.timers.timer_b
        self._finish(now, Ending("no_answer", f"no response to our INVITE within {seconds:g} s (Timer B)"))
        return []

    def _max_ring_reached(self, now: float) -> list[SipMessage]:
        if self.state is CallState.PROCEEDING:
            return self._send_cancel(now)
        # RFC 3261 §9.1: no CANCEL before a provisional response; send it when one comes.
        self._cancel_pending = self.state is CallState.CALLING
        return []

    def _cancel_unanswered(self, now: float) -> list[SipMessage]:
        self._finish(now, Ending("no_answer", "we cancelled after the maximum ring time; no final response followed"))
        return []

    # ------------------------------------------------------------- helpers

    def _finish(self, now: float, ending: Ending) -> None:
        self._ending = ending
        self._marks["ended"] = now
        self.state = CallState.DONE
        self._deadlines.clear()

    def _stop(self, *names: str) -> None:
        for name in names:
            self._deadlines.pop(name, None)

    def _new_branch(self) -> str:
        return "z9hG4bK" + self._token(8)

    def _sent(self, message: SipMessage, now: float) -> SipMessage:
        self._log("sent", message, now)
        return message

    def _log(self, direction: str, message: SipMessage, now: float) -> None:
        text = redact_text(to_bytes(message).decode("utf-8", errors="replace"))
        self._transcript.append(TranscriptLine(now, direction, text))


def _request_target(remote_target: str, route_set: list[str]) -> tuple[str, list[str]]:
    """Request-URI and Route headers for an in-dialog request (RFC 3261 §12.2.1.1)."""
    if not route_set:
        return remote_target, []
    first = parse_name_addr(route_set[0])
    if "lr" in parse_params(first.uri.partition(";")[2]):
        return remote_target, route_set
    # Strict router: it becomes the Request-URI, and the remote target the last route.
    return first.uri, [*route_set[1:], f"<{remote_target}>"]
