"""Fixtures shared by the whole suite: configs, clocks, the two store backends and the database servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from monitor import logsecrets
from monitor.clock import FakeClock
from monitor.config import Config, load_config, parse_config
from monitor.store.store import Store
from tests.support import databases, dbservers
from tests.support.dbservers import DatabaseServer
from tests.support.integration import need

ROOT = Path(__file__).resolve().parent.parent
PARIS = ROOT / "config" / "paris-musees.yaml"


@pytest.fixture(autouse=True)
def no_secrets_remembered_from_other_tests() -> Iterator[None]:
    """The CLI puts its log redactor on pytest's (session-wide) capture handlers: take it off after each
    test, so a leak test never passes because an earlier test taught the redactor that secret."""
    yield
    logsecrets.reset()


@pytest.fixture
def paris_config() -> Config:
    return load_config(PARIS)


@pytest.fixture
def clock() -> FakeClock:
    # A Tuesday morning in Paris, museums open: 2026-06-02 10:30 CEST.
    return FakeClock(datetime(2026, 6, 2, 8, 30, tzinfo=timezone.utc))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(tmp_path_factory.mktemp("sqlite-template"))


def _server(find: Callable[[], AbstractContextManager[DatabaseServer]]) -> Iterator[DatabaseServer]:
    """The server `find` yields; a skip with the reason (a failure in CI) when there is none and none can start."""
    try:
        with find() as server:
            yield server
    except dbservers.ServerUnavailable as missing:
        need(False, str(missing))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[DatabaseServer]:
    """The configured PostgreSQL, or a throw-away one started on first use and stopped at session end."""
    yield from _server(dbservers.postgres_server)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[DatabaseServer]:
    """The configured MariaDB, or a throw-away one started on first use and stopped at session end."""
    yield from _server(dbservers.mariadb_server)


@pytest.fixture(scope="session")
def postgres_url(postgres_server: DatabaseServer) -> Iterator[str]:
    """One migrated PostgreSQL database for the session (tests empty its tables), dropped at the end."""
    name, url = databases.create_pg_database(postgres_server)
    yield url
    databases.drop_pg_database(postgres_server, name)


@pytest.fixture
async def sqlite_store(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store, for tests that need one backend only (they test a protocol, not the store)."""
    opened = Store.open(databases.fresh_sqlite(sqlite_template, tmp_path))
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh SQLite file, or the session's PostgreSQL database — asked for only here, so that SQLite runs
    never start a server (and not from the async `store`: the server's set-up runs its own event loop)."""
    if request.param == "sqlite":
        return databases.fresh_sqlite(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """The same suite runs against SQLite and PostgreSQL; each test starts from empty tables."""
    opened = Store.open(store_url)
    if opened.postgres:
        await databases.empty_tables(opened)
    yield opened
    await opened.close()


def config_from(text: str, **environ: str) -> Config:
    return parse_config(text, environ=environ)


def paris_in(workdir: Path, port: int = 9137) -> Path:
    """The Paris config rewritten to live in `workdir`: database, (empty) call log and Maildir, HTTP port."""
    cdr = workdir / "Master.csv"
    cdr.touch()
    for sub in ("new", "cur", "tmp"):
        (workdir / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
    text = (PARIS.read_text(encoding="utf-8")
            .replace("sqlite+aiosqlite:///qualimon.db", f"sqlite+aiosqlite:///{workdir / 'q.db'}")
            .replace("127.0.0.1:9137", f"127.0.0.1:{port}")
            .replace("/var/log/asterisk/cdr-csv/Master.csv", str(cdr))
            .replace("/var/mail/qualimon/Maildir", str(workdir / "Maildir")))
    path = workdir / "paris.yaml"
    path.write_text(text, encoding="utf-8")
    return path
