"""The PostgreSQL and MariaDB servers the tests and benchmarks talk to: the configured one, or one of our own.

`postgres_server()` and `mariadb_server()` yield a `DatabaseServer`.  When
something answers at the configured address — by default PostgreSQL at
127.0.0.1:5432 (user postgres, trust auth) and MariaDB at 127.0.0.1:3306
(root, no password) — that server is used as it is (the fast path).
Otherwise a throw-away server is started for the caller, so a fresh Debian
machine with only the packages installed runs the same tests:

- PostgreSQL: `initdb` (trust auth, superuser `postgres`) into a new
  directory under /tmp, then `postgres` on 127.0.0.1 at a free port, its unix
  socket in that directory;
- MariaDB: `mariadb-install-db` (root with no password) into a new directory,
  then `mariadbd` on 127.0.0.1 at a free port with its own socket, pid file
  and log; grant tables are loaded as usual.

Both are stopped and their directory removed on exit; if the test process
dies first, the kernel stops them too (parent-death signal).  PostgreSQL
refuses to run as root, so as root both run as their Debian service user
(`postgres`, `mysql`; `nobody` if missing) — which is also why they live
under /tmp and not in pytest's private, root-only tmp directory.

The configured address comes from the environment:

| variable | default |
|---|---|
| `QUALIMON_TEST_PG_ADMIN` | `postgresql://postgres@127.0.0.1:$QUALIMON_TEST_PG_PORT/test` |
| `QUALIMON_TEST_PG_PORT` | `5432` |
| `QUALIMON_TEST_MARIADB_ADMIN` | `mysql://root@127.0.0.1:$QUALIMON_TEST_MARIADB_PORT/` |
| `QUALIMON_TEST_MARIADB_PORT` | `3306` |

Pointing a port at a closed one is how a machine without the servers
running is reproduced on one that has them.  Nothing here depends on pytest:
`ServerUnavailable` says what is missing, and the test fixtures turn it into
a skip (a failure under QUALIMON_REQUIRE_INTEGRATION=1).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.support.integration import free_port, tcp_open

Kind = Literal["postgresql", "mariadb"]
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0


class ServerUnavailable(Exception):
    """No server answers at the configured address and none can be started here; the message says why."""


@dataclass(frozen=True)
class DatabaseServer:
    """A database server that answers: where it is, and how to make and drop scratch databases on it."""

    kind: Kind
    admin: URL                # SQLAlchemy async URL of the database to administer from
    root: Path | None = None  # the throw-away server's directory; None for the configured server
    pid: int | None = None    # the throw-away server's main process (it leads its own process group)

    @property
    def host(self) -> str:
        return self.admin.host or "127.0.0.1"

    @property
    def port(self) -> int:
        return self.admin.port or (5432 if self.kind == "postgresql" else 3306)

    def url(self, database: str) -> str:
        """The SQLAlchemy async URL (asyncpg, aiomysql) of `database` on this server."""
        return self.admin.set(database=database).render_as_string(hide_password=False)

    def dsn(self, database: str | None = None) -> str:
        """The plain libpq URL asyncpg.connect() takes (PostgreSQL only)."""
        assert self.kind == "postgresql", "dsn() is the libpq form; MariaDB has none"
        plain = self.admin.set(drivername="postgresql")
        return (plain.set(database=database) if database else plain).render_as_string(hide_password=False)

    def describe(self) -> str:
        which = "throw-away" if self.root else "configured"
        return f"{which} {self.kind} at {self.host}:{self.port} (user {self.admin.username})"

    async def create_database(self, prefix: str = "qualimon_test") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        await self._admin(f"CREATE DATABASE {self._quote(name)}")
        return name

    async def drop_database(self, name: str) -> None:
        force = " WITH (FORCE)" if self.kind == "postgresql" else ""
        await self._admin(f"DROP DATABASE IF EXISTS {self._quote(name)}{force}")

    @contextlib.asynccontextmanager
    async def scratch(self, prefix: str = "qualimon_test") -> AsyncIterator[str]:
        """A new empty database (its SQLAlchemy URL), dropped on exit."""
        name = await self.create_database(prefix)
        try:
            yield self.url(name)
        finally:
            await self.drop_database(name)

    def _quote(self, name: str) -> str:
        return f'"{name}"' if self.kind == "postgresql" else f"`{name}`"

    async def _admin(self, sql: str) -> None:
        engine = create_async_engine(self.admin, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()


# ---- the configured servers


def configured_postgres() -> URL:
    port = os.environ.get("QUALIMON_TEST_PG_PORT", "5432")
    url = os.environ.get("QUALIMON_TEST_PG_ADMIN") or f"postgresql://postgres@127.0.0.1:{port}/test"
    return make_url(url).set(drivername="postgresql+asyncpg")


def configured_mariadb() -> URL:
    port = os.environ.get("QUALIMON_TEST_MARIADB_PORT", "3306")
    url = os.environ.get("QUALIMON_TEST_MARIADB_ADMIN") or f"mysql://root@127.0.0.1:{port}/"
    return make_url(url).set(drivername="mysql+aiomysql")


def postgres_server() -> contextlib.AbstractContextManager[DatabaseServer]:
    """The configured PostgreSQL if it answers, else a throw-away one for the duration of the block."""
    return _configured_or_started(DatabaseServer("postgresql", configured_postgres()), throwaway_postgres)


def mariadb_server() -> contextlib.AbstractContextManager[DatabaseServer]:
    """The configured MariaDB if it answers, else a throw-away one for the duration of the block."""
    return _configured_or_started(DatabaseServer("mariadb", configured_mariadb()), throwaway_mariadb)


@contextlib.contextmanager
def _configured_or_started(configured: DatabaseServer,
                           start: Callable[[DatabaseServer], contextlib.AbstractContextManager[DatabaseServer]],
                           ) -> Iterator[DatabaseServer]:
    if tcp_open(configured.host, configured.port):
        yield configured
        return
    with start(configured) as server:
        yield server


# ---- throw-away servers


@contextlib.contextmanager
def throwaway_postgres(configured: DatabaseServer | None = None) -> Iterator[DatabaseServer]:
    """`initdb` + `postgres` on a free loopback port; stopped and removed on exit.

    Start it from the main thread: the parent-death signal fires when the *thread* that started it ends.
    """
    bindir = _postgres_bindir(configured)
    owner = _owner("postgres")
    with _private_directory("qualimon-postgres-", owner) as root:
        _run_as(owner, [f"{bindir}/initdb", "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
                        "--encoding=UTF8", "--locale=C", "--no-sync"], root / "initdb.log")
        port = free_port()
        # A test server: durability is not worth the fsyncs.
        command = [f"{bindir}/postgres", "-D", str(root / "data"), "-p", str(port), "-k", str(root),
                   "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                   "-c", "full_page_writes=off", "-c", "max_connections=200"]
        ready = functools.partial(_pg_ready, bindir, port)
        # SIGINT is PostgreSQL's fast shutdown: sessions are cut, no waiting for clients to leave.
        with _serving(owner, command, root / "postgres.log", ready, signal.SIGINT, "PostgreSQL") as pid:
            yield DatabaseServer("postgresql", make_url(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"),
                                 root, pid)


@contextlib.contextmanager
def throwaway_mariadb(configured: DatabaseServer | None = None) -> Iterator[DatabaseServer]:
    """`mariadb-install-db` + `mariadbd` on a free loopback port; stopped and removed on exit (main thread too)."""
    install_db = _mariadb_program("mariadb-install-db", configured)
    mariadbd = _mariadb_program("mariadbd", configured)
    owner = _owner("mysql")
    with _private_directory("qualimon-mariadb-", owner) as root:
        # --no-defaults first: /etc/mysql/my.cnf would bring the system server's socket and port.
        common = ["--no-defaults", f"--datadir={root / 'data'}", "--skip-name-resolve", "--innodb-log-file-size=8M"]
        _run_as(owner, [install_db, *common, "--auth-root-authentication-method=normal", "--skip-test-db"],
                root / "install-db.log")
        port = free_port()
        command = [mariadbd, *common, f"--port={port}", "--bind-address=127.0.0.1", f"--socket={root / 'mysqld.sock'}",
                   f"--pid-file={root / 'mysqld.pid'}", f"--log-error={root / 'mariadbd.log'}", f"--tmpdir={root}",
                   "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=0"]
        ready = functools.partial(_mysql_greets, port)
        with _serving(owner, command, root / "mariadbd.log", ready, signal.SIGTERM, "MariaDB") as pid:
            yield DatabaseServer("mariadb", make_url(f"mysql+aiomysql://root@127.0.0.1:{port}/"), root, pid)


def _postgres_bindir(configured: DatabaseServer | None) -> str:
    """Debian keeps initdb and postgres out of PATH, in /usr/lib/postgresql/<major>/bin; take the newest."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    if initdb is None:
        raise ServerUnavailable(_missing(configured, "postgresql", "initdb", "postgresql"))
    return str(Path(initdb).parent)


def _mariadb_program(name: str, configured: DatabaseServer | None) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)
    if path is None:
        raise ServerUnavailable(_missing(configured, "mariadb", name, "mariadb-server"))
    return path


def _missing(configured: DatabaseServer | None, kind: Kind, program: str, package: str) -> str:
    """What is missing, phrased to follow "needs" (tests.support.integration.need)."""
    server = {"postgresql": "PostgreSQL (user postgres, trust auth)", "mariadb": "MariaDB (root, no password)"}[kind]
    variable = {"postgresql": "QUALIMON_TEST_PG_PORT", "mariadb": "QUALIMON_TEST_MARIADB_PORT"}[kind]
    where = f"at {configured.host}:{configured.port}" if configured else "on this machine"
    return (f"{server} {where} (address: {variable}), or the {program!r} program to start a throw-away one "
            f"(Debian package {package}; `scripts/install-test-servers` installs it)")


@dataclass(frozen=True)
class _Owner:
    uid: int
    gid: int

    @property
    def is_us(self) -> bool:
        return self.uid == os.geteuid()


def _owner(service_user: str) -> _Owner:
    """Who runs the server: ourselves, or — as root, which PostgreSQL refuses — the package's service user."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
    else:
        try:
            entry = pwd.getpwnam(service_user)
        except KeyError:
            entry = pwd.getpwnam("nobody")
    return _Owner(entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def _private_directory(prefix: str, owner: _Owner) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if not owner.is_us:
            os.chown(root, owner.uid, owner.gid)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _as_owner(owner: _Owner) -> dict[str, Any]:
    """Popen arguments that run the child as `owner` (nothing when that is us)."""
    if owner.is_us:
        return {}
    return {"user": owner.uid, "group": owner.gid, "extra_groups": []}


def _run_as(owner: _Owner, command: list[str], log: Path) -> None:
    with open(log, "wb") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, check=False,
                              timeout=START_TIMEOUT_SECONDS, **_as_owner(owner))
    if done.returncode != 0:
        raise RuntimeError(f"{Path(command[0]).name} failed (exit {done.returncode}):\n{_tail(log)}")


@contextlib.contextmanager
def _serving(owner: _Owner, command: list[str], log: Path, ready: Callable[[], bool], stop_signal: int,
             what: str) -> Iterator[int]:
    """Run `command` until the block ends (yields its pid): wait until `ready()`; at the end `stop_signal`,
    then SIGKILL if it lingers."""
    with open(log, "ab") as out:
        # Own session, so the stop reaches every process it forked; the parent-death signal stops it
        # if the test process is killed before it can.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
                                   start_new_session=True, preexec_fn=_stop_with_parent,
                                   **_as_owner(owner))
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the throw-away {what} did not start:\n{_tail(log)}")
            time.sleep(0.05)
        yield process.pid
    finally:
        _stop(process, stop_signal)


def _stop_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _stop(process: subprocess.Popen[bytes], stop_signal: int) -> None:
    for signum, wait in ((stop_signal, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, STOP_TIMEOUT_SECONDS)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=wait)
            return


def _pg_ready(bindir: str, port: int) -> bool:
    """What `pg_ctl start -w` waits for: the server accepts connections (not only the port)."""
    return subprocess.run([f"{bindir}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)],
                          check=False, timeout=10).returncode == 0


def _mysql_greets(port: int) -> bool:
    """The server's handshake packet (protocol version 10 after the 4-byte header): it takes logins."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.settimeout(2)
            return sock.recv(5)[4:5] == b"\x0a"
    except OSError:
        return False


def _tail(log: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"
