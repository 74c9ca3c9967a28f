"""Byte transports to the trunk: a connected UDP socket, or one TCP connection.

Each wire moves bytes and reports, for every message, the monotonic instant
it arrived; it knows nothing of SIP beyond cutting a TCP stream into
messages.  The UDP wire reads its socket directly rather than through an
asyncio DatagramTransport, for two reasons that matter to ring timings:
it asks the kernel for each datagram's arrival time (SO_TIMESTAMPNS), so a
burst of answers queued behind our own processing is still stamped when it
reached the host; and it drains every queued datagram per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import Protocol

from probes.phone.sip.message import SipParseError, StreamFramer

log = logging.getLogger(__name__)

RECEIVE_BUFFER_BYTES = 4 * 1024 * 1024
MAX_DATAGRAM = 65_535
DRAIN_BATCH = 512  # datagrams per wake-up, so one busy line cannot starve the event loop
# Python does not export SO_TIMESTAMPNS; 35 is its value in Linux's generic
# socket ABI (x86-64, arm64), where SCM_TIMESTAMPNS has the same number.
_GENERIC_LINUX = sys.platform == "linux" and platform.machine() in ("x86_64", "aarch64", "arm64")
_TIMESTAMP: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if _GENERIC_LINUX else None)
_TIMESPEC = struct.Struct("@ll")


class Receiver(Protocol):
    def on_bytes(self, data: bytes, arrived: float) -> None: ...

    def on_transport_error(self, exc: Exception) -> None: ...


class Wire(Protocol):
    local_address: tuple[str, int]

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    @property
    def closed(self) -> bool: ...


class UdpWire:
    """A UDP socket connected to the trunk: only its datagrams come in, and ICMP errors reach us."""

    def __init__(self, sock: socket.socket, receiver: Receiver, monotonic: Callable[[], float]) -> None:
        self._sock = sock
        self._receiver = receiver
        self._monotonic = monotonic
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.local_address: tuple[str, int] = sock.getsockname()[:2]
        self._loop.add_reader(sock.fileno(), self._drain)

    @classmethod
    def open(cls, address: tuple[str, int], receiver: Receiver, monotonic: Callable[[], float]) -> UdpWire:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # Bursts (a trunk answering many calls at once) must not overflow the
            # buffer: a dropped 200 OK returns only with the peer's retransmission.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            if _TIMESTAMP is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, _TIMESTAMP, 1)
            sock.connect(address)
            return cls(sock, receiver, monotonic)
        except BaseException:
            sock.close()
            raise

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            log.debug("UDP send buffer full; the retransmission timers will resend")
        except OSError as exc:
            # Reported on the next turn of the loop, not from inside the caller's own send.
            self._loop.call_soon(self._receiver.on_transport_error, exc)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()

    def _drain(self) -> None:
        wall, mono = time.time(), self._monotonic()  # read together: converts kernel stamps
        for _ in range(DRAIN_BATCH):
            if self._closed:
                return
            try:
                data, ancillary, _flags, _addr = self._sock.recvmsg(MAX_DATAGRAM, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port/host unreachable, queued on the socket
                self._receiver.on_transport_error(exc)
                continue
            self._receiver.on_bytes(data, _arrival(ancillary, wall, mono))


def _arrival(ancillary: list[tuple[int, int, bytes]], wall: float, mono: float) -> float:
    """The monotonic instant the kernel received the datagram, or `mono` without a stamp."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _TIMESTAMP and len(payload) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
            return min(mono, mono - (wall - (seconds + nanoseconds / 1e9)))
    return mono


class TcpWire(asyncio.Protocol):
    """One TCP connection to the trunk; messages are cut by Content-Length."""

    def __init__(self, receiver: Receiver, monotonic: Callable[[], float]) -> None:
        self._receiver = receiver
        self._monotonic = monotonic
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None
        self._closed_by_us = False
        self.local_address: tuple[str, int] = ("", 0)

    @classmethod
    async def open(cls, address: tuple[str, int], receiver: Receiver, monotonic: Callable[[], float]) -> TcpWire:
        loop = asyncio.get_running_loop()
        _, wire = await loop.create_connection(lambda: cls(receiver, monotonic), *address)
        return wire

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.local_address = transport.get_extra_info("sockname")[:2]

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def send(self, data: bytes) -> None:
        if not self.closed:
            assert self._transport is not None
            self._transport.write(data)

    def close(self) -> None:
        self._closed_by_us = True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        arrived = self._monotonic()
        try:
            frames = self._framer.feed(data)
        except SipParseError as exc:
            self._receiver.on_transport_error(exc)
            self.close()
            return
        for frame in frames:
            self._receiver.on_bytes(frame, arrived)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self._closed_by_us:
            self._receiver.on_transport_error(exc or ConnectionResetError("the trunk closed the TCP connection"))
