"""aioimaplib, made fit for a read-only watcher: EXAMINE, EXISTS/BYE tracking, keepalive, a flat parser.

aioimaplib 2.0.3 has two defects that a backlog hits, worked around in
`_Protocol`: it parses a response by recursing once per line (a FETCH answer
of ~1 000 small messages raises RecursionError inside `data_received`, the
transport is dropped and the command hangs), and it rescans the whole FETCH
response at every line (quadratic).  It also ignores untagged EXISTS that
arrive during a command; `_Protocol` notes them so a message that lands
between a search and IDLE is not left waiting for the next one.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import aioimaplib  # type: ignore[import-untyped]
from aioimaplib.aioimaplib import (  # type: ignore[import-untyped]
    CRLF,
    SELECTED,
    Command,
    FetchCommand,
    IMAP4ClientProtocol,
    IncompleteRead,
    Response,
    change_state,
    literal_data_re,
)


class _LinearFetch(FetchCommand):
    """A FETCH that knows whether a message's parentheses are closed without rescanning the response."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._depth = 0

    def append_to_resp(self, line: bytes, result: str = "Pending") -> None:
        super().append_to_resp(line, result)
        if type(line) is bytes:  # literals arrive as bytearray and may hold any parenthesis
            if self.FETCH_MESSAGE_DATA_RE.match(line):
                self._depth = 0
            self._depth += line.count(b"(") - line.count(b")")

    def wait_data(self) -> bool:
        return self._depth != 0


class _Protocol(IMAP4ClientProtocol):
    """aioimaplib's protocol plus EXAMINE, EXISTS/BYE tracking, TCP keepalive and a flat response parser."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn_lost_cb: Any = None):
        super().__init__(loop, conn_lost_cb)
        self.changed = asyncio.Event()    # the server announced EXISTS since the last clear()
        self.bye: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _keepalive(sock)

    @change_state
    async def examine(self, mailbox: str) -> Response:
        # aioimaplib only treats SELECT as entering the selected state; EXAMINE is its read-only twin.
        response = await self.execute(Command("EXAMINE", self.new_tag(), mailbox, loop=self.loop))
        if response.result == "OK":
            self.state = SELECTED
        return response

    async def fetch(self, message_set: str, message_parts: str, by_uid: bool = False,
                    timeout: float | None = None) -> Response:
        return await self.execute(_LinearFetch(self.new_tag(), message_set, message_parts,
                                               prefix="UID" if by_uid else "", loop=self.loop, timeout=timeout))

    def _untagged_response(self, line: bytes) -> Command:
        if line.endswith(b" EXISTS"):
            self.changed.set()
        elif line.startswith(b"* BYE"):
            self.bye = line[5:].strip().decode("utf-8", "replace")
        return super()._untagged_response(line)

    def _handle_responses(self, data: bytes, line_handler: Any, current_cmd: Command | None = None) -> None:
        """aioimaplib's parser as a loop over offsets: no recursion per line, no copy of the tail per line."""
        pos = 0
        while True:
            if pos >= len(data):
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                wanted = current_cmd._expected_size - len(current_cmd._resp_literal_data)
                current_cmd.append_literal_data(data[pos:pos + wanted])
                pos += wanted
                if current_cmd.wait_literal_data():
                    raise IncompleteRead(current_cmd)
                continue
            end = data.find(CRLF, pos)
            if end < 0:
                raise IncompleteRead(current_cmd, data[pos:])
            line = data[pos:end]
            pos = end + 2
            cmd = line_handler(line, current_cmd)
            literal = literal_data_re.match(line)
            if literal:
                if cmd is None:
                    cmd = Command("NIL", "unused")
                cmd.begin_literal_data(int(literal.group("size")))
                current_cmd = cmd
            elif cmd is not None and cmd.wait_data():
                current_cmd = cmd
            else:
                current_cmd = None


def _keepalive(sock: socket.socket) -> None:
    """Notice a peer that vanished silently (NAT timeout, pulled cable) within ~2 min, even in IDLE."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


class ImapClient(aioimaplib.IMAP4):
    """aioimaplib's client on `_Protocol` (what a session talks through)."""

    protocol: _Protocol

    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop | None,
                      conn_lost_cb: Any = None, ssl_context: ssl.SSLContext | None = None) -> None:
        running = asyncio.get_running_loop()
        self.protocol = _Protocol(running, conn_lost_cb)
        self._client_task = running.create_task(
            running.create_connection(lambda: self.protocol, host, port, ssl=ssl_context))
