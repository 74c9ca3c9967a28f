"""A throw-away Dovecot IMAP server (Debian `dovecot-imapd`) for integration tests and benchmarks.

`running_dovecot()` writes a config into a fresh directory under /tmp, starts
`dovecot -F` on 127.0.0.1 at a free port (plain text, `ssl = no`; with
`tls=True` also an implicit-TLS port with a self-signed certificate), waits
until it accepts connections, and kills it on exit.  One user, the mystery
mailbox `jeanne` (jeanne.martin@probes.example.net), keeps its mail in a
Maildir that the helpers can fill three ways:

- `append()` / `aappend()`: IMAP APPEND, as a mail client or a test would;
- `append_many()`: many messages per APPEND command (MULTIAPPEND + LITERAL+),
  for backlogs of thousands;
- `deliver_file()`: a file dropped into the Maildir's `new/`, as the local
  delivery agent does — the only way while the server is down.

`stop()` stops Dovecot as `systemctl stop` does (SIGTERM to every process:
clients in IDLE get BYE), `start()` brings it back on the same port and
returns once it greets, `restart()` does both; `kill()` (SIGKILL, no BYE) is
the teardown.  When running as root, the mail processes run as the `dovecot`
user, so everything lives outside pytest's private tmp directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from pydantic import SecretStr

from monitor.config.models import ImapConfig
from tests.support.integration import free_port, need_binary, tcp_open

USER = "jeanne"
ADDRESS = "jeanne.martin@probes.example.net"
# A test password, distinctive so a leak test can grep for it.
PASSWORD = "pw-Qm7-not-a-real-secret"
NO_IDLE_CAPABILITY = "IMAP4rev1 LITERAL+ SASL-IR UIDPLUS"


def _owner() -> tuple[str, int, int]:
    """Who runs the mail processes: `dovecot` when we are root, ourselves otherwise."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("dovecot")
    else:
        entry = pwd.getpwuid(os.geteuid())
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _config(root: Path, port: int, tls_port: int | None, idle: bool) -> str:
    owner, _, _ = _owner()
    login_user = "dovenull" if os.geteuid() == 0 else owner
    lines = [
        f"base_dir = {root}/run",
        f"state_dir = {root}/state",
        f"log_path = {root}/dovecot.log",
        f"instance_name = qualimon-test-{port}",
        "protocols = imap",
        "listen = 127.0.0.1",
        "ssl = yes" if tls_port else "ssl = no",
        "disable_plaintext_auth = no",
        "auth_mechanisms = plain login",
        "first_valid_uid = 1",
        f"default_login_user = {login_user}",
        f"default_internal_user = {owner}",
        f"mail_location = maildir:{root}/mail/%u",
        "mail_fsync = never",                # a test server: speed over durability
        "mail_max_userip_connections = 200",
        "auth_failure_delay = 0",            # a refused login answers at once (tests of wrong passwords)
        "passdb {",
        "  driver = passwd-file",
        f"  args = scheme=PLAIN {root}/passwd",
        "}",
        "userdb {",
        "  driver = static",
        f"  args = uid={owner} gid={owner} home={root}/mail/%u",
        "}",
        "service imap-login {",
        "  inet_listener imap {",
        "    address = 127.0.0.1",
        f"    port = {port}",
        "  }",
        "  inet_listener imaps {",
        "    address = 127.0.0.1",
        f"    port = {tls_port or 0}",
        "  }",
        "}",
    ]
    if tls_port:
        lines += [f"ssl_cert = <{root}/cert.pem", f"ssl_key = <{root}/key.pem"]
    if not idle:
        lines.append(f"imap_capability = {NO_IDLE_CAPABILITY}")
    return "\n".join(lines) + "\n"


@dataclass
class DovecotServer:
    root: Path
    port: int
    tls_port: int | None = None
    host: str = "127.0.0.1"
    user: str = USER
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = None
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / self.user

    @property
    def cafile(self) -> Path:
        return self.root / "cert.pem"

    # ---- process

    def start(self, timeout: float = 10.0) -> None:
        """Start Dovecot and return once it greets IMAP clients (a bound port alone is not enough)."""
        binary = need_binary("dovecot", "dovecot-imapd")
        # A master killed while starting leaves this lock; the next one would wait ~5 s on it while
        # already accepting connections that nobody answers.  No master of ours runs now: drop it.
        (self.root / "state" / "instances.lock").unlink(missing_ok=True)
        with open(self.root / "dovecot.stderr", "ab") as log:
            # Own session: kill() reaches the master and every process it forked.
            self.process = subprocess.Popen([binary, "-F", "-c", str(self.conf)], stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while not _greets(self.host, self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not start: {self.log_tail()}")
            time.sleep(0.02)

    def stop(self, grace: float = 0.5) -> None:
        """Stop as `systemctl stop dovecot` does: SIGTERM to every process (clients get BYE), then SIGKILL.

        Not `doveadm stop`: with Dovecot 2.3.19 it stops the master only and the
        imap processes keep serving their clients.  The master itself then takes
        seconds to wind down, so what is left after `grace` is killed.
        """
        self._signal_group(signal.SIGTERM)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        self.kill()

    def kill(self) -> None:
        """Stop at once (SIGKILL to the whole process group): connections are reset, no BYE."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=10)
            self.process = None
        deadline = time.monotonic() + 10
        while tcp_open(self.host, self.port, timeout=0.2) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _signal_group(self, signum: int) -> None:
        if self.process is not None:
            # The master leads its own session and process group: this reaches every process it forked.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("dovecot.log", "dovecot.stderr"):
            with contextlib.suppress(OSError):
                text += (self.root / name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def doveadm(self, *args: str) -> str:
        result = subprocess.run([need_binary("doveadm", "dovecot-core"), "-c", str(self.conf), *args],
                                check=False, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"doveadm {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        """What a server migration does to a folder: same messages, new UIDVALIDITY."""
        self.doveadm("mailbox", "update", "-u", self.user, "--uid-validity", str(value), folder)

    # ---- config for the code under test

    def imap_config(self, **overrides: object) -> ImapConfig:
        values: dict[str, object] = {
            "host": self.host, "port": self.port, "tls": "none", "username": self.user,
            "password": SecretStr(self.password), "timeout_seconds": 10.0,
        }
        if overrides.get("tls") == "implicit":
            values["port"] = self.tls_port
        values.update(overrides)
        return ImapConfig.model_validate(values)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cafile))
        context.check_hostname = False  # the certificate names "localhost"; we connect to 127.0.0.1
        return context

    # ---- mail in, flags out

    @contextlib.contextmanager
    def client(self) -> Iterator[imaplib.IMAP4]:
        connection = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            connection.login(self.user, self.password)
            yield connection
        finally:
            with contextlib.suppress(Exception):
                connection.logout()

    def uids(self, folder: str = "INBOX") -> list[int]:
        """Every UID in the folder (read-only): what a test counts the watcher's work against."""
        with self.client() as connection:
            connection.select(_quote(folder).decode(), readonly=True)
            status, data = connection.uid("search", None, "ALL")
        if status != "OK":
            raise RuntimeError(f"SEARCH refused: {data!r}")
        return [int(uid) for uid in data[0].split()]

    def append(self, raw: bytes, folder: str = "INBOX", *, when: datetime | None = None) -> int:
        """IMAP APPEND; returns the new message's UID."""
        with self.client() as connection:
            stamp = imaplib.Time2Internaldate(when) if when is not None else None
            status, data = connection.append(folder, "", stamp, raw)
        if status != "OK":
            raise RuntimeError(f"APPEND refused: {data!r}")
        return _appended_uids(data[0])[-1]

    async def aappend(self, raw: bytes, folder: str = "INBOX") -> int:
        """`append` without blocking the event loop the watcher under test runs on."""
        return await asyncio.to_thread(self.append, raw, folder)

    def append_many(self, raws: Sequence[bytes], folder: str = "INBOX", per_command: int = 1000) -> list[int]:
        """Thousands of messages, `per_command` per APPEND (MULTIAPPEND, LITERAL+: no round trip each)."""
        uids: list[int] = []
        with self.client() as connection:
            for number, start in enumerate(range(0, len(raws), per_command)):
                tag = f"QM{number}".encode()
                command = bytearray(tag + b" APPEND " + _quote(folder))
                for raw in raws[start:start + per_command]:
                    command += b" {%d+}\r\n" % len(raw) + raw
                connection.send(bytes(command) + b"\r\n")
                uids += _appended_uids(_tagged_ok(connection, tag))
        return uids

    def deliver_file(self, raw: bytes) -> Path:
        """Drop a message into `new/` as a local delivery agent would (works while Dovecot is down)."""
        _, uid, gid = _owner()
        for sub in ("tmp", "new", "cur"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.maildir / sub, uid, gid)
        os.chown(self.maildir, uid, gid)
        name = f"{int(time.time())}.M{time.time_ns() // 1000 % 1_000_000}P{os.getpid()}Q{next(self._names)}.qualimon"
        temporary = self.maildir / "tmp" / name
        temporary.write_bytes(raw)
        os.chown(temporary, uid, gid)
        target = self.maildir / "new" / name
        temporary.rename(target)
        return target

    def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        """The message's flags, read by a separate session (read-only, so the check changes nothing)."""
        with self.client() as connection:
            connection.select(_quote(folder).decode(), readonly=True)
            status, data = connection.uid("FETCH", str(uid), "(FLAGS)")
        if status != "OK" or not data or data[0] is None:
            raise RuntimeError(f"no message with UID {uid}")
        found = re.search(rb"FLAGS \(([^)]*)\)", data[0] if isinstance(data[0], bytes) else data[0][0])
        return set(found.group(1).decode().split()) if found else set()


def _greets(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _quote(folder: str) -> bytes:
    return b'"' + folder.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


def _appended_uids(response: bytes) -> list[int]:
    """UIDs from `[APPENDUID <validity> <uid-set>]` (RFC 4315), e.g. `55:5054` or `7`."""
    found = re.search(rb"APPENDUID \d+ ([0-9:,]+)", response)
    if found is None:
        raise RuntimeError(f"no APPENDUID in {response!r}")
    uids: list[int] = []
    for part in found.group(1).split(b","):
        low, _, high = part.partition(b":")
        uids.extend(range(int(low), int(high or low) + 1))
    return uids


def _tagged_ok(connection: imaplib.IMAP4, tag: bytes) -> bytes:
    while True:
        line = connection.readline()
        if not line:
            raise RuntimeError("connection closed during APPEND")
        if line.startswith(tag + b" "):
            if not line.startswith(tag + b" OK"):
                raise RuntimeError(f"APPEND refused: {line!r}")
            return line


def _self_signed(root: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )


@contextlib.contextmanager
def running_dovecot(*, idle: bool = True, tls: bool = False, directory: Path | None = None,
                    password: str = PASSWORD) -> Iterator[DovecotServer]:
    """A started Dovecot; killed and its files removed on exit.  Skips (fails in CI) without dovecot.

    `password` is jeanne's (any text without ':' or a line break, the passwd-file separators)."""
    need_binary("dovecot", "dovecot-imapd")
    if tls:
        need_binary("openssl", "openssl")
    root = Path(tempfile.mkdtemp(prefix="qualimon-dovecot-", dir=directory))
    root.chmod(0o755)  # the mail processes (user dovecot) must reach their Maildir
    _, uid, gid = _owner()
    (root / "mail").mkdir()
    os.chown(root / "mail", uid, gid)
    (root / "state").mkdir()
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
    server = DovecotServer(root, free_port(), free_port() if tls else None, password=password)
    if tls:
        _self_signed(root)
    server.conf.write_text(_config(root, server.port, server.tls_port, idle))
    try:
        server.start()
        yield server
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


def message(subject: str, *, number: int = 0, sender: str = "accueil.mvh@example.org", body: str = "",
            message_id: str | None = None) -> bytes:
    """A small plausible reply to the mystery user (CRLF line ends, as on the wire)."""
    message_id = message_id or f"<reply-{number}-{time.time_ns()}@example.org>"
    lines = [
        f"From: Accueil Maison de Victor Hugo <{sender}>",
        f"To: Jeanne Martin <{ADDRESS}>",
        f"Subject: {subject}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        body or f"Bonjour Madame Martin,\n\nMerci pour votre message (n° {number}).\n\nCordialement,\nL'accueil",
    ]
    return ("\n".join(lines) + "\n").replace("\n", "\r\n").encode()
