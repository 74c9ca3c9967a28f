"""The database servers the suite talks to: the configured one when it answers, a throw-away one otherwise.

CI has PostgreSQL and MariaDB running, so the rest of the suite takes the fast
path.  These tests point the configured address at a closed port, as on a
fresh Debian machine with the packages installed but no server running, so
the throw-away path runs on every machine too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import dbservers
from tests.support.dbservers import DatabaseServer, ServerUnavailable
from tests.support.integration import free_port, need, tcp_open

FINDERS: dict[str, Callable[[], contextlib.AbstractContextManager[DatabaseServer]]] = {
    "postgresql": dbservers.postgres_server, "mariadb": dbservers.mariadb_server,
}
PORT_VARIABLES = {"postgresql": "QUALIMON_TEST_PG_PORT", "mariadb": "QUALIMON_TEST_MARIADB_PORT"}


@pytest.fixture
def closed_port(monkeypatch: pytest.MonkeyPatch) -> int:
    """Nothing answers at the configured addresses (a port just freed; the admin URLs unset)."""
    port = free_port()
    for variable in PORT_VARIABLES.values():
        monkeypatch.setenv(variable, str(port))
    monkeypatch.delenv("QUALIMON_TEST_PG_ADMIN", raising=False)
    monkeypatch.delenv("QUALIMON_TEST_MARIADB_ADMIN", raising=False)
    return port


async def round_trip(server: DatabaseServer) -> list[str]:
    """Write and read back through a scratch database, as the tests do."""
    async with server.scratch("qualimon_check") as url:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(sa.text("CREATE TABLE visits (site VARCHAR(40))"))
                await conn.execute(sa.text("INSERT INTO visits VALUES ('petit-palais'), ('carnavalet')"))
                rows = await conn.execute(sa.text("SELECT site FROM visits ORDER BY site"))
                return [row.site for row in rows]
        finally:
            await engine.dispose()


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_with_nothing_at_the_configured_address_a_throwaway_server_answers_and_leaves_nothing_behind(
        kind: str, closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        with FINDERS[kind]() as server:
            assert server.kind == kind and server.root is not None and server.pid is not None
            root, pid = server.root, server.pid
            assert server.port != closed_port and server.root.is_dir()
            assert asyncio.run(round_trip(server)) == ["carnavalet", "petit-palais"]

            # The fast path: a server that answers at the configured address is used as it is.
            monkeypatch.setenv(PORT_VARIABLES[kind], str(server.port))
            with FINDERS[kind]() as again:
                assert again.root is None and again.port == server.port
    except ServerUnavailable as missing:
        need(False, str(missing))
    assert not root.exists()
    assert not group_alive(pid)
    assert not tcp_open("127.0.0.1", server.port)


def test_without_a_server_or_its_programs_the_reason_names_the_address_and_the_package(
        closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dbservers.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(dbservers.shutil, "which", lambda name: None)
    with pytest.raises(ServerUnavailable) as missing, dbservers.postgres_server():
        pass
    reason = str(missing.value)
    assert f"127.0.0.1:{closed_port}" in reason and "QUALIMON_TEST_PG_PORT" in reason
    assert "'initdb'" in reason and "Debian package postgresql" in reason and "install-test-servers" in reason


def test_the_admin_url_wins_over_the_port_and_keeps_its_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALIMON_TEST_PG_PORT", "1")
    monkeypatch.setenv("QUALIMON_TEST_PG_ADMIN", "postgresql://qm@127.0.0.2:6543/admin")
    server = DatabaseServer("postgresql", dbservers.configured_postgres())
    assert (server.host, server.port) == ("127.0.0.2", 6543)
    assert server.url("x") == "postgresql+asyncpg://qm@127.0.0.2:6543/x"
    assert server.dsn() == "postgresql://qm@127.0.0.2:6543/admin"
