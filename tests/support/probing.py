"""Putting probes through the real runner in tests: plan one, dispatch what is due, wait for it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from monitor.clock import Clock, SystemClock
from monitor.config import Config
from monitor.kinds import ProbeKind
from monitor.runner import Runner
from monitor.store.records import NewProbe
from monitor.store.store import Store


async def plan(store: Store, at: datetime, channel: str = "email", site: str = "petit-palais") -> str:
    """A probe due at `at` (emails `standard`, calls inside opening hours); returns its id."""
    new = NewProbe(site=site, channel=channel, planned_at=at, purpose="standard" if channel == "email" else "open")
    async with store.write() as tx:
        await tx.insert_probes([new], at)
    return new.id


async def dispatch(runner: Runner) -> list[str]:
    """Claim and run everything due, and wait until every probe started has finished."""
    ids = await runner.dispatch_due()
    await runner.wait_idle()
    return ids


async def run_one(store: Store, config: Config, kinds: Mapping[str, ProbeKind], site: str, channel: str,
                  clock: Clock | None = None) -> str:
    """Plan one probe now and run it through a runner with `kinds`; returns its id."""
    runner = Runner(store, config, kinds, clock or SystemClock())
    probe_id = await plan(store, runner.clock.now(), channel, site)
    await dispatch(runner)
    return probe_id
