"""`-v` logs never show a secret of the config, in any of the forms it travels in on the wire.

The unit tests feed the redactor the lines libraries really write (aioimaplib's
`Sending : b'…LOGIN…'`, SMTP AUTH in base64, a database URL, a traceback).
The integration test runs the CLI's own logging set-up and config loading,
then a real IMAP LOGIN against Dovecot and SMTP AUTH (PLAIN, then LOGIN)
against aiosmtpd, with every logger at DEBUG, and greps all that was logged.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from monitor import cli, logsecrets
from monitor.logsecrets import SecretRedactor, config_secrets, imap_quoted
from probes.email.owncopy import find_message
from tests.monitor.api.conftest import SECRETS, api_config
from tests.support.dovecot import running_dovecot
from tests.support.integration import need
from tests.support.smtp import RecordingHandler, password_checker, smtp_server

# Quotes and a backslash (escaped by IMAP LOGIN and by repr), a non-ASCII letter (\xc3\xb6 in a bytes repr).
PASSWORD = "p\"a\\ss'wörd"


def wire_forms(password: str, user: str = "jeanne") -> dict[str, str]:
    """How the password leaves us: what a log line of each protocol would quote."""
    raw = password.encode()
    return {
        "raw": password,
        "imap quoted": imap_quoted(password),
        "imap quoted, bytes repr": repr(imap_quoted(password).encode())[2:-1],
        "bytes repr": repr(raw)[2:-1],
        "str repr": repr(password)[1:-1],
        "json": json.dumps(password)[1:-1],
        "url": quote(password, safe=""),
        "auth plain": base64.b64encode(b"\0" + user.encode() + b"\0" + raw).decode(),
        "auth plain, authzid": base64.b64encode(user.encode() + b"\0" + user.encode() + b"\0" + raw).decode(),
        "auth login": base64.b64encode(raw).decode(),
    }


def leaks(text: str, password: str = PASSWORD) -> list[str]:
    return [name for name, form in wire_forms(password).items() if form in text]


@pytest.fixture
def redactor() -> SecretRedactor:
    redactor = SecretRedactor()
    redactor.add([PASSWORD])
    return redactor


def test_every_wire_form_of_a_password_is_masked(redactor: SecretRedactor) -> None:
    forms = wire_forms(PASSWORD)
    lines = [
        "Sending : %s" % (b'A001 LOGIN jeanne "' + imap_quoted(PASSWORD).encode() + b'"\r\n'),  # aioimaplib
        f"readline: b'AUTH PLAIN {forms['auth plain']}\\r\\n'",
        f"readline: b'{forms['auth login']}\\r\\n'",
        f"connecting to postgresql+asyncpg://qualimon:{forms['url']}@db.example.net/qualimon",
        json.dumps({"password": PASSWORD}), repr({"password": PASSWORD}), repr(PASSWORD.encode()),
    ]
    shown = redactor.redact("\n".join(lines))
    assert leaks(shown) == [] and shown.count("***") >= len(lines)


@pytest.mark.parametrize("user", ["j", "jeanne", "jeanne.martin@probes.example.net"])
def test_auth_plain_is_masked_whatever_the_length_of_the_user_name(redactor: SecretRedactor, user: str) -> None:
    line = base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode()).decode()
    assert leaks(redactor.redact(line)) == []


def test_a_traceback_that_quotes_a_password_is_masked(redactor: SecretRedactor) -> None:
    record = logging.LogRecord("qualimon", logging.ERROR, __file__, 1, "login failed for %s", ("jeanne",), None)
    try:
        raise RuntimeError(f"server said: bad password {PASSWORD!r}")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    assert redactor.filter(record)
    shown = logging.Formatter().format(record)
    assert "login failed for jeanne" in shown and "RuntimeError" in shown and leaks(shown) == []


def test_every_secret_of_the_config_is_known(tmp_path: Path) -> None:
    config = api_config().model_copy(update={
        "database": f"postgresql+asyncpg://qualimon:{quote(PASSWORD, safe='')}@db.example.net/qualimon"})
    assert config_secrets(config) == set(SECRETS.values()) | {PASSWORD}


# ---------------------------------------------------------------- against real servers

CONFIG = """
database: {database}
calendars:
  offices: {{holidays: {{country: FR}}}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none, username: jeanne, password: "${{MAIL_PASSWORD}}"}}
    imap: {{host: 127.0.0.1, port: {imap_port}, tls: none, username: jeanne, password: "${{MAIL_PASSWORD}}"}}
runner: {{timeout_seconds: 10}}
sites:
  - {{id: maison-victor-hugo, name: Maison de Victor Hugo, calendar: offices,
      email: {{address: contact.mvh@example.org, per_month: 0}}}}
"""


@pytest.fixture
def everything_at_debug(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """What `qualimon -v` sets up, and then every library logger at DEBUG too (the CLI quiets a few)."""
    cli.setup_logging(verbose=True)
    caplog.set_level(logging.DEBUG)
    quieted = {name: logging.getLogger(name).level for name in ("mail.log", "aiosqlite", "asyncio", "alembic")}
    for name in quieted:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog
    for name, level in quieted.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.integration
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_imap_login_and_smtp_auth_at_debug_never_show_the_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, everything_at_debug: pytest.LogCaptureFixture,
        postgres_url: str | None, mechanism: str) -> None:
    need(postgres_url is not None, "PostgreSQL at 127.0.0.1:5432 (a password in the database URL)")
    assert postgres_url is not None
    database = postgres_url.replace("postgres@", f"postgres:{quote(PASSWORD, safe='')}@")  # trust auth ignores it
    monkeypatch.setenv("MAIL_PASSWORD", PASSWORD)
    excluded = tuple({"PLAIN", "LOGIN"} - {mechanism})
    with running_dovecot(password=PASSWORD) as dovecot:
        async with smtp_server(RecordingHandler(), authenticator=password_checker("jeanne", PASSWORD),
                               auth_exclude=excluded) as smtp_port:
            path = tmp_path / "qualimon.yaml"
            path.write_text(CONFIG.format(database=database, smtp_port=smtp_port, imap_port=dovecot.port),
                            encoding="utf-8")
            config = cli._load(str(path))
            sent = await cli._probe(config, "maison-victor-hugo", "email")    # SMTP AUTH, SQL at DEBUG
            found = await find_message(config.mailboxes["mystery"], "<no-such-message@example.org>")  # LOGIN
    logged = everything_at_debug.text
    assert (sent, found) == (0, None)
    assert "LOGIN jeanne" in logged and f"AUTH {mechanism}" in logged     # the lines that carry it were logged
    assert leaks(logged) == []
    assert logsecrets.MASK in logged
