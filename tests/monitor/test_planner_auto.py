"""`per_month: auto`: a network budget allocated where it decides most, and the simulation that shows it does."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from monitor.calendar import calendars_from
from monitor.clock import FakeClock
from monitor.compliance import Compliance, compliance
from monitor.config import Config
from monitor.planner import Claim, Planner, allocate, months_left, need_of, period_of
from monitor.store.records import NewProbe, VerdictRecord
from monitor.store.store import Store
from tests.conftest import config_from
from tests.support.allocation import Network, decided_share

# ---------------------------------------------------------------- the rule


def test_every_site_gets_the_minimum_and_a_decided_one_no_more() -> None:
    given = allocate(3, [Claim("a", 0, 20), Claim("b", 0, 20), Claim("c", 0, 20)], minimum=1, months_left=3)
    assert given == {"a": 1, "b": 1, "c": 1}


def test_the_smallest_needs_are_served_first_spread_over_the_months_left() -> None:
    claims = [Claim("far", 0, 20), Claim("near", 43, 20), Claim("new", 35, 20)]
    # 30 probes: 1 each, then new (35 → 12 a month for three months) and near (43 → 15), then the rest to
    # the undecided, smallest need first.
    assert allocate(30, claims, minimum=1, months_left=3) == {"far": 1, "new": 13, "near": 16}


def test_a_site_the_period_cannot_decide_only_gets_what_is_left() -> None:
    claims = [Claim("hopeless", 900, 20), Claim("close", 10, 20), Claim("undecidable", None, 20)]
    assert allocate(14, claims, minimum=1, months_left=1) == {"hopeless": 2, "close": 11, "undecidable": 1}


def test_no_site_gets_more_than_its_maximum_and_the_budget_is_spent_when_it_can_be() -> None:
    claims = [Claim(str(i), need, 5) for i, need in enumerate((0, 3, 50, None))]
    given = allocate(100, claims, minimum=2, months_left=2)
    assert all(v <= 5 for v in given.values()) and sum(given.values()) == 20


def test_a_budget_below_the_minimums_goes_round_in_site_order() -> None:
    given = allocate(4, [Claim(s, 10, 20) for s in "cba"], minimum=2, months_left=1)
    assert given == {"a": 2, "b": 1, "c": 1}


def test_a_sites_need_is_its_largest_less_what_is_already_waiting() -> None:
    def row(met: int, missed: int, pending: int) -> Compliance:
        return compliance("s", "c", {"met": met, "missed": missed, "pending": pending}, 0.9, 10)

    assert need_of([row(9, 1, 3), row(0, 3, 0)]) == 43 - 3
    assert need_of([row(0, 3, 0)]) == 0
    assert need_of([]) == 0
    target_one = compliance("s", "c", {"met": 5}, 1.0, 10)
    assert need_of([target_one]) is None


def test_periods_and_months_left() -> None:
    may = datetime(2026, 5, 1).date()
    assert period_of("quarter", may).label == "2026-Q2" and months_left(period_of("quarter", may), may) == 2
    assert months_left(period_of("month", may), may) == 1 and months_left(period_of("year", may), may) == 8


# ---------------------------------------------------------------- the simulation


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_auto_decides_more_sites_than_uniform_with_the_same_budget(seed: int) -> None:
    network = Network()  # 600 sites, 10 probes per site and month, a quarter, target 90 %
    uniform = decided_share(network, "uniform", seed)
    auto = decided_share(network, "auto", seed)
    assert auto > 1.5 * uniform, (auto, uniform)


# ---------------------------------------------------------------- in the planner

CONFIG = """
calendars:
  offices: {holidays: null}
commitments:
  email.reply: {channel: email, within: {working_days: 5}, target: 0.9}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {host: smtp.example.net, tls: starttls}
    maildir: /tmp/unused
planner: {auto: {budget: {email: 30}, min_per_month: 1}, seed: 3}
sites:
  - {id: far, name: Far, calendar: offices, email: {address: far@example.org, per_month: auto, max_per_month: 20}}
  - {id: near, name: Near, calendar: offices, email: {address: near@example.org, per_month: auto, max_per_month: 20}}
  - {id: new, name: New, calendar: offices, email: {address: new@example.org, per_month: auto, max_per_month: 20}}
  - {id: fixed, name: Fixed, calendar: offices, email: {address: fixed@example.org, per_month: 4}}
"""
APRIL_20 = datetime(2026, 4, 20, 6, tzinfo=UTC)


async def _results(store: Store, site: str, met: int, missed: int, first: datetime) -> None:
    async with store.write() as tx:
        for i in range(met + missed):
            at = first + timedelta(hours=i)
            probe = NewProbe(site=site, channel="email", planned_at=at, purpose="standard", origin="manual")
            await tx.insert_probes([probe], at)
            verdict = "met" if i < met else "missed"
            await tx.save_verdict(VerdictRecord(probe.id, "email.reply", site, "email", verdict, at, at, None, None,
                                                None, False, None, at), exists=False)


def planner(store: Store, config: Config, clock: FakeClock) -> Planner:
    return Planner(store, config, calendars_from(config), clock, rng=random.Random(1))


async def test_the_planner_allocates_the_month_from_the_quarter_so_far(sqlite_store: Store) -> None:
    config = config_from(CONFIG)
    await _results(sqlite_store, "far", 0, 3, datetime(2026, 4, 2, tzinfo=UTC))
    await _results(sqlite_store, "near", 9, 1, datetime(2026, 4, 3, tzinfo=UTC))
    clock = FakeClock(APRIL_20)

    await planner(sqlite_store, config, clock).plan()

    april, may = await sqlite_store.plans("2026-04"), await sqlite_store.plans("2026-05")
    assert {site: n for (site, _, _), n in april.items()} == {"far": 1, "near": 16, "new": 13, "fixed": 4}
    assert {site for (site, _, _) in may} == {"fixed"}  # an auto month is allocated when it begins
    planned = await sqlite_store.probes_where()
    april_near = [p for p in planned if p.site == "near" and p.origin == "plan"]
    assert 0 < len(april_near) < 16  # the rest of April only, in proportion to the time left


async def test_an_allocation_is_kept_for_the_month_and_made_again_when_the_next_begins(sqlite_store: Store) -> None:
    config = config_from(CONFIG)
    clock = FakeClock(APRIL_20)
    await planner(sqlite_store, config, clock).plan()
    first = await sqlite_store.plans("2026-04")
    await _results(sqlite_store, "near", 0, 5, datetime(2026, 4, 20, 7, tzinfo=UTC))  # near is now failing

    clock.advance(hours=2)
    await planner(sqlite_store, config, clock).plan()
    assert await sqlite_store.plans("2026-04") == first

    clock.set(datetime(2026, 5, 1, 0, 5, tzinfo=UTC))
    await planner(sqlite_store, config, clock).plan()
    may = {site: n for (site, _, _), n in (await sqlite_store.plans("2026-05")).items()}
    assert may["near"] == 1  # 0 of 5: concluded non-compliant, back to the minimum
    assert sum(n for site, n in may.items() if site != "fixed") == 30
