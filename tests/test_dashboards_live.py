"""Every dashboard query against real servers: PromQL on a Prometheus scraping a busy qualimon,
SQL on the real PostgreSQL schema.  A broken panel query fails this file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from tests.conftest import ROOT, paris_in
from tests.support.dashboards import Query, promql_queries, sql_queries
from tests.support.integration import free_port
from tests.support.prometheus import Prometheus, prometheus

pytestmark = pytest.mark.integration

SCRIPT = ROOT / "tests" / "support" / "busy_service.py"
VALUES = {"site": "petit-palais", "commitment": "email.reply", "source": "mystery",
          "out_of_hours": "phone.out_of_hours"}
PER_BOARD = {"qualimon-telephony": {"commitment": "phone.answer"}}
# Queries that may rightly be empty on a healthy monitor: alerts that are not firing, and the
# threshold line of a working-day commitment (only wall-clock thresholds are exported, docs/design.md §6).
MAY_BE_EMPTY = ("ALERTS", "< on", "< bool", "> 0", "== 0", 'qualimon_commitment_threshold_seconds{commitment=~"email')


@pytest.fixture(scope="module")
def busy_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("busy")
    port = free_port()
    config = paris_in(workdir, port)
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(config)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None and process.stdout.readline().startswith("ready")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture(scope="module")
def server(busy_monitor: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    with prometheus(busy_monitor, tmp_path_factory.mktemp("prometheus")) as started:
        started.wait_for('qualimon_verdicts_total{verdict="met"} > 0')
        started.wait_for("qualimon_commitment_samples > 0")
        yield started


def query_problems(server: Prometheus, queries: list[Query]) -> list[str]:
    """Every query that errors, or that is empty when it should not be."""
    problems = []
    for query in queries:
        expr = query.render({**VALUES, **PER_BOARD.get(query.dashboard, {})})
        result = server.query(expr)
        if not result.ok:
            problems.append(f"{query.dashboard} / {query.where}: {result.error}\n    {expr}")
        elif result.series == 0 and not any(marker in expr for marker in MAY_BE_EMPTY):
            problems.append(f"{query.dashboard} / {query.where}: no series\n    {expr}")
    return problems


def test_every_dashboard_promql_runs_on_a_real_prometheus_and_main_panels_have_data(server: Prometheus) -> None:
    queries = promql_queries()
    assert len(queries) > 20
    problems = query_problems(server, queries)
    assert problems == [], "\n".join(problems)


def test_a_broken_panel_query_is_caught(server: Prometheus) -> None:
    broken = [Query("overview", "deliberately broken", "qualimon-prom", "promql", "sum(rate(qualimon_probes_sent_total[5m])"),
              Query("overview", "misspelt metric", "qualimon-prom", "promql", "qualimon_probes_snet_total")]
    problems = query_problems(server, broken)
    assert len(problems) == 2
    assert "bad_data" in problems[0] and "no series" in problems[1]


async def test_every_dashboard_sql_runs_on_the_real_postgresql_schema(postgres_url: str) -> None:
    import asyncpg

    queries = sql_queries()
    assert queries
    failures = []
    conn = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        for query in queries:
            try:
                await conn.fetch(query.render(VALUES))
            except asyncpg.PostgresError as exc:
                failures.append(f"{query.dashboard} / {query.where}: {exc}")
    finally:
        await conn.close()
    assert failures == []
