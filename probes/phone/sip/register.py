"""REGISTER with the trunk and keep the binding fresh (RFC 3261 §10), sans-IO.

Some operator trunks only route calls from a registered account.  The
machine sends REGISTER, answers 401/407 with digest credentials, honours
423 Min-Expires, and after a 200 OK schedules a refresh at half the granted
lifetime.  A refused or unanswered refresh is retried after Timer F.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from probes.phone.sip.call import new_token
from probes.phone.sip.credentials import REFUSED, Credentials
from probes.phone.sip.message import (
    Headers,
    SipMessage,
    SipRequest,
    SipResponse,
    cseq_of,
    parse_name_addr,
    top_via_branch,
)
from probes.phone.sip.timers import RFC3261_TIMERS, SipTimers


@dataclass(frozen=True)
class RegistrationPlan:
    registrar_uri: str  # 'sip:trunk.example.net'
    aor: str  # address of record, our From/To URI
    contact: str  # Contact header value
    via_sent_by: str
    transport: str
    expires: int = 3600
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    user_agent: str = "qualimon"


class RegistrationState(Enum):
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"


class Registration:
    def __init__(
        self,
        plan: RegistrationPlan,
        *,
        call_id: str,
        timers: SipTimers = RFC3261_TIMERS,
        token: Callable[[int], str] = new_token,
    ) -> None:
        self.plan = plan
        self.call_id = call_id
        self.timers = timers
        self._token = token
        self._tag = token(6)
        self._cseq = 0
        self._expires = plan.expires
        self._branch = ""
        self._request: SipRequest | None = None
        self._credentials = Credentials(plan.username, plan.password, token)
        self._deadlines: dict[str, float] = {}
        self._interval = timers.t1
        self.state = RegistrationState.REGISTERING
        self.error: str | None = None
        self.granted_expires: int | None = None
        self.registrations = 0  # successful REGISTER transactions, refreshes included

    def start(self, now: float) -> list[SipMessage]:
        return self._send(now)

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def tick(self, now: float) -> list[SipMessage]:
        out: list[SipMessage] = []
        for name, deadline in sorted(self._deadlines.items(), key=lambda item: item[1]):
            if deadline <= now and self._deadlines.get(name) == deadline:
                del self._deadlines[name]
                out += self._on_timer(name, now)
        return out

    def receive(self, message: SipMessage, now: float) -> list[SipMessage]:
        if not isinstance(message, SipResponse) or top_via_branch(message) != self._branch:
            return []
        if cseq_of(message)[1] != "REGISTER" or message.status < 200:
            return []
        self._deadlines.pop("E", None)
        self._deadlines.pop("F", None)
        if message.status < 300:
            return self._registered(message, now)
        if message.status in (401, 407):
            return self._challenged(message, now)
        if message.status == 423:
            return self._too_brief(message, now)
        return self._fail(f"registration refused ({message.status} {message.reason})", now)

    # ----------------------------------------------------------------------

    def _send(self, now: float) -> list[SipMessage]:
        self._cseq += 1
        self._branch = "z9hG4bK" + self._token(8)
        uri = self.plan.registrar_uri
        self._request = SipRequest(
            "REGISTER",
            uri,
            Headers(
                (
                    ("Via", f"SIP/2.0/{self.plan.transport.upper()} {self.plan.via_sent_by};branch={self._branch};rport"),
                    ("Max-Forwards", "70"),
                    ("From", f"<{self.plan.aor}>;tag={self._tag}"),
                    ("To", f"<{self.plan.aor}>"),
                    ("Call-ID", self.call_id),
                    ("CSeq", f"{self._cseq} REGISTER"),
                    ("Contact", self.plan.contact),
                    ("Expires", str(self._expires)),
                    *self._credentials.headers_for("REGISTER", uri),
                    ("User-Agent", self.plan.user_agent),
                )
            ),
        )
        self._deadlines["F"] = now + self.timers.timer_f
        if self.plan.transport.upper() == "UDP":
            self._interval = self.timers.t1
            self._deadlines["E"] = now + self._interval
        return [self._request]

    def _on_timer(self, name: str, now: float) -> list[SipMessage]:
        if name == "E" and self._request is not None:
            self._interval = min(self._interval * 2, self.timers.t2)
            self._deadlines["E"] = now + self._interval
            return [self._request]
        if name == "F":
            self._deadlines.pop("E", None)
            return self._fail(f"the registrar did not answer within {self.timers.timer_f:g} s", now)
        if name in ("refresh", "retry"):
            self._credentials = Credentials(self.plan.username, self.plan.password, self._token)
            return self._send(now)
        return []

    def _registered(self, response: SipResponse, now: float) -> list[SipMessage]:
        granted = self._granted(response)
        self.granted_expires = granted
        self.state = RegistrationState.REGISTERED
        self.error = None
        self.registrations += 1
        self._deadlines["refresh"] = now + max(1.0, granted / 2)
        return []

    def _granted(self, response: SipResponse) -> int:
        ours = parse_name_addr(self.plan.contact).uri
        for value in response.headers.get_all("Contact"):
            contact = parse_name_addr(value)
            if contact.uri == ours and contact.params.get("expires", "").isdigit():
                return int(contact.params["expires"])
        header = response.headers.get("Expires")
        return int(header) if header and header.strip().isdigit() else self._expires

    def _challenged(self, response: SipResponse, now: float) -> list[SipMessage]:
        name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        problem = self._credentials.accept(response.status, response.headers.get_all(name))
        if problem == REFUSED:
            return self._fail(f"the registrar refused our credentials ({response.status} {response.reason})", now)
        if problem is not None:
            return self._fail(problem, now)
        return self._send(now)

    def _too_brief(self, response: SipResponse, now: float) -> list[SipMessage]:
        minimum = (response.headers.get("Min-Expires") or "").strip()
        if not minimum.isdigit() or int(minimum) <= self._expires:
            return self._fail(f"registration refused ({response.status} {response.reason})", now)
        self._expires = int(minimum)
        return self._send(now)

    def _fail(self, reason: str, now: float) -> list[SipMessage]:
        self.state = RegistrationState.FAILED
        self.error = reason
        self._deadlines["retry"] = now + self.timers.timer_f
        return []
