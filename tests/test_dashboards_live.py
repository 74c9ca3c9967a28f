"""Every dashboard query against real servers: PromQL on a real Prometheus scraping busy qualimon
instances, SQL on the real PostgreSQL database they write.  A broken panel query fails this file.

And a fleet gives the numbers of one instance (docs/design.md §6): two qualimon processes on one
PostgreSQL database — a busy one holding the refresh, a second one standing by (it exports no
figure from the database) — are scraped by one Prometheus, the busy one alone by another.  Once
the traffic has stopped, every panel query gives the same series and values on both, evaluated
at the same instant; and still when the second instance exports the figures too, as both do for
a moment during a failover.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import ROOT, paris_in
from tests.support.dashboards import Query, promql_queries, sql_queries
from tests.support.databases import create_pg_database, drop_pg_database
from tests.support.dbservers import DatabaseServer
from tests.support.integration import free_port
from tests.support.prometheus import Prometheus, QueryResult, prometheus

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "tests" / "support" / "busy_service.py"
VALUES = {"site": "petit-palais", "commitment": "email.reply", "source": "mystery",
          "out_of_hours": "phone.out_of_hours"}
PER_BOARD = {"qualimon-telephony": {"commitment": "phone.answer"}}
# Queries that may rightly be empty on a healthy monitor: alerts that are not firing, and the
# threshold line of a working-day commitment (only wall-clock thresholds are exported, docs/design.md §6).
MAY_BE_EMPTY = ("ALERTS", "< on", "< bool", "> 0", "== 0", 'qualimon_commitment_threshold_seconds{commitment=~"email')
# SQL panels that may rightly hold no figure under VALUES: a phone panel while an email commitment is selected.
SQL_MAY_BE_EMPTY = {"Call answer rate by hour of day"}
# Panels that show each instance by design.
PER_INSTANCE = {("qualimon-health", "qualimon scraped")}
# increase() extrapolates to the end of its range from the last scrape: two servers scraping at other
# instants differ by up to a scrape interval over the sampled span (~2 % here); a double is +100 %.
RELATIVE_TOLERANCE = 0.05


@dataclass
class Instance:
    address: str
    process: subprocess.Popen[str]

    def tell(self, command: str, timeout: float = 60.0) -> None:
        """Send a command to busy_service.py and wait for it to be done (it echoes it)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == command:
                return
            if not line and self.process.poll() is not None:
                break
        raise AssertionError(f"busy_service.py did not do {command!r}")


def start_instance(workdir: Path, database: str, *options: str) -> Instance:
    port = free_port()
    config = paris_in(workdir, port)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f"sqlite+aiosqlite:///{workdir / 'q.db'}", database), encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(config), *options], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None and process.stdout.readline().startswith("ready")
    return Instance(f"127.0.0.1:{port}", process)


def stop(instance: Instance) -> None:
    instance.process.terminate()
    try:
        instance.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        instance.process.kill()


@dataclass
class Fleet:
    busy: Instance
    standby: Instance
    database: str
    one: Prometheus    # scrapes the busy instance alone
    both: Prometheus   # scrapes the fleet

    def instant(self) -> float:
        """An instant both servers have scraped since the last change (1 s scrapes)."""
        time.sleep(3)
        return time.time() - 1


@pytest.fixture(scope="module")
def fleet(postgres_server: DatabaseServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    name, database = create_pg_database(postgres_server)
    busy = start_instance(tmp_path_factory.mktemp("busy"), database)
    standby = start_instance(tmp_path_factory.mktemp("standby"), database, "--standby")
    try:
        with prometheus(busy.address, tmp_path_factory.mktemp("one")) as one, \
                prometheus([busy.address, standby.address], tmp_path_factory.mktemp("both")) as both:
            for server in (one, both):  # both servers see the counters at zero before the first probe
                server.wait_for(f'up{{instance="{busy.address}"}} == 1')
            both.wait_for(f'up{{instance="{standby.address}"}} == 1')
            busy.tell("go")
            both.wait_for('qualimon_verdicts_total{verdict="met"} > 0')
            both.wait_for('qualimon_commitment_samples{verdict="met"} > 0')
            busy.tell("quiet")  # the rounds stop and the figures are refreshed: nothing changes any more
            yield Fleet(busy, standby, database, one, both)
    finally:
        stop(busy)
        stop(standby)
        drop_pg_database(postgres_server, name)


def rendered(query: Query) -> str:
    return query.render({**VALUES, **PER_BOARD.get(query.dashboard, {})})


def query_problems(server: Prometheus, queries: list[Query]) -> list[str]:
    """Every query that errors, or that is empty when it should not be."""
    problems = []
    for query in queries:
        expr = rendered(query)
        result = server.query(expr)
        if not result.ok:
            problems.append(f"{query.dashboard} / {query.where}: {result.error}\n    {expr}")
        elif result.series == 0 and not any(marker in expr for marker in MAY_BE_EMPTY):
            problems.append(f"{query.dashboard} / {query.where}: no series\n    {expr}")
    return problems


def by_labels(result: QueryResult) -> dict[frozenset[tuple[str, str]], list[float]]:
    """Values per label set, the instance left out (a panel's legend never shows it, one excepted)."""
    found: dict[frozenset[tuple[str, str]], list[float]] = {}
    for labels, value in result.samples:
        found.setdefault(frozenset((k, v) for k, v in labels.items() if k != "instance"), []).append(value)
    return found


def same(one: list[float], both: list[float]) -> bool:
    if len(one) != len(both):
        return False
    return all(a == b or (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RELATIVE_TOLERANCE)
               for a, b in zip(sorted(one), sorted(both), strict=True))


def differences(fleet: Fleet, at: float) -> tuple[int, list[str]]:
    """(panel queries compared, those whose series or values differ between one instance and the fleet)."""
    compared, problems = 0, []
    for query in promql_queries():
        if (query.dashboard, query.where) in PER_INSTANCE:
            continue
        expr = rendered(query)
        one, both = fleet.one.query(expr, at), fleet.both.query(expr, at)
        assert one.ok and both.ok, (expr, one.error, both.error)
        alone, together = by_labels(one), by_labels(both)
        if query.where.startswith("variable "):  # label_values(): the values offered, not the series
            together = {labels: alone.get(labels, values) for labels, values in together.items()}
        compared += 1
        if alone.keys() != together.keys() or not all(same(alone[k], together[k]) for k in alone):
            problems.append(f"{query.dashboard} / {query.where}\n    {expr}\n    one: {alone}\n    two: {together}")
    return compared, problems


def test_every_dashboard_promql_runs_on_a_real_prometheus_and_main_panels_have_data(fleet: Fleet) -> None:
    queries = promql_queries()
    assert len(queries) > 20
    problems = query_problems(fleet.both, queries)
    assert problems == [], "\n".join(problems)


def test_a_broken_panel_query_is_caught(fleet: Fleet) -> None:
    broken = [Query("overview", "deliberately broken", "qualimon-prom", "promql",
                    "sum(rate(qualimon_probes_sent_total[5m])"),
              Query("overview", "misspelt metric", "qualimon-prom", "promql", "qualimon_probes_snet_total")]
    problems = query_problems(fleet.both, broken)
    assert len(problems) == 2
    assert "bad_data" in problems[0] and "no series" in problems[1]


def test_two_instances_give_every_panel_the_numbers_of_one(fleet: Fleet) -> None:
    compared, problems = differences(fleet, fleet.instant())
    assert compared > 20
    assert problems == [], "\n".join(problems)


def test_they_still_do_while_both_export_the_figures_of_the_database_as_during_a_failover(fleet: Fleet) -> None:
    fleet.standby.tell("derived on")
    try:
        at = fleet.instant()
        doubled = fleet.both.query('count(qualimon_commitment_samples{site="petit-palais"})', at).samples
        single = fleet.one.query('count(qualimon_commitment_samples{site="petit-palais"})', at).samples
        assert doubled[0][1] == 2 * single[0][1]  # both instances export them now
        compared, problems = differences(fleet, at)
        assert compared > 20
        assert problems == [], "\n".join(problems)
    finally:
        fleet.standby.tell("derived off")


def test_the_comparison_would_catch_a_panel_that_adds_up_the_figures_of_the_database(fleet: Fleet) -> None:
    fleet.standby.tell("derived on")
    try:
        at = fleet.instant()
        expr = 'sum(qualimon_probes_open{site=~".+"})'  # what the Overview's "Open probes" was before
        one, both = fleet.one.query(expr, at).samples, fleet.both.query(expr, at).samples
        assert one[0][1] > 0 and both[0][1] == 2 * one[0][1]
    finally:
        fleet.standby.tell("derived off")


def is_figure(value: object) -> bool:
    """A count that is not 0, or any measured number (a delay of 0 s is one); not a label, time or flag."""
    if isinstance(value, bool):
        return False
    return value != 0 if isinstance(value, int) else isinstance(value, float | Decimal)


async def test_every_dashboard_sql_runs_on_the_real_postgresql_database_and_main_panels_have_data(
        fleet: Fleet) -> None:
    import asyncpg

    queries = sql_queries()
    assert queries
    failures = []
    conn = await asyncpg.connect(fleet.database.replace("postgresql+asyncpg", "postgresql"))
    try:
        for query in queries:
            try:
                rows = await conn.fetch(rendered(query))
            except asyncpg.PostgresError as exc:
                failures.append(f"{query.dashboard} / {query.where}: {exc}")
                continue
            if not any(map(is_figure, (value for row in rows for value in row.values()))) \
                    and query.where not in SQL_MAY_BE_EMPTY:
                failures.append(f"{query.dashboard} / {query.where}: no figure in {len(rows)} row(s)")
    finally:
        await conn.close()
    assert failures == []
