"""The planner: random but planned, inside (or outside) opening hours, idempotent across restarts."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from monitor.calendar import calendars_from
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.planner import Planner, draw, prorated
from monitor.store.records import CANCELLED, PLANNED, SENT
from monitor.store.schema import Probe
from monitor.store.store import Store

PARIS = ZoneInfo("Europe/Paris")
JUNE_1 = datetime(2026, 6, 1, 0, 0, tzinfo=PARIS)


def planner(store: Store, config: Config, clock: FakeClock, seed: int = 1) -> Planner:
    return Planner(store, config, calendars_from(config), clock, rng=random.Random(seed))


def with_site_settings(config: Config, site_id: str, **email: int) -> Config:
    sites = tuple(
        s.model_copy(update={"email": s.email.model_copy(update=email)}) if s.id == site_id else s
        for s in config.sites
    )
    return config.model_copy(update={"sites": sites})


async def plan_of(store: Store) -> list[tuple[str, str, str, datetime, str]]:
    probes = await store.probes_where()
    return sorted((p.site, p.channel, p.purpose, p.planned_at, p.status) for p in probes)


async def test_it_plans_every_quota_for_fourteen_museums(store: Store, paris_config: Config) -> None:
    clock = FakeClock(JUNE_1)
    await planner(store, paris_config, clock).plan()
    probes = await store.probes_where()
    june = [p for p in probes if p.planned_at.astimezone(PARIS).month == 6]
    per_bucket = Counter((p.site, p.channel, p.purpose) for p in june)
    assert len(per_bucket) == 14 * 3
    assert {k[1:]: v for k, v in per_bucket.items()} == {
        ("email", "standard"): 4, ("phone", "open"): 8, ("phone", "closed"): 2}
    assert len(probes) == 2 * 14 * 14  # June and July


async def test_calls_fall_inside_opening_hours_and_out_of_hours_calls_outside(
        store: Store, paris_config: Config) -> None:
    await planner(store, paris_config, FakeClock(JUNE_1)).plan()
    museum = calendars_from(paris_config)["museum"]
    for p in await store.probes_where(Probe.channel == "phone"):
        local = p.planned_at.astimezone(PARIS)
        if p.purpose == "open":
            assert museum.is_open(p.planned_at), f"call at {local} while the museum is closed"
        else:
            assert not museum.is_open(p.planned_at), f"out-of-hours call at {local} while open"
            assert time(8) <= local.time() < time(21), f"out-of-hours call at {local}, outside 08-21"


async def test_emails_go_out_when_a_person_would_write(store: Store, paris_config: Config) -> None:
    await planner(store, paris_config, FakeClock(JUNE_1)).plan()
    for p in await store.probes_where(Probe.channel == "email"):
        assert time(8) <= p.planned_at.astimezone(PARIS).time() < time(20)


async def test_probes_are_spread_over_the_month(store: Store, paris_config: Config) -> None:
    await planner(store, paris_config, FakeClock(JUNE_1)).plan()
    calls = sorted(p.planned_at for p in await store.probes_where(
        Probe.site == "petit-palais", Probe.purpose == "open") if p.planned_at.month == 6)
    halves = Counter(c.astimezone(PARIS).day <= 15 for c in calls)
    assert halves[True] == halves[False] == 4  # eight draws, one per eighth of the open time


async def test_running_the_planner_again_changes_nothing(store: Store, paris_config: Config) -> None:
    clock = FakeClock(JUNE_1)
    await planner(store, paris_config, clock).plan()
    before = await plan_of(store)
    clock.advance(hours=5)
    assert await planner(store, paris_config, clock, seed=2).plan() == 0  # a restart: new planner, new seed
    assert await plan_of(store) == before


async def test_it_never_plans_in_the_past(store: Store, paris_config: Config) -> None:
    now = datetime(2026, 6, 20, 15, 0, tzinfo=PARIS)
    await planner(store, paris_config, FakeClock(now)).plan()
    probes = await store.probes_where()
    assert probes and all(p.planned_at > now for p in probes)
    june_emails = [p for p in probes if p.channel == "email" and p.planned_at.month == 6]
    assert 14 <= len(june_emails) <= 28  # about a third of the month left: one or two each, not four


async def test_a_new_per_month_adjusts_only_the_rest_of_the_month(store: Store, paris_config: Config) -> None:
    clock = FakeClock(JUNE_1)
    await planner(store, paris_config, clock).plan()
    mine = [Probe.site == "petit-palais", Probe.channel == "email"]
    june = sorted((p for p in await store.probes_where(*mine) if p.planned_at.month == 6),
                  key=lambda p: p.planned_at)
    clock.set(june[1].planned_at + timedelta(minutes=5))
    async with store.write() as tx:  # the first two were sent
        for p in june[:2]:
            await tx.set_probe(p.id, clock.now(), status=SENT, sent_at=p.planned_at)

    more = with_site_settings(paris_config, "petit-palais", per_month=12)
    await planner(store, more, clock).plan()
    after = [p for p in await store.probes_where(*mine) if p.planned_at.month == 6]
    assert {p.id: p.status for p in after if p.id in {june[0].id, june[1].id}} == {
        june[0].id: SENT, june[1].id: SENT}
    future = [p for p in after if p.status == PLANNED]
    assert all(p.planned_at > clock.now() for p in future)
    assert len(future) > 2  # more than the two left from the old plan

    fewer = with_site_settings(paris_config, "petit-palais", per_month=0)
    await planner(store, fewer, clock).plan()
    final = [p for p in await store.probes_where(*mine) if p.planned_at.month == 6]
    assert Counter(p.status for p in final) == Counter({SENT: 2, CANCELLED: len(final) - 2})
    others = await store.probes_where(Probe.site == "musee-zadkine", Probe.channel == "email")
    assert all(p.status == PLANNED for p in others)


def test_drawing_gives_one_instant_per_equal_share() -> None:
    start = datetime(2026, 6, 1, tzinfo=timezone.utc)
    day = [(start + timedelta(days=d), start + timedelta(days=d, hours=8)) for d in range(10)]
    instants = draw(day, 10, random.Random(3))
    assert [i.day for i in instants] == list(range(1, 11))


def test_prorating_follows_the_eligible_time_left() -> None:
    assert prorated(8, 100.0, 100.0) == 8
    assert prorated(8, 100.0, 50.0) == 4
    assert prorated(8, 100.0, 0.0) == 0
    assert prorated(8, 0.0, 0.0) == 0
