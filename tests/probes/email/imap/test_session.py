"""ImapSession's error handling that needs no server: the password never travels up in an error."""

from __future__ import annotations

import asyncio

import aioimaplib  # type: ignore[import-untyped]
import pytest

from probes.email.imap.parse import ImapFailure
from probes.email.imap.session import ImapSession


async def test_an_aioimaplib_error_quoting_the_login_command_loses_the_password_on_the_way_up() -> None:
    secret = "pw-in-an-error-Kq9"

    async def failing_login() -> None:
        raise aioimaplib.Abort(f'unexpected tagged response with pending sync command (A1 LOGIN jeanne "{secret}")')

    session = ImapSession(client=None, lost=asyncio.Event(), secret=secret)  # type: ignore[arg-type]
    with pytest.raises(ImapFailure) as raised:
        await session._call(failing_login(), "login")

    assert secret not in str(raised.value) and "***" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
