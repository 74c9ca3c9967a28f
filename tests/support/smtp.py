"""A real SMTP server (aiosmtpd) on loopback for tests: it records what it is sent and can refuse.

aiosmtpd's `Controller(port=0)` does not work here, so the server is created
on the running loop with `loop.create_server`.  `on_data` lets a test deliver
what arrives (into Dovecot, a Maildir) or act at the exact moment our server
"accepts" a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class RecordingHandler:
    """Accepts everything unless told otherwise; `refuse_*` take an SMTP reply such as '421 4.3.2 busy'."""

    received: list[Received] = field(default_factory=list)
    refuse_mail: str | None = None
    refuse_rcpt: str | None = None
    refuse_data: str | None = None
    on_data: Callable[[Received], Awaitable[None]] | None = None

    async def handle_MAIL(self, server, session, envelope, address, options):  # noqa: N802
        if self.refuse_mail:
            return self.refuse_mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.refuse_data:
            return self.refuse_data
        message = Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or envelope.content)
        self.received.append(message)
        if self.on_data is not None:
            await self.on_data(message)
        return "250 2.0.0 Ok: queued"


def password_checker(username: str, password: str):  # type: ignore[no-untyped-def]
    """An aiosmtpd authenticator accepting exactly one login."""

    def check(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == username \
            and auth_data.password.decode() == password
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    return check


@asynccontextmanager
async def smtp_server(handler: RecordingHandler, *, authenticator=None,  # type: ignore[no-untyped-def]
                      auth_exclude: tuple[str, ...] = ()) -> AsyncIterator[int]:
    """Serve on 127.0.0.1 (plain; AUTH allowed without TLS on loopback); yields the port.

    `auth_exclude` leaves SASL mechanisms out of EHLO (("PLAIN",) makes clients use LOGIN)."""
    loop = asyncio.get_running_loop()
    options = {}
    if authenticator is not None:
        options = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True,
                   "auth_exclude_mechanism": list(auth_exclude)}
    server = await loop.create_server(lambda: SMTP(handler, hostname="smtp.example.net", **options), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
