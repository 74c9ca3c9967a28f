"""A scrape never blocks on the database (issue 5 acceptance).

A real `Service` on the local PostgreSQL: one refresh fills the derived
gauges, then the database first hangs (a table lock holds the refresh's
queries) and then disappears (dropped with its connections).  Each time
`/metrics` must answer within 200 ms with the last known values, and
`/healthz` must say the database is down once a refresh has found it gone.
A mailbox outage (the real email kind watching a Dovecot that is then
stopped) must show in `qualimon_mailbox_up` and `/healthz` the same way.

The rows are inserted straight into `probes` and `verdicts`: the derived
figures read only those tables, and the event chain is not what is tested here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from monitor.config import Config, parse_config
from monitor.service import Service
from monitor.store.schema import Probe, Verdict
from probes.email import KIND as email_kind
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.dbservers import DatabaseServer
from tests.support.dovecot import DovecotServer, running_dovecot
from tests.support.integration import free_port

pytestmark = pytest.mark.integration

SCRAPE_BUDGET_SECONDS = 0.2

CONFIG = """
database: {database}
http: {{listen: "127.0.0.1:{port}"}}
calendars:
  offices: {{working_days: [mon, tue, wed, thu, fri]}}
  museum:
    opening_hours: {{tue-sun: ["10:00-18:00"]}}
commitments:
  email.ack:   {{channel: email, within: {{working_days: 1}}, counts: [auto_reply, human_reply], target: 0.90}}
  email.reply: {{channel: email, within: {{working_days: 5}}, counts: [human_reply], target: 0.90}}
  phone.answer: {{channel: phone, within: {{rings: 5}}, during: open, target: 0.85}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    {mailbox}
phone_lines:
  mystery:
    sip: {{proxy: "sip:trunk.example.net:5060", from: "sip:+33199001000@trunk.example.net"}}
sites:
  - id: petit-palais
    name: Petit Palais
    calendar: museum
    office_calendar: offices
    email: {{address: contact.pp@example.org, per_month: 0}}
    phone: {{number: "+33199001234", per_month: 0}}
"""


@pytest.fixture
def pg_url(postgres_server: DatabaseServer) -> Iterator[tuple[str, str]]:
    """A database of its own: the test drops it mid-way (`drop_pg_database` is idempotent)."""
    name, url = create_pg_database(postgres_server)
    yield name, url
    drop_pg_database(postgres_server, name)


@pytest.fixture
def config(pg_url: tuple[str, str], tmp_path: Path) -> Config:
    return parse_config(CONFIG.format(database=pg_url[1], port=free_port(), mailbox=f"maildir: {tmp_path / 'mail'}"))


def imap_config(pg_url: tuple[str, str], dovecot: DovecotServer) -> Config:
    imap = (f"imap: {{host: {dovecot.host}, port: {dovecot.port}, tls: none, username: {dovecot.user}, "
            'password: "${IMAP_PASSWORD}"}')
    text = CONFIG.format(database=pg_url[1], port=free_port(), mailbox=imap)
    return parse_config(text, environ={"IMAP_PASSWORD": dovecot.password})


async def seed_answered_probes(service: Service, count: int) -> None:
    """`count` phone probes met within the 30-day window, as the runner would have left them."""
    now = datetime.now(timezone.utc)
    started = now - timedelta(days=1)
    assert service.store is not None
    async with service.store.engine.begin() as conn:
        for i in range(count):
            probe_id = f"outage{i:026d}"
            await conn.execute(insert(Probe).values(
                id=probe_id, site="petit-palais", channel="phone", purpose="open", origin="test", status="closed",
                planned_at=started, sent_at=started, timer_started_at=started, closed_at=started, details="{}",
                created_at=started, updated_at=started, attempts=1))
            await conn.execute(insert(Verdict).values(
                probe_id=probe_id, commitment="phone.answer", site="petit-palais", channel="phone", verdict="met",
                deadline=started + timedelta(seconds=25), started_at=started,
                answered_at=started + timedelta(seconds=10), delay_seconds=10.0, late=False, decided_at=started))


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    async with session.get(url) as response:
        body = await response.text()
    return time.perf_counter() - start, response.status, body


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


def met_samples(text: str) -> float | None:
    return sample(text, "qualimon_commitment_samples", site="petit-palais", commitment="phone.answer",
                  window="30d", verdict="met")


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Until `condition()` holds (polled; the watcher's reconnects are on its own clock)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_for_lock_waiter(admin: asyncpg.Connection, database: str) -> None:
    """Until a backend of `database` waits on a lock (the refresh is stuck in the database)."""
    for _ in range(500):
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", database)
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the refresh never reached the locked table")


async def test_a_scrape_answers_from_memory_while_the_database_hangs_and_after_it_is_gone(
        config, pg_url, postgres_server):
    name, _ = pg_url
    async with Service(config, kinds={}) as service, aiohttp.ClientSession() as session:
        base = f"http://127.0.0.1:{service.http_port}"
        await seed_answered_probes(service, 3)
        await service.refresh()
        _, status, before = await timed_get(session, f"{base}/metrics")
        assert status == 200 and met_samples(before) == 3

        # 1. The database hangs: an exclusive lock holds every query of the refresh.
        admin = await asyncpg.connect(postgres_server.dsn(name))
        locker = admin.transaction()
        await locker.start()
        await admin.execute("LOCK TABLE verdicts IN ACCESS EXCLUSIVE MODE")
        stuck = asyncio.create_task(service.refresh())
        try:
            await wait_for_lock_waiter(admin, name)
            elapsed, status, during = await timed_get(session, f"{base}/metrics")
            assert status == 200 and elapsed < SCRAPE_BUDGET_SECONDS, elapsed
            assert met_samples(during) == 3
            assert not stuck.done()
        finally:
            await locker.rollback()
            await admin.close()
            await stuck

        # 2. The database is gone: dropped, its connections terminated.
        await asyncio.to_thread(drop_pg_database, postgres_server, name)
        await service.refresh()
        elapsed, status, after = await timed_get(session, f"{base}/metrics")
        assert status == 200 and elapsed < SCRAPE_BUDGET_SECONDS, elapsed
        assert met_samples(after) == 3
        async with session.get(f"{base}/healthz") as response:
            health = await response.json()
        assert response.status == 503 and health["status"] == "down"
        assert health["checks"]["database"]["ok"] is False


async def test_a_mailbox_outage_shows_in_mailbox_up_and_healthz_while_the_database_is_gone(pg_url, postgres_server):
    name, _ = pg_url
    with running_dovecot() as dovecot:
        config = imap_config(pg_url, dovecot)
        async with Service(config, kinds={"email": email_kind}) as service, aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{service.http_port}"
            await until(lambda: service.health.is_ok("mailbox:mystery") is True, "the mailbox to be up")
            _, _, before = await timed_get(session, f"{base}/metrics")
            assert sample(before, "qualimon_mailbox_up", mailbox="mystery") == 1
            last_success = sample(before, "qualimon_mailbox_last_success_timestamp_seconds", mailbox="mystery")
            assert last_success

            await asyncio.to_thread(dovecot.stop)
            await until(lambda: service.health.is_ok("mailbox:mystery") is False, "the mailbox to be down")
            await asyncio.to_thread(drop_pg_database, postgres_server, name)
            await service.refresh()

            elapsed, status, after = await timed_get(session, f"{base}/metrics")
            assert status == 200 and elapsed < SCRAPE_BUDGET_SECONDS, elapsed
            assert sample(after, "qualimon_mailbox_up", mailbox="mystery") == 0
            assert sample(after, "qualimon_mailbox_last_success_timestamp_seconds", mailbox="mystery") >= last_success
            async with session.get(f"{base}/healthz") as response:
                health = await response.json()
            assert health["status"] == "down"
            assert health["checks"]["mailbox:mystery"]["ok"] is False
            assert health["checks"]["database"]["ok"] is False
