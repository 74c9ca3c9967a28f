"""Place mystery calls over a SIP trunk: the asyncio shell around the sans-IO core.

`SipLine` owns one transport towards the trunk's proxy (a connected UDP
socket, or one TCP connection) and runs any number of concurrent calls on
it, demultiplexed by Call-ID.  It feeds received messages and timer ticks
into each `OutgoingCall` and sends what comes out; it knows no SIP rules of
its own beyond answering stray requests and re-ACKing late final responses.

`place_call()` is the probe-facing entry point: it borrows the line shared
by every concurrent call of the same `SipConfig` (opened on first use,
closed when the last call ends) and returns a `CallResult`.  It never raises
for a network or trunk problem: those become outcome `failed` with a reason.

The configured proxy is used as an outbound proxy: every request, in-dialog
ones included, is sent to it, while their Request-URI and Route headers
follow the dialog (Contact and Record-Route), as RFC 3261 §8.1.2 allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from monitor.config.models import SipConfig
from probes.phone.result import (
    DEFAULT_RING_CADENCE,
    CallResult,
    failed_before_invite,
    result_from_record,
)
from probes.phone.sip.call import CallPlan, CallRecord, OutgoingCall
from probes.phone.sip.message import (
    SipMessage,
    SipParseError,
    SipRequest,
    SipResponse,
    cseq_of,
    parse_message,
    parse_uri,
    response_to,
    to_bytes,
)
from probes.phone.sip.register import Registration, RegistrationPlan, RegistrationState
from probes.phone.sip.sdp import audio_offer
from probes.phone.sip.timers import RFC3261_TIMERS, SipTimers
from probes.phone.wire import TcpWire, UdpWire, Wire

log = logging.getLogger(__name__)

DEFAULT_PORT = 5060


class WallClock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


SYSTEM_CLOCK = SystemClock()


class LineError(Exception):
    """The line to the trunk could not be opened (resolution, connection, registration)."""


@dataclass(frozen=True)
class Trunk:
    """Where the configured proxy URI sends us."""

    host: str
    port: int
    transport: str  # 'UDP' or 'TCP'
    hostport: str  # as written in Request-URIs

    @classmethod
    def from_proxy(cls, proxy: str) -> Trunk:
        uri = parse_uri(proxy)
        if uri.scheme == "sips" or uri.transport == "tls":
            raise LineError(f"{proxy}: SIP over TLS is not supported yet; use transport=udp or tcp")
        if uri.transport not in ("udp", "tcp"):
            raise LineError(f"{proxy}: transport {uri.transport!r} is not udp or tcp")
        return cls(uri.host, uri.port or DEFAULT_PORT, uri.transport.upper(), uri.hostport())


# --------------------------------------------------------------------------
# the line


@dataclass
class _ActiveCall:
    machine: OutgoingCall
    finished: asyncio.Future[CallRecord]
    timer: asyncio.TimerHandle | None = None


@dataclass
class _AckCache:
    """ACKs of finished calls, resent if the peer retransmits a final response (Timer D's job).

    Entries share one lifetime, so insertion order is expiry order and the
    oldest are dropped from the front."""

    ttl: float
    entries: dict[tuple[str, int], tuple[bytes, float]] = field(default_factory=dict)

    def remember(self, call_id: str, acks: dict[int, SipRequest], now: float) -> None:
        self._expire(now)
        for cseq, ack in acks.items():
            self.entries.pop((call_id, cseq), None)
            self.entries[(call_id, cseq)] = (to_bytes(ack), now + self.ttl)

    def lookup(self, call_id: str, cseq: int, now: float) -> bytes | None:
        self._expire(now)
        entry = self.entries.get((call_id, cseq))
        return entry[0] if entry else None

    def _expire(self, now: float) -> None:
        for key, (_, expires) in list(self.entries.items()):
            if expires > now:
                return
            del self.entries[key]


class SipLine:
    """One trunk connection shared by concurrent calls."""

    def __init__(
        self,
        sip: SipConfig,
        *,
        timers: SipTimers = RFC3261_TIMERS,
        clock: WallClock = SYSTEM_CLOCK,
        monotonic: Callable[[], float] = time.monotonic,
        register_expires: int = 3600,
    ) -> None:
        self.sip = sip
        self.timers = timers
        self._clock = clock
        self._monotonic = monotonic
        self._register_expires = register_expires
        self.trunk = Trunk.from_proxy(sip.proxy)
        self._wire: Wire | None = None
        self._local: tuple[str, int] | None = None
        self._calls: dict[str, _ActiveCall] = {}
        self._acks = _AckCache(ttl=timers.timer_d)
        self._registration: Registration | None = None
        self._registration_timer: asyncio.TimerHandle | None = None
        self._registered: asyncio.Future[None] | None = None
        self.stray_messages = 0

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> SipLine:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        if self._wire is not None:
            return
        address = await self._resolve(asyncio.get_running_loop())
        try:
            if self.trunk.transport == "UDP":
                self._wire = UdpWire.open(address, self, self._monotonic)
            else:
                self._wire = await TcpWire.open(address, self, self._monotonic)
        except OSError as exc:
            raise LineError(f"cannot reach our SIP trunk at {self._where()}: {_describe(exc)}") from exc
        host, port = self._wire.local_address
        self._local = (self.sip.local_host or host, port)
        if self.sip.register_:
            try:
                await self._register()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        if self._registration_timer is not None:
            self._registration_timer.cancel()
        for active in self._calls.values():
            if active.timer is not None:
                active.timer.cancel()
        wire, self._wire = self._wire, None
        if wire is not None:
            wire.close()

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> tuple[str, int]:
        kind = socket.SOCK_DGRAM if self.trunk.transport == "UDP" else socket.SOCK_STREAM
        try:
            infos = await loop.getaddrinfo(self.trunk.host, self.trunk.port, type=kind)
        except OSError as exc:
            raise LineError(f"cannot resolve our SIP trunk {self.trunk.host}: {_describe(exc)}") from exc
        host, port = infos[0][4][:2]
        return str(host), int(port)

    def _where(self) -> str:
        return f"{self.trunk.host}:{self.trunk.port}/{self.trunk.transport}"

    # ----------------------------------------------------------------- calls

    async def call(
        self,
        number: str,
        *,
        max_ring_seconds: float,
        hold_seconds: float,
        ring_cadence: float = DEFAULT_RING_CADENCE,
        call_id: str | None = None,
    ) -> CallResult:
        """Call `number` (E.164) and return how it went; needs an open line."""
        if self._wire is None:
            raise LineError("the line to our SIP trunk is not open (or its connection broke)")
        call_id = call_id or new_call_id()
        if call_id in self._calls:
            raise ValueError(f"call {call_id} is already in progress on this line")
        machine = OutgoingCall(self._plan(number, max_ring_seconds, hold_seconds), call_id=call_id, timers=self.timers)
        active = _ActiveCall(machine, asyncio.get_running_loop().create_future())
        self._calls[machine.call_id] = active
        wall_at_invite = self._clock.now()
        self._advance(active, machine.start(self._monotonic()))
        try:
            record = await active.finished
        except asyncio.CancelledError:
            self._abandon(active)
            raise
        return result_from_record(record, number=number, wall_at_invite=wall_at_invite, ring_cadence=ring_cadence)

    def _plan(self, number: str, max_ring_seconds: float, hold_seconds: float) -> CallPlan:
        assert self._local is not None
        host, port = self._local
        local = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        request_uri = f"sip:{number}@{self.trunk.hostport};user=phone"
        return CallPlan(
            request_uri=request_uri,
            to=f"<{request_uri}>",
            from_uri=self.sip.from_,
            contact=self._contact(local),
            via_sent_by=local,
            transport=self.trunk.transport,
            max_ring_seconds=max_ring_seconds,
            hold_seconds=hold_seconds,
            sdp=audio_offer(host, _rtp_port(), secrets.randbits(31)),
            username=self.sip.username,
            password=self.sip.password.get_secret_value() if self.sip.password else None,
        )

    def _contact(self, local: str) -> str:
        user = self.sip.username or parse_uri(self.sip.from_).user or "qualimon"
        suffix = ";transport=tcp" if self.trunk.transport == "TCP" else ""
        return f"<sip:{user}@{local}{suffix}>"

    def _advance(self, active: _ActiveCall, out: list[SipMessage]) -> None:
        """Send what the machine produced, then finish it or re-arm its timer."""
        for message in out:
            self._send(message)
        machine = active.machine
        if active.timer is not None:
            active.timer.cancel()
            active.timer = None
        if machine.done:
            self._calls.pop(machine.call_id, None)
            self._acks.remember(machine.call_id, machine.final_acks(), self._monotonic())
            if not active.finished.done():
                active.finished.set_result(machine.record())
            return
        deadline = machine.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._monotonic())
            active.timer = asyncio.get_running_loop().call_later(delay, self._on_call_timer, active)

    def _on_call_timer(self, active: _ActiveCall) -> None:
        active.timer = None
        self._advance(active, active.machine.tick(self._monotonic()))

    def _abandon(self, active: _ActiveCall) -> None:
        """The caller was cancelled (a runner timeout): end the call politely, forget it."""
        self._calls.pop(active.machine.call_id, None)
        if active.timer is not None:
            active.timer.cancel()
        for message in active.machine.abandon(self._monotonic()):
            self._send(message)

    # ------------------------------------------------------------- transport

    def _send(self, message: SipMessage) -> None:
        self._send_bytes(to_bytes(message))

    def _send_bytes(self, data: bytes) -> None:
        if self._wire is not None:
            self._wire.send(data)

    def on_bytes(self, data: bytes, now: float) -> None:
        """A message from the trunk; `now` is when it arrived (ring timings depend on it)."""
        try:
            message = parse_message(data)
            call_id = message.headers.get("Call-ID") or ""
        except SipParseError as exc:
            log.debug("dropping an unparsable SIP message: %s", exc)
            return
        active = self._calls.get(call_id)
        if active is not None:
            self._advance(active, active.machine.receive(message, now))
        elif self._registration is not None and call_id == self._registration.call_id:
            self._drive_registration(self._registration.receive(message, now))
        else:
            self._stray(message, call_id, now)

    def _stray(self, message: SipMessage, call_id: str, now: float) -> None:
        self.stray_messages += 1
        try:
            if isinstance(message, SipResponse):
                cseq, method = cseq_of(message)
                ack = self._acks.lookup(call_id, cseq, now) if method == "INVITE" and message.status >= 200 else None
                if ack is not None:
                    self._send_bytes(ack)
                return
            reply = _reply_to_stray_request(message)
        except SipParseError:
            return
        if reply is not None:
            self._send(reply)

    def on_transport_error(self, exc: Exception) -> None:
        reason = _describe(exc)
        now = self._monotonic()
        for active in list(self._calls.values()):
            self._advance(active, active.machine.transport_failed(reason, now))
        if self._registered is not None and not self._registered.done():
            self._registered.set_exception(LineError(f"cannot register with our SIP trunk: {reason}"))
        if self.trunk.transport == "TCP" and self._wire is not None:
            self._wire.close()
            self._wire = None  # a broken connection: calls placed later fail until a new line opens

    # ---------------------------------------------------------- registration

    async def _register(self) -> None:
        assert self._local is not None
        host, port = self._local
        local = f"{host}:{port}"
        plan = RegistrationPlan(
            registrar_uri=f"sip:{self.trunk.hostport}",
            aor=self.sip.from_,
            contact=self._contact(local),
            via_sent_by=local,
            transport=self.trunk.transport,
            expires=self._register_expires,
            username=self.sip.username,
            password=self.sip.password.get_secret_value() if self.sip.password else None,
        )
        self._registration = Registration(plan, call_id=new_call_id(), timers=self.timers)
        self._registered = asyncio.get_running_loop().create_future()
        self._drive_registration(self._registration.start(self._monotonic()))
        await self._registered

    def _drive_registration(self, out: list[SipMessage]) -> None:
        registration = self._registration
        assert registration is not None
        for message in out:
            self._send(message)
        if self._registered is not None and not self._registered.done():
            if registration.state is RegistrationState.REGISTERED:
                self._registered.set_result(None)
            elif registration.state is RegistrationState.FAILED:
                self._registered.set_exception(LineError(f"cannot register with our SIP trunk: {registration.error}"))
        if self._registration_timer is not None:
            self._registration_timer.cancel()
        deadline = registration.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._monotonic())
            self._registration_timer = asyncio.get_running_loop().call_later(delay, self._on_registration_timer)

    def _on_registration_timer(self) -> None:
        if self._registration is not None and self._wire is not None:
            self._drive_registration(self._registration.tick(self._monotonic()))

    @property
    def registration(self) -> Registration | None:
        return self._registration


def _reply_to_stray_request(request: SipRequest) -> SipResponse | None:
    if request.method == "ACK":
        return None
    if request.method == "OPTIONS":
        return response_to(request, 200, "OK")  # trunks ping registered contacts
    if request.method == "INVITE":
        return response_to(request, 480, "Temporarily Unavailable", to_tag=secrets.token_hex(4))
    return response_to(request, 481, "Call/Transaction Does Not Exist")


def new_call_id() -> str:
    """A Call-ID; a probe may draw it first and record it before the INVITE leaves."""
    return f"{secrets.token_hex(12)}@qualimon"


def _rtp_port() -> int:
    return 16384 + 2 * secrets.randbelow(8192)  # even, in the range PBXs usually use


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens on the trunk's port)"
    text = str(exc) or type(exc).__name__
    return text


# --------------------------------------------------------------------------
# probe entry point


@dataclass
class _SharedEntry:
    line: SipLine
    opened: asyncio.Future[None]
    users: int = 0


_shared: dict[tuple[object, ...], _SharedEntry] = {}


@contextlib.asynccontextmanager
async def shared_line(
    sip: SipConfig, *, timers: SipTimers = RFC3261_TIMERS, clock: WallClock = SYSTEM_CLOCK
) -> AsyncIterator[SipLine]:
    """The line every concurrent call with this config shares; closed when its last user leaves."""
    loop = asyncio.get_running_loop()
    key = (id(loop), sip, timers, id(clock))
    entry = _shared.get(key)
    if entry is None:
        line = SipLine(sip, timers=timers, clock=clock)
        entry = _SharedEntry(line, asyncio.ensure_future(line.open()))
        _shared[key] = entry
    entry.users += 1
    try:
        await asyncio.shield(entry.opened)
        yield entry.line
    finally:
        entry.users -= 1
        if entry.users == 0:
            _shared.pop(key, None)
            await entry.line.close()


async def place_call(
    sip: SipConfig,
    number: str,
    *,
    max_ring_seconds: float,
    hold_seconds: float,
    ring_cadence: float = DEFAULT_RING_CADENCE,
    clock: WallClock = SYSTEM_CLOCK,
    timers: SipTimers = RFC3261_TIMERS,
    call_id: str | None = None,
) -> CallResult:
    """Call `number` (E.164, e.g. '+33199001234') through the trunk of `sip`.

    Rings for at most `max_ring_seconds` (then CANCEL), holds an answered
    call `hold_seconds` (then BYE).  `call_id` (from `new_call_id()`) lets the
    caller record the call before the INVITE leaves.  Trunk and network problems come back as
    outcome 'failed' with a `failure_reason`, never as an exception.
    """
    transport = _transport_name(sip)
    try:
        async with shared_line(sip, timers=timers, clock=clock) as line:
            return await line.call(
                number,
                max_ring_seconds=max_ring_seconds,
                hold_seconds=hold_seconds,
                ring_cadence=ring_cadence,
                call_id=call_id,
            )
    except LineError as exc:
        return failed_before_invite(
            number, str(exc), wall=clock.now(), transport=transport, ring_cadence=ring_cadence
        )


def _transport_name(sip: SipConfig) -> str:
    try:
        return Trunk.from_proxy(sip.proxy).transport
    except (LineError, SipParseError):
        return "?"
