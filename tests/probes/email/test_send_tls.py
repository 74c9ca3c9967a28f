"""Sending over STARTTLS and implicit TLS to a real aiosmtpd with a certificate from a private CA."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP

from monitor.store.store import Store
from probes.email import KIND
from tests.conftest import config_from
from tests.support.integration import need_binary
from tests.support.probing import run_one
from tests.support.smtp import RecordingHandler, password_checker

pytestmark = pytest.mark.integration

CONFIG = """
calendars: {{offices: {{holidays: null}}}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {{host: localhost, port: {port}, tls: {tls}, ca_file: "{ca}", username: jeanne, password: "s3cret-tls-pass"}}
    maildir: {maildir}
runner: {{timeout_seconds: 10}}
sites:
  - {{id: maison-victor-hugo, name: Maison de Victor Hugo, calendar: offices,
      email: {{address: contact.mvh@example.org, per_month: 0}}}}
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    need_binary("openssl", "openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


async def serve(handler: RecordingHandler, certificate: tuple[Path, Path], implicit: bool) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    context = server_context(certificate)
    options = {"authenticator": password_checker("jeanne", "s3cret-tls-pass"), "auth_required": True}
    if implicit:
        return await loop.create_server(lambda: SMTP(handler, hostname="localhost", auth_require_tls=False, **options),
                                        "127.0.0.1", 0, ssl=context)
    return await loop.create_server(lambda: SMTP(handler, hostname="localhost", tls_context=context,
                                                 require_starttls=True, **options), "127.0.0.1", 0)


async def send_through(store: Store, tmp_path: Path, port: int, tls: str, ca: Path) -> str:
    config = config_from(CONFIG.format(port=port, tls=tls, ca=ca, maildir=tmp_path / "Maildir"))
    found = await store.probe(await run_one(store, config, {"email": KIND}, "maison-victor-hugo", "email"))
    return f"{found.status} {found.void_reason or ''}".strip()


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_it_sends_over_tls_verifying_the_server_with_the_configured_ca(tmp_path, sqlite_store, certificate,
                                                                              tls) -> None:
    handler = RecordingHandler()
    server = await serve(handler, certificate, implicit=tls == "implicit")
    try:
        status = await send_through(sqlite_store, tmp_path, server.sockets[0].getsockname()[1], tls, certificate[0])
    finally:
        server.close()
        await server.wait_closed()
    assert status == "sent" and len(handler.received) == 1


async def test_a_certificate_it_cannot_verify_voids_the_probe_and_sends_nothing(tmp_path, sqlite_store,
                                                                                 certificate) -> None:
    handler = RecordingHandler()
    server = await serve(handler, certificate, implicit=True)
    try:
        status = await send_through(sqlite_store, tmp_path, server.sockets[0].getsockname()[1], "implicit",
                                    Path("/etc/ssl/certs/ca-certificates.crt"))
    finally:
        server.close()
        await server.wait_closed()
    assert status.startswith("void smtp_tls") and handler.received == []
