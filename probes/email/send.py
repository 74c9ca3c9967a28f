"""Submitting a mystery email through *our* SMTP server (aiosmtplib).

Success means our server accepted the message (250 after DATA); `sent_at` is
that instant.  Everything that goes wrong here is the monitor's own failure,
never the museum's:

- connection refused or dropped, timeouts, 4xx replies before the message is
  accepted → `ProbeRetry` (the runner tries again later, nothing left us);
- 5xx replies (relay denied, authentication refused, our server rejecting a
  recipient) → `ProbeVoid` with the server's reply as the reason;
- the connection lost after the message body was sent but before the reply
  → `ProbeVoid("smtp_uncertain…")`: it may have left, so it is not resent.

`before_data` runs after the envelope is accepted and before DATA: the
probe records its Message-ID and token there, so a crash cannot send twice.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage

import aiosmtplib

from monitor.config.models import SmtpConfig
from monitor.kinds import ProbeRetry, ProbeVoid

TRANSIENT_ERRORS = (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                    ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)


async def submit(smtp: SmtpConfig, message: EmailMessage, sender: str, recipients: Sequence[str],
                 before_data: Callable[[], Awaitable[None]]) -> str:
    """Send `message`; return our server's final reply (e.g. '250 2.0.0 Ok: queued as 4F2A')."""
    client = aiosmtplib.SMTP(
        hostname=smtp.host, port=smtp.port_or_default(), use_tls=smtp.tls == "implicit",
        start_tls=smtp.tls == "starttls", timeout=smtp.timeout_seconds,
        tls_context=smtp.ssl_context() if smtp.tls != "none" else None,
    )
    try:
        await _open(client, smtp)
        await _envelope(client, sender, recipients)
        await before_data()
        return await _data(client, message)
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except Exception:  # the message is already decided; a failed QUIT changes nothing
                client.close()


async def _open(client: aiosmtplib.SMTP, smtp: SmtpConfig) -> None:
    try:
        await client.connect()
        if smtp.username:
            password = smtp.password.get_secret_value() if smtp.password else ""
            await client.login(smtp.username, password)
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ProbeVoid(f"smtp_auth_refused: our server refused the login ({exc.code})") from None
    except aiosmtplib.SMTPResponseException as exc:
        _raise_for_reply("smtp_refused", exc)
    except TRANSIENT_ERRORS as exc:
        if _certificate_refused(exc):  # retrying cannot help: the set-up (host name, CA) is wrong
            raise ProbeVoid(f"smtp_tls: our server's certificate does not verify; check the host name or set "
                            f"ca_file ({_describe(exc)})") from None
        raise ProbeRetry(f"smtp_unreachable: {_describe(exc)}") from None
    except aiosmtplib.SMTPException as exc:  # e.g. no AUTH offered, TLS impossible: our set-up is wrong
        raise ProbeVoid(f"smtp_setup: {_describe(exc)}") from None


async def _envelope(client: aiosmtplib.SMTP, sender: str, recipients: Sequence[str]) -> None:
    try:
        await client.mail(sender)
        for recipient in recipients:
            await client.rcpt(recipient)
    except aiosmtplib.SMTPResponseException as exc:
        _raise_for_reply("smtp_refused", exc)
    except TRANSIENT_ERRORS as exc:
        raise ProbeRetry(f"smtp_unreachable: {_describe(exc)}") from None


async def _data(client: aiosmtplib.SMTP, message: EmailMessage) -> str:
    try:
        response = await client.data(message.as_bytes())
    except aiosmtplib.SMTPResponseException as exc:
        _raise_for_reply("smtp_refused", exc)
    except TRANSIENT_ERRORS as exc:
        raise ProbeVoid(f"smtp_uncertain: the connection failed during DATA ({_describe(exc)}); "
                        "the message may have left, so it is not sent again") from None
    return f"{response.code} {response.message}"


def _certificate_refused(exc: BaseException) -> bool:
    """aiosmtplib wraps TLS failures in SMTPConnectError; look at what it wraps."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _raise_for_reply(prefix: str, exc: aiosmtplib.SMTPResponseException) -> None:
    reply = f"{exc.code} {exc.message}".strip()[:160]
    if 400 <= exc.code < 500:
        raise ProbeRetry(f"smtp_busy: our server answered {reply}") from None
    raise ProbeVoid(f"{prefix}: our server answered {reply}") from None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:160]
