"""Acceptance: three `qualimon run` processes on the local PostgreSQL keep every probe, reply and call exactly
once while the holder of their singleton tasks is killed, paused and cut from the database, in turn.

Real components: Dovecot (the mystery mailbox), aiosmtpd (our provider), sipp (the museums' phones), a
Master.csv the PBX keeps appending to (`tests/support/fleet.py`).  Two faults of each kind here, to stay in
the suite's time budget; `bench/bench_fleet.py` runs 50 takeovers per task and reports their times, which
this test prints but never asserts.
"""

from __future__ import annotations

import random
from collections import defaultdict
from pathlib import Path

import pytest

from monitor.store.store import Store
from tests.support.dbservers import DatabaseServer
from tests.support.fleet import KINDS, Traffic, audit, fleet_world, settle

pytestmark = pytest.mark.integration

ROUNDS = 2  # faults of each kind


async def test_killing_pausing_and_cutting_the_holder_loses_and_doubles_nothing(
        postgres_server: DatabaseServer, tmp_path: Path) -> None:
    async with fleet_world(postgres_server, tmp_path, instances=3, failover_seconds=3.0) as world:
        store = Store.open(world.url)
        traffic = Traffic(world, store, random.Random(12))
        try:
            traffic.start(probes_per_second=1.0, calls_per_second=2.0)
            for kind in KINDS * ROUNDS:
                taken = await world.disrupt(kind)
                assert taken, f"{kind}: the victim held no task"
            await traffic.stop_planning()
            await settle(world, store, traffic)
            found = await audit(world, store)
        finally:
            await traffic.close()
            await store.close()
    times: dict[str, list[float]] = defaultdict(list)
    for takeover in world.takeovers:
        times[takeover.kind].append(takeover.seconds)
    print(f"takeovers: { {k: [round(s, 2) for s in v] for k, v in times.items()} }; probes {found.statuses}, "
          f"void {found.voided}, replies {len(traffic.replies)}, calls {traffic.calls_logged}")
    assert found.problems(traffic) == []
    assert len(traffic.replies) > 0 and traffic.calls_logged > 0 and found.statuses["closed"] > 0
    assert {t.kind for t in world.takeovers} == set(KINDS)
