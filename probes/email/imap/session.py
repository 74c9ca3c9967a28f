"""One IMAP session: connect (implicit TLS or plain on loopback), log in, EXAMINE, SEARCH, FETCH, IDLE.

Every call fails fast with `ConnectionLost` when the connection drops and
with `ImapFailure` when the server refuses; neither message ever holds the
password (aioimaplib quotes its LOGIN command in some of its errors).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Sequence
from datetime import date
from typing import Any, TypeVar

import aioimaplib  # type: ignore[import-untyped]
from aioimaplib.aioimaplib import Response  # type: ignore[import-untyped]

from monitor.config.models import ImapConfig
from probes.email.imap.parse import (
    FolderState,
    ImapFailure,
    imap_date,
    mailbox_name,
    parse_examine,
    parse_fetch,
    parse_search,
    uid_set,
)
from probes.email.imap.protocol import ImapClient

T = TypeVar("T")


class ConnectionLost(ImapFailure):
    pass


FETCH_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{prefix}>)"
FULL_ITEMS = "(UID INTERNALDATE RFC822.SIZE BODY.PEEK[])"


class ImapSession:
    """One logged-in connection with the folder EXAMINEd; every call fails fast when the connection drops."""

    def __init__(self, client: ImapClient, lost: asyncio.Event, secret: str):
        self.client = client
        self.lost = lost
        self._secret = secret
        self.idle_supported = False

    @classmethod
    async def open(cls, config: ImapConfig, *, ssl_context: ssl.SSLContext | None = None) -> ImapSession:
        lost = asyncio.Event()
        context = None
        if config.tls == "implicit":
            context = ssl_context or config.ssl_context()  # ca_file, when the config names one
        client = ImapClient(host=config.host, port=config.port_or_default(), timeout=config.timeout_seconds,
                         conn_lost_cb=lambda exc: lost.set(), ssl_context=context)
        secret = config.password.get_secret_value() if config.password else ""
        session = cls(client, lost, secret)
        try:
            await session._login(config)
        except BaseException:
            session.abort()
            raise
        return session

    async def _login(self, config: ImapConfig) -> None:
        await self._call(self.client.wait_hello_from_server(), "greeting")
        response = await self._call(self.client.login(config.username or "", self._secret), "login")
        self._check(response, "login refused")
        # Capabilities may change after login (RFC 3501 §6.2.3): ask again rather than trust the banner's.
        await self._call(self.client.protocol.capability(), "capability")
        self.idle_supported = self.client.has_capability("IDLE")

    async def examine(self, folder: str) -> FolderState:
        response = await self._call(self.client.protocol.examine(mailbox_name(folder)), "examine")
        self._check(response, f"cannot open folder {folder!r}")
        return parse_examine(response.lines)

    async def uids_after(self, last_uid: int) -> list[int]:
        # "n:*" always includes the highest UID, even below n: filter.
        return [u for u in await self.search("UID", f"{last_uid + 1}:*") if u > last_uid]

    async def uids_since(self, day: date) -> list[int]:
        return await self.search("SINCE", imap_date(day))

    async def highest_uid(self) -> int:
        return max(await self.search("UID", "*"), default=0)

    async def search(self, *criteria: str) -> list[int]:
        response = await self._call(self.client.uid_search(*criteria, charset=None), "search")
        self._check(response, "search refused")
        return parse_search(response.lines)

    async def fetch(self, uids: Sequence[int], items: str) -> list[dict[str, Any]]:
        response = await self._call(self.client.uid("fetch", uid_set(uids), items), "fetch")
        self._check(response, "fetch refused")
        return parse_fetch(response.lines)

    async def wait_for_change(self, seconds: float, use_idle: bool) -> None:
        """Return once the server announced new mail (IDLE) or after `seconds`."""
        changed = self.client.protocol.changed
        if not use_idle:
            await self._until(changed.wait(), seconds)
            await self._call(self.client.noop(), "noop")  # lets the server report what arrived
            return
        idle = await self._call(self.client.idle_start(timeout=seconds * 2 + 60), "idle")
        try:
            await self._until(changed.wait(), seconds)
        finally:
            if not self.lost.is_set():
                self.client.idle_done()
        self._check(await self._call(idle, "idle"), "idle refused")
        _drain(self.client.protocol.idle_queue)  # aioimaplib queues IDLE pushes we read as `changed`

    async def _until(self, waiting: Awaitable[Any], seconds: float) -> None:
        try:
            await self._call(asyncio.wait_for(waiting, seconds), "wait")
        except TimeoutError:
            pass

    async def _call(self, awaitable: Awaitable[T], what: str) -> T:
        """Await a command, or raise ConnectionLost as soon as the connection drops."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise ConnectionLost(self._lost_reason(what))
        try:
            return task.result()
        except aioimaplib.CommandTimeout:
            raise ImapFailure(f"{what} timed out") from None
        except aioimaplib.AioImapException as exc:
            # Some aioimaplib messages quote the pending command, LOGIN and its password included.
            raise ImapFailure(self._scrub(f"{what} failed: {exc}")) from None

    def _scrub(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def _lost_reason(self, what: str) -> str:
        bye = self.client.protocol.bye
        return f"connection lost during {what}" + (f" (server said BYE: {bye})" if bye else "")

    def _check(self, response: Response, what: str) -> None:
        if response.result != "OK":
            text = b" ".join(bytes(line) for line in response.lines[-1:]).decode("utf-8", "replace")
            raise ImapFailure(f"{what}: {response.result} {text}".strip())

    def abort(self) -> None:
        """Drop the connection (a watcher being stopped or giving up on a broken session)."""
        transport = self.client.protocol.transport
        if transport is not None:
            transport.close()
        for task in list(self.client.tasks) + list(self.client.protocol.tasks):
            task.cancel()
        if not self.client._client_task.done():
            self.client._client_task.cancel()


def _drain(queue: asyncio.Queue[Any]) -> None:
    while not queue.empty():
        queue.get_nowait()
