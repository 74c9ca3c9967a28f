"""Statements over long lists of ids stay below the drivers' parameter limits, on SQLite and PostgreSQL.

SQLite refuses a statement with more than 32,766 parameters (its default
build; Debian's allows 250,000, so the store pins the default), asyncpg
more than 32,767.  Each reader or writer that takes a list of ids is called
here with 40,000 of them, one real; and a limit error, should one still
happen, is a bug of ours, never taken for a database outage.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from monitor.clock import FakeClock
from monitor.history import load_details
from monitor.kinds import Response
from monitor.report.evidence import write_evidence
from monitor.store.errors import is_outage, is_parameter_limit
from monitor.store.inlists import CHUNK, chunks
from monitor.store.records import NewProbe
from monitor.store.schema import Probe
from monitor.store.store import Store
from monitor.web.results import replies_for
from tests.monitor.api.conftest import build_service, plan, send_due

MANY = 40_000


def many_ids(*real: str) -> list[str]:
    return [f"01NOSUCHPROBE{i:013d}" for i in range(MANY - len(real))] + list(real)


@pytest.fixture
async def answered(store: Store, clock: FakeClock) -> str:
    """An email probe sent (with its message as evidence) and answered by an auto-reply."""
    service = build_service(store, clock)
    probe_id = await plan(store, clock.now())
    await send_due(service.runner)
    clock.advance(30)
    await service.runner.record_response(probe_id, Response("auto_reply", clock.now(), {"subject": "Absent"}))
    return probe_id


async def test_the_details_of_forty_thousand_probes_are_read(store: Store, answered: str) -> None:
    events, verdicts = await load_details(store, many_ids(answered))
    assert set(events) == set(verdicts) == {answered}
    assert [e.type for e in events[answered]][:2] == ["planned", "claimed"]


async def test_the_replies_of_forty_thousand_probes_are_read(store: Store, answered: str) -> None:
    replies = await replies_for(store, many_ids(answered))
    assert [(r.kind, r.subject) for r in replies[answered]] == [("auto_reply", "Absent")]


async def test_the_evidence_of_forty_thousand_probes_is_written(store: Store, answered: str,
                                                                tmp_path: Path) -> None:
    written = await write_evidence(store, many_ids(answered), tmp_path)
    assert list(written) == [answered] and all(f.intact for f in written[answered])


async def test_forty_thousand_planned_probes_are_cancelled_at_once(store: Store, clock: FakeClock) -> None:
    planned = [NewProbe(site="petit-palais", channel="email", planned_at=clock.now() + timedelta(days=1),
                        purpose="standard") for _ in range(3)]
    async with store.write() as tx:
        await tx.insert_probes(planned, clock.now())
    async with store.write() as tx:
        cancelled = await tx.cancel_planned(many_ids(*(p.id for p in planned)), clock.now(), "per_month changed")
    assert sorted(cancelled) == sorted(p.id for p in planned)


async def test_a_parameter_limit_is_a_bug_of_ours_not_a_database_outage(store: Store) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with store.read() as conn:  # what the helper prevents: one statement with 40,000 parameters
            await conn.execute(select(Probe.id).where(Probe.id.in_(many_ids())))
    assert is_parameter_limit(caught.value)
    assert not is_outage(caught.value)


def test_chunks_keep_the_order_drop_repeats_and_stay_below_the_limits() -> None:
    values = [3, 1, 3, 2] + list(range(10, 10 + 2 * CHUNK))
    parts = list(chunks(values))
    assert [v for part in parts for v in part] == [3, 1, 2] + list(range(10, 10 + 2 * CHUNK))
    assert max(len(p) for p in parts) == CHUNK and 3 * CHUNK < 32_766  # room for (site, channel, purpose) keys
