"""Fixtures shared by the whole suite: configs, clocks and the two store backends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from monitor import logsecrets
from monitor.clock import FakeClock
from monitor.config import Config, load_config, parse_config
from monitor.store.store import Store
from tests.support import databases
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    if not databases.postgres_available():
        yield None
        return
    name, url = databases.create_pg_database()
    yield url
    databases.drop_pg_database(name)


@pytest.fixture
async def sqlite_store(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store, for tests that need one backend only (they test a protocol, not the store)."""
    opened = Store.open(databases.fresh_sqlite(sqlite_template, tmp_path))
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path,
                postgres_url: str | None) -> AsyncIterator[Store]:
    """The same suite runs against SQLite and the local PostgreSQL."""
    if request.param == "sqlite":
        opened = Store.open(databases.fresh_sqlite(sqlite_template, tmp_path))
    else:
        need(postgres_url is not None, "PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth)")
        assert postgres_url is not None
        opened = Store.open(postgres_url)
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
