"""A probe kind written outside qualimon plugs in without any edit to `monitor/` (CONTRIBUTING's checklist).

The toy kind lives in a package written into a temporary directory at test
time: carrier pigeons.  It brings its channel spec (what its commitments
count, how it is planned, its per-site settings), a `run` that releases a
pigeon, and background work (a loft keeper) that records the coos through
the host.  The real service plans, dispatches, records and judges it, and
the API, health and metrics show it.
"""

from __future__ import annotations

import asyncio
import importlib
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.clock import FakeClock
from monitor.config import ConfigError, parse_config
from monitor.kinds import channel_specs
from monitor.service import Service, default_kinds

PIGEON = '''
"""Carrier pigeons: a toy probe kind, outside the qualimon tree."""

import asyncio
from contextlib import asynccontextmanager

from pydantic import BaseModel, ConfigDict

from monitor.config.channels import ChannelSpec, PlanSlot
from monitor.kinds import ProbeKind, ProbeOutcome, Response


class PigeonSite(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    loft: str
    per_month: int = 2


SPEC = ChannelSpec("pigeon", answers=("coo",), default_counts=("coo",), default_target=0.5,
                   plan=lambda section: (PlanSlot("standard", section.per_month, "window"),),
                   responses=("coo",), site_model=PigeonSite)
released = []


async def run(probe, ctx):
    await ctx.mark_sending(loft=ctx.site.pigeon.loft)
    released.append(probe.id)
    return ProbeOutcome(sent_at=ctx.clock.now(), details={"loft": ctx.site.pigeon.loft})


@asynccontextmanager
async def loft_keeper(host):
    async def keep(host):
        while True:
            host.report_status("loft", "main", True, "pigeons home")
            for probe in await host.probes.open_probes("pigeon", sites=[s.id for s in host.config.sites]):
                if probe.status == "sent" and not any(
                        e.type == "response" for e in await host.probes.events_for(probe.id)):
                    await host.recorder.record_response(probe.id, Response("coo", host.clock.now()))
            await asyncio.sleep(0.05)

    task = asyncio.create_task(host.lead("loft:main", keep))  # one keeper across a fleet
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


KIND = ProbeKind("pigeon", run, background=loft_keeper, spec=SPEC)
'''

CONFIG = """
database: sqlite+aiosqlite:///{db}
http: {{listen: "127.0.0.1:0"}}
calendars:
  always:
    working_days: [mon, tue, wed, thu, fri, sat, sun]
    holidays: null
    opening_hours: {{daily: ["00:00-24:00"]}}
commitments:
  pigeon.coo: {{channel: pigeon, within: {{seconds: 3600}}}}
planner: {{interval_seconds: 3600, seed: 7}}
runner: {{dispatch_interval_seconds: 3600, sweep_interval_seconds: 3600}}
sites:
  - id: tour-saint-jacques
    name: Tour Saint-Jacques
    calendar: always
    pigeon: {{loft: rooftop, per_month: 2}}
"""


@pytest.fixture
def pigeon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    package = tmp_path / "plugins" / "pigeonpost"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PIGEON), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    yield importlib.import_module("pigeonpost")


def kinds_with(pigeon: ModuleType) -> dict:
    return {**default_kinds(), "pigeon": pigeon.KIND}


def test_a_config_using_an_unregistered_kind_names_the_unknown_parts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIG.format(db=tmp_path / "q.db"))
    problems = {p.path: p.message for p in caught.value.problems}
    assert problems['commitments["pigeon.coo"].channel'] == "unknown channel 'pigeon'; use one of email, phone"
    assert problems["sites[0].pigeon"].startswith("unknown key")


def test_the_kinds_own_site_settings_are_validated_with_path_and_line(pigeon: ModuleType, tmp_path: Path) -> None:
    text = CONFIG.format(db=tmp_path / "q.db").replace("loft: rooftop, ", "")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, channels=channel_specs(kinds_with(pigeon)))
    assert str(caught.value.problems[0]) == "sites[0].pigeon.loft: required, but missing (line 17)"


async def test_a_kind_outside_the_tree_is_planned_sent_answered_and_judged(pigeon: ModuleType,
                                                                         tmp_path: Path) -> None:
    kinds = kinds_with(pigeon)
    config = parse_config(CONFIG.format(db=tmp_path / "q.db"), channels=channel_specs(kinds))
    clock = FakeClock(datetime(2026, 6, 2, 8, 30, tzinfo=timezone.utc))
    async with Service(config, kinds=kinds, clock=clock) as service:
        assert service.store is not None and service.runner is not None and service.planner is not None
        planned = await _wait_for_plan(service)  # the scheduler plans at start
        assert {p.channel for p in planned} == {"pigeon"} and len(planned) >= 2
        clock.set(max(p.planned_at for p in planned) + timedelta(minutes=1))
        await service.runner.dispatch_due()
        await service.runner.wait_idle()
        assert sorted(pigeon.released) == sorted(p.id for p in planned if p.planned_at <= clock.now())
        verdicts = await _wait_for_verdicts(service, len(pigeon.released))
        assert set(verdicts) == {"met"}
        assert service.health.check("loft:main") is not None and service.health.check("loft:main").ok
        assert _sample(service, "qualimon_verdicts_total", commitment="pigeon.coo", verdict="met") == len(verdicts)
        assert _sample(service, "qualimon_responses_total", channel="pigeon", kind="coo") == len(verdicts)


async def _wait_for_plan(service: Service) -> list:
    assert service.store is not None
    for _ in range(200):  # bounded
        if planned := await service.store.probes_where():
            return planned
        await asyncio.sleep(0.05)
    raise AssertionError("nothing was planned")


async def _wait_for_verdicts(service: Service, count: int) -> list[str]:
    assert service.store is not None
    for _ in range(200):  # the loft keeper looks every 50 ms; bounded
        probes = await service.store.probes_where()
        verdicts = [v.verdict for p in probes for v in (await service.store.verdicts_for(p.id)).values()
                    if v.verdict != "pending"]
        if len(verdicts) >= count:
            return verdicts
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(verdicts)} of {count} pigeons judged")


def _sample(service: Service, name: str, **labels: str) -> float:
    """The value of one series in the service's own exposition."""
    text = generate_latest(service.registry).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name}{labels}")
