"""Static checks of the Grafana boards: they parse, keep stable uids, use the
provisioned datasources, and every PromQL expression parses (promtool) and
only names metrics that monitor/metrics/ defines. SQL only names the tables
and columns of the store's schema. The real-Prometheus/PostgreSQL evaluation
reuses tests/support/dashboards.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import parse_config
from monitor.metrics import Metrics
from monitor.store.schema import Base
from tests.support.dashboards import (
    DASHBOARD_DIR,
    PROVISIONING_DIR,
    Query,
    all_queries,
    fleet_problems,
    iter_panels,
    load_dashboards,
    metric_names,
    promql_queries,
    rule_file,
    sql_queries,
)
from tests.support.integration import need_binary

BOARDS = load_dashboards()
RULES = DASHBOARD_DIR.parents[1] / "config" / "prometheus" / "alerts.yml"
EXPECTED_UIDS = {"qualimon-overview", "qualimon-site", "qualimon-telephony", "qualimon-health"}

# The tables and columns the boards may use: the store's own (the real-PostgreSQL check is the final word).
SCHEMA = {name: {column.name for column in table.columns} for name, table in Base.metadata.tables.items()
          if name in {"probes", "verdicts", "calls"}}
ALIASES = {"p": "probes", "v": "verdicts", "c": "calls"}
MIXED = "-- Mixed --"  # Grafana's datasource for a panel whose targets each name their own

MINIMAL_CONFIG = """
calendars:
  museum: {opening_hours: {daily: ["10:00-18:00"]}}
commitments:
  email.ack: {channel: email, within: {working_days: 1}}
  phone.answer: {channel: phone, within: {rings: 5}}
mailboxes:
  mystery: {address: probes@example.net, maildir: /tmp/probes}
phone_lines:
  mystery:
    sip: {proxy: "sip:trunk.example.net", from: "sip:+33199001000@trunk.example.net"}
sites:
  - {id: site-00, name: Site, calendar: museum, email: {address: contact@example.org},
     phone: {number: "+33199001200"}}
"""


def provisioned_datasources() -> dict[str, dict]:
    found = {}
    for path in (PROVISIONING_DIR / "datasources").glob("*.y*ml"):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            found[source["uid"]] = source
    return found


def series_names_by_kind() -> tuple[set[str], set[str]]:
    """(gauge series names, counter and histogram series names) the monitor defines."""
    registry = CollectorRegistry()
    Metrics(registry, parse_config(MINIMAL_CONFIG), source_ids=("pbx",))
    gauges, counted = set(), set()
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        names = {sample.name for sample in family.samples}
        (gauges if family.type == "gauge" else counted).update(names)
    return gauges, counted


def defined_metric_names() -> set[str]:
    """Every series name the monitor exposes, taken from a live exposition of monitor/metrics/."""
    registry = CollectorRegistry()
    Metrics(registry, parse_config(MINIMAL_CONFIG), source_ids=("pbx",))
    text = generate_latest(registry).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_there_are_the_four_boards_with_stable_uids():
    uids = [board["uid"] for board in BOARDS.values()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)
    for path, board in BOARDS.items():
        assert path.stem == board["uid"].removeprefix("qualimon-"), path
        assert board["title"].startswith("qualimon")
        assert board.get("id") is None, "an exported numeric id would clash between Grafana instances"


def test_every_board_has_site_and_commitment_variables():
    for board in BOARDS.values():
        names = {var["name"] for var in board["templating"]["list"]}
        assert {"site", "commitment"} <= names, board["uid"]


def test_panel_ids_are_unique_within_a_board():
    for board in BOARDS.values():
        ids = [panel["id"] for panel in iter_panels(board)]
        assert len(ids) == len(set(ids)), board["uid"]


def test_datasources_are_provisioned_with_stable_uids():
    sources = provisioned_datasources()
    assert sources["qualimon-prom"]["type"] == "prometheus"
    assert sources["qualimon-pg"]["type"] == "grafana-postgresql-datasource"
    assert "$POSTGRES_PASSWORD" in sources["qualimon-pg"]["secureJsonData"]["password"]


def test_every_panel_and_variable_uses_a_provisioned_datasource():
    sources = provisioned_datasources()
    for board in BOARDS.values():
        for panel in iter_panels(board):
            if panel["type"] == "row":
                continue
            if panel["datasource"]["uid"] == MIXED:
                assert all(target["datasource"]["uid"] in sources for target in panel["targets"]), panel["title"]
                continue
            assert panel["datasource"]["uid"] in sources, (board["uid"], panel["title"])
            assert panel["datasource"]["type"] == sources[panel["datasource"]["uid"]]["type"]
        for var in board["templating"]["list"]:
            if var["type"] == "query":
                assert var["datasource"]["uid"] in sources, (board["uid"], var["name"])
    for query in all_queries():
        expected = "qualimon-prom" if query.kind == "promql" else "qualimon-pg"
        assert query.datasource_uid == expected, query


def test_the_extractor_finds_panel_and_variable_queries():
    queries = all_queries()
    assert any(q.where.startswith("variable ") for q in queries)
    assert {q.dashboard for q in promql_queries()} == EXPECTED_UIDS
    assert len(sql_queries()) >= 3
    for query in queries:
        rendered = query.render()
        assert "$" not in rendered and "[[" not in rendered, (query.where, rendered)


def test_every_promql_expression_parses_with_promtool(tmp_path: Path):
    promtool = need_binary("promtool", "prometheus")
    rules = tmp_path / "dashboards.rules.yml"
    rules.write_text(yaml.safe_dump(rule_file(promql_queries())))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_promtool_check_catches_a_broken_expression(tmp_path: Path):
    promtool = need_binary("promtool", "prometheus")
    broken = Query("qualimon-test", "broken", "qualimon-prom", "promql", 'sum by (site (qualimon_probes_open)')
    rules = tmp_path / "broken.rules.yml"
    rules.write_text(yaml.safe_dump(rule_file([*promql_queries(), broken])))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode != 0


def test_promql_names_only_metrics_the_monitor_defines():
    defined = defined_metric_names() | {"ALERTS", "up"}
    for query in promql_queries():
        unknown = metric_names(query.render()) - defined
        assert not unknown, (query.dashboard, query.where, unknown)


def test_every_panel_gives_a_fleets_numbers_as_one_instances():
    """Gauges taken once over instances, counters and histograms summed (docs/design.md §6); the live
    check shows the values agree, this one names the query that would not."""
    gauges, counted = series_names_by_kind()
    problems = [f"{q.dashboard} / {q.where}: {problem}" for q in promql_queries() if not q.where.startswith("variable ")
                for problem in fleet_problems(q.render(), gauges, counted)]
    assert problems == []


def test_every_alert_rule_gives_a_fleets_alerts_as_one_instances():
    gauges, counted = series_names_by_kind()
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    problems = [f"{rule['alert']}: {problem}" for rule in rules
                for problem in fleet_problems(rule["expr"], gauges, counted)]
    assert problems == []


@pytest.mark.parametrize("expr", [
    'sum(qualimon_probes_open{site=~"a"})',
    "max by (site, instance) (qualimon_commitment_compliance_ratio)",
    "qualimon_mailbox_up == 0",
    "max by (commitment) (increase(qualimon_verdicts_total[5m]))",
    "sum by (instance) (rate(qualimon_probes_sent_total[5m]))",
    "histogram_quantile(0.9, max by (le) (increase(qualimon_call_ring_seconds_bucket[1d])))",
])
def test_the_fleet_check_names_a_query_that_would_double_or_split(expr: str):
    gauges, counted = series_names_by_kind()
    assert fleet_problems(expr, gauges, counted)


def test_the_metric_name_scan_sees_through_functions_and_matchers():
    expr = ('histogram_quantile(0.9, sum by (le, commitment) (increase(qualimon_response_delay_seconds_bucket'
            '{site="a", commitment=~"b|c"}[30d] offset 1h))) / on (commitment) group_left () max by (commitment) '
            '(qualimon_commitment_target_ratio) and absent(up{job="qualimon"}) or vector(1e3)')
    assert metric_names(expr) == {"qualimon_response_delay_seconds_bucket", "qualimon_commitment_target_ratio", "up"}


@pytest.mark.parametrize("query", sql_queries(), ids=lambda q: f"{q.dashboard}:{q.where}")
def test_sql_names_only_the_store_schema(query: Query):
    text = query.render()
    named = set(re.findall(r"\b(\w+)\s+AS\s*\(", text, re.I))  # WITH name AS (...)
    tables = set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)\b(?!\.)", text, re.I)) - named
    assert tables <= set(SCHEMA), tables
    for alias, column in re.findall(r"\b([a-z])\.(\w+)", text):
        assert column in SCHEMA[ALIASES[alias]], f"{alias}.{column}"
    assert re.search(r"\bLIMIT\b|\bGROUP BY\b", text, re.I), "unbounded result set"


def test_sql_substitutes_variables_as_quoted_literals():
    recent = next(q for q in sql_queries() if q.where == "Recent probes")
    rendered = recent.render({"site": "o'brien"})
    assert "p.site = 'o''brien'" in rendered
    assert "p.sent_at BETWEEN '" in rendered


def test_dashboard_files_are_the_only_json_in_the_folder():
    assert {p.name for p in DASHBOARD_DIR.iterdir()} == {p.name for p in BOARDS}
