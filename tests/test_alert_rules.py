"""Alert rules: promtool checks them and runs their unit tests; the rules stay
generic (no per-site rule, targets from the metric) and every alert says what
to check first. Also checks that the Alertmanager example routes every severity.

A fleet gives the same alerts as one instance: besides the two-instance cases
written in alerts_test.yml, every single-instance case is replayed here as a
fleet (its series on a holder, a standby beside it; then both holding at once,
as during a failover) and must give exactly the alerts it gives alone."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.config import load_config
from monitor.metrics import Metrics
from monitor.metrics.definitions import DERIVED
from tests.support.integration import need_binary

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "config" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
ALERTMANAGER = REPO / "config" / "alertmanager" / "alertmanager.yml"
SEVERITIES = {"critical", "warning", "info"}


def alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def rule_tests() -> list[dict]:
    return [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = need_binary("promtool", "prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=PROMETHEUS_DIR)


# ---------------------------------------------------------------------------
# promtool


def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_scrape_config_and_finds_the_rules():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


def test_the_rule_unit_tests_pass():
    result = promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_makes_promtool_fail(tmp_path: Path):
    # Proves the unit tests are really compared: flip one silent case into a firing one.
    text = ALERT_TESTS.read_text().replace("rule_files:\n  - alerts.yml", f"rule_files:\n  - {ALERTS}")
    tests = yaml.safe_load(text)
    tests["tests"] = tests["tests"][:1]
    tests["tests"][0]["alert_rule_test"][0]["exp_alerts"] = [{"exp_labels": {"severity": "warning"}}]
    broken = tmp_path / "broken_test.yml"
    broken.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(broken))
    assert result.returncode != 0


# ---------------------------------------------------------------------------
# a fleet gives the same alerts as one instance

SINGLE = 'instance="qualimon:9137"'
HOLDER, STANDBY = 'instance="qualimon-1:9137"', 'instance="qualimon-2:9137"'
COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def derived_metric_names() -> set[str]:
    """The families only the refresh holder exports, as monitor/metrics/ defines them."""
    from prometheus_client import CollectorRegistry

    metrics = Metrics(CollectorRegistry(), load_config(REPO / "config" / "paris-musees.yaml"))
    return {getattr(metrics, name).spec.name for name in DERIVED}


def minutes(duration: str) -> int:
    units = {"d": 1440, "h": 60, "m": 1, "s": 1 / 60}
    return int(sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([dhms])", duration)))


def as_fleet(test: dict, derived: set[str], *, double: bool) -> dict | None:
    """`test` with two instances: the single instance's series on the holder, and on the standby the
    same figures from the database when `double` (a failover), zeroed counters, status gauges at 0
    (its watchers hold nothing) and the same config gauges. None for a case about `up` itself, and
    for one that already has a fleet's series beside one instance's (the 7-day watchdog group)."""
    series = test["input_series"]
    if any(not s["series"].startswith("qualimon_") or SINGLE not in s["series"] for s in series):
        return None
    length = max(minutes(case["eval_time"]) for case in test["alert_rule_test"]) + 10
    fleet = []
    for s in series:
        name = s["series"].split("{", 1)[0]
        fleet.append({**s, "series": s["series"].replace(SINGLE, HOLDER)})
        standby = s["series"].replace(SINGLE, STANDBY)
        if name in derived:
            if double:
                fleet.append({**s, "series": standby})
        elif name.endswith(COUNTER_SUFFIXES) or name.endswith(("_up", "_timestamp_seconds")):
            fleet.append({"series": standby, "values": f"0x{length}"})
        else:
            fleet.append({**s, "series": standby})  # configuration: the same on every instance
    return {**test, "input_series": fleet}


@pytest.mark.parametrize("double", [False, True], ids=["holder-and-standby", "both-holding-during-failover"])
def test_every_single_instance_case_gives_the_same_alerts_with_two_instances(tmp_path: Path, double: bool):
    cases = yaml.safe_load(ALERT_TESTS.read_text())
    derived = derived_metric_names()
    fleet = [t for t in (as_fleet(test, derived, double=double) for test in cases["tests"]) if t is not None]
    replayed_alerts = {case["alertname"] for test in fleet for case in test["alert_rule_test"]}
    assert replayed_alerts >= {"QualimonCommitmentBelowTarget", "QualimonProbeOverdue", "QualimonMailboxDown",
                               "QualimonProbeSendFailures", "QualimonCalllogStale", "QualimonCalllogNeverIngested"}
    replayed = tmp_path / "fleet_test.yml"
    replayed.write_text(yaml.safe_dump({**cases, "rule_files": [str(ALERTS)], "tests": fleet}))
    result = promtool("test", "rules", str(replayed))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_fleet_replay_would_catch_a_rule_that_sums_a_figure_from_the_database(tmp_path: Path):
    summed = ALERTS.read_text().replace("max without (instance) (last_over_time(qualimon_probes_overdue[5m]))",
                                        "sum without (instance) (qualimon_probes_overdue)")
    assert summed != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(summed)
    cases = yaml.safe_load(ALERT_TESTS.read_text())
    fleet = [t for t in (as_fleet(test, derived_metric_names(), double=True) for test in cases["tests"]) if t]
    replayed = tmp_path / "fleet_test.yml"
    replayed.write_text(yaml.safe_dump({**cases, "rule_files": ["alerts.yml"], "tests": fleet}))
    result = promtool("test", "rules", str(replayed))
    assert result.returncode != 0 and "QualimonProbeOverdue" in result.stdout + result.stderr


# ---------------------------------------------------------------------------
# the rules themselves


def test_every_alert_the_issue_asks_for_exists():
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "QualimonCommitmentBelowTarget", "QualimonProbeOverdue", "QualimonMailboxDown",
        "QualimonProbeSendFailures", "QualimonSiteNoProbeSent", "QualimonCalllogStale", "QualimonDown",
        "QualimonMailboxMessageAwaitingReview",
    } <= names


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_severity_site_summary_and_what_to_check_first(rule: dict):
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"].strip()
    assert "Check first" in rule["annotations"]["description"]


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda r: r["alert"])
def test_no_alert_is_written_for_one_site(rule: dict):
    assert not re.search(r'site\s*=~?\s*"', rule["expr"]), rule["expr"]


def test_below_target_compares_with_the_target_metric_not_a_number():
    rule = next(r for r in alert_rules() if r["alert"] == "QualimonCommitmentBelowTarget")
    assert "qualimon_commitment_target_ratio" in rule["expr"]
    assert re.search(r"on \(commitment\) group_left", rule["expr"])
    assert not re.search(r"<\s*0?\.\d", rule["expr"]), "a hard-coded ratio"


def test_every_alert_fired_in_the_tests_carries_a_site_label():
    # per-site alerts take it from the series, monitor-wide ones set site="all"
    fired = [alert for case in rule_tests() for alert in case.get("exp_alerts") or []]
    assert fired
    for alert in fired:
        assert alert["exp_labels"].get("site"), alert


def test_there_are_enough_rule_tests_and_each_alert_is_tested_both_ways():
    cases = rule_tests()
    assert len(cases) >= 12
    for name in {rule["alert"] for rule in alert_rules()}:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c.get("exp_alerts") for c in mine), f"{name} never shown firing"
        assert any(not c.get("exp_alerts") for c in mine), f"{name} never shown silent"


# ---------------------------------------------------------------------------
# Alertmanager example


def alertmanager() -> dict:
    return yaml.safe_load(ALERTMANAGER.read_text())


def routes(route: dict) -> list[dict]:
    return [route, *(r for child in route.get("routes", []) for r in routes(child))]


def test_alertmanager_groups_by_site_and_routes_every_severity():
    config = alertmanager()
    assert "site" in config["route"]["group_by"]
    matchers = " ".join(m for r in routes(config["route"]) for m in r.get("matchers", []))
    for severity in SEVERITIES:
        assert f'severity="{severity}"' in matchers


def test_alertmanager_routes_only_to_defined_receivers():
    config = alertmanager()
    defined = {receiver["name"] for receiver in config["receivers"]}
    assert {r["receiver"] for r in routes(config["route"]) if "receiver" in r} <= defined


def test_alertmanager_example_uses_reserved_domains_only():
    text = ALERTMANAGER.read_text()
    for host in re.findall(r"[\w.-]+@([\w.-]+)|https?://([\w.-]+)|smarthost:\s*([\w.-]+)", text):
        domain = next(h for h in host if h)
        assert re.search(r"(^|\.)example\.(org|net|com)$", domain), domain
