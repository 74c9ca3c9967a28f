"""The /metrics contract (docs/design.md §6): names, types, labels, start-up series, buckets, token.

And the fast exposition behind it: byte for byte what prometheus_client's own
encoders write (text and OpenMetrics, gzip included), rendered off the event
loop, each snapshot seen whole.  Its speed at 10 000 sites is bench_metrics.py's.
"""

from __future__ import annotations

import asyncio
import gzip
import subprocess
import threading
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

import monitor
import monitor.metrics.exposition as exposition_module
from monitor.config import Config, parse_config
from monitor.fleet.tasks import fleet_tasks
from monitor.metrics import DerivedSnapshot, Metrics
from monitor.metrics.definitions import (
    CALL_OUTCOMES,
    CALLLOG_REJECT_REASONS,
    SEND_FAILURE_REASONS,
    UnknownLabel,
    send_failure_reason,
)
from monitor.metrics.http import make_metrics_app_handler
from tests.support.integration import need_binary

# docs/design.md §6, written out independently of monitor/metrics/ on purpose.
CONTRACT: dict[str, tuple[str, set[str]]] = {
    "qualimon_build_info": ("gauge", {"version"}),
    "qualimon_probes_sent": ("counter", {"channel"}),
    "qualimon_probe_send_failures": ("counter", {"channel", "reason"}),
    "qualimon_responses": ("counter", {"channel", "kind"}),
    "qualimon_verdicts": ("counter", {"commitment", "verdict"}),
    "qualimon_response_delay_seconds": ("histogram", {"commitment"}),
    "qualimon_response_delay_business_seconds": ("histogram", {"commitment"}),
    "qualimon_probes_open": ("gauge", {"site", "channel"}),
    "qualimon_probes_overdue": ("gauge", {"site", "commitment"}),
    "qualimon_oldest_open_probe_age_seconds": ("gauge", {"channel"}),
    "qualimon_commitment_compliance_ratio": ("gauge", {"site", "commitment", "window"}),
    "qualimon_commitment_samples": ("gauge", {"site", "commitment", "window", "verdict"}),
    "qualimon_commitment_target_ratio": ("gauge", {"commitment"}),
    "qualimon_commitment_threshold_seconds": ("gauge", {"commitment"}),
    "qualimon_call_ring_seconds": ("histogram", {"source"}),
    "qualimon_calls": ("counter", {"source", "outcome"}),
    "qualimon_mailbox_up": ("gauge", {"mailbox"}),
    "qualimon_mailbox_last_success_timestamp_seconds": ("gauge", {"mailbox"}),
    "qualimon_mailbox_messages": ("counter", {"mailbox", "bucket"}),
    "qualimon_mailbox_awaiting_review": ("gauge", {"mailbox", "bucket"}),
    "qualimon_mailbox_oldest_awaiting_review_timestamp_seconds": ("gauge", {"mailbox"}),
    "qualimon_verdicts_in_review": ("gauge", {"commitment"}),
    "qualimon_calllog_last_ingest_timestamp_seconds": ("gauge", {"source"}),
    "qualimon_calllog_rows_rejected": ("counter", {"source", "reason"}),
    "qualimon_last_probe_sent_timestamp_seconds": ("gauge", {"site"}),
    "qualimon_fleet_role": ("gauge", {"task"}),
    "qualimon_fleet_instances": ("gauge", set()),
}

HEAD = """
calendars:
  offices: {working_days: [mon, tue, wed, thu, fri]}
  museum:
    opening_hours: {tue-sun: ["10:00-18:00"]}
commitments:
  email.ack:   {channel: email, within: {working_days: 1}, counts: [auto_reply, human_reply], target: 0.90}
  email.reply: {channel: email, within: {working_days: 5}, counts: [human_reply], target: 0.90}
  phone.answer: {channel: phone, within: {rings: 5}, during: open, target: 0.85}
  phone.out_of_hours: {channel: phone, within: {rings: 5}, during: closed, target: 0.90}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    imap: {host: imap.example.net, username: jeanne, password: "${IMAP_PASSWORD}"}
phone_lines:
  mystery:
    sip: {proxy: "sip:trunk.example.net:5060", from: "sip:+33199001000@trunk.example.net"}
sites:
"""


def site_yaml(i: int) -> str:
    # 12 sites with both channels, one email-only, one phone-only with a paused quota.
    lines = [f"  - id: site-{i:02d}", f"    name: Site {i}", "    calendar: museum", "    office_calendar: offices"]
    if i != 13:
        lines.append(f"    email: {{address: contact{i}@example.org, per_month: 4}}")
    if i != 12:
        per_month = 0 if i == 13 else 8
        lines.append(f'    phone: {{number: "+331990012{i:02d}", per_month: {per_month}}}')
    return "\n".join(lines) + "\n"


SITES = [f"site-{i:02d}" for i in range(14)]
EMAIL_SITES = [s for s in SITES if s != "site-13"]
PHONE_SITES = [s for s in SITES if s != "site-12"]
SOURCES = ("asterisk-main", "operator-csv")
T0 = datetime(2026, 5, 11, 8, 0, tzinfo=UTC)


@pytest.fixture
def config() -> Config:
    text = HEAD + "".join(site_yaml(i) for i in range(14))
    return parse_config(text, environ={"IMAP_PASSWORD": "not-a-real-password"})


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry, config: Config) -> Metrics:
    return Metrics(registry, config, source_ids=SOURCES, strict=True)


def families(registry: CollectorRegistry) -> dict:
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(registry: CollectorRegistry, name: str) -> list:
    return [s for f in families(registry).values() for s in f.samples if s.name == name]


def label_sets(registry: CollectorRegistry, name: str, drop: tuple[str, ...] = ()) -> set[tuple]:
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in drop)) for s in samples(registry, name)}


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# ---------------------------------------------------------------------------
# the contract


def test_it_exposes_every_metric_of_the_design_with_its_type_and_labels(metrics, registry):
    found = families(registry)
    assert set(found) == set(CONTRACT)
    for name, (kind, labels) in CONTRACT.items():
        family = found[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no series at start-up"
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)


def test_promtool_finds_nothing_to_lint_in_the_exposition(metrics, registry):
    promtool = need_binary("promtool", "prometheus")
    drive_every_writer(metrics)
    result = subprocess.run([promtool, "check", "metrics"], input=generate_latest(registry).decode(),
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_it_exposes_no_created_series(metrics, registry):
    text = generate_latest(registry).decode()
    assert "_created" not in text


def test_it_creates_every_label_combination_at_zero_at_start_up(metrics, registry):
    email_commitments = len(EMAIL_SITES) * 2
    expected = {
        # what an instance counts itself: network-level
        "qualimon_probes_sent_total": 2,
        "qualimon_probe_send_failures_total": 2 * len(SEND_FAILURE_REASONS),
        "qualimon_responses_total": 3,
        "qualimon_verdicts_total": 4 * 3,
        "qualimon_response_delay_seconds_count": 4,
        "qualimon_response_delay_business_seconds_count": 2,
        "qualimon_call_ring_seconds_count": 2,
        "qualimon_calls_total": 2 * len(CALL_OUTCOMES),
        "qualimon_oldest_open_probe_age_seconds": 2,
        # from the database, per site: open and overdue only where answers come after the probe (email)
        "qualimon_probes_open": len(EMAIL_SITES),
        "qualimon_probes_overdue": email_commitments,
        "qualimon_commitment_compliance_ratio": len(EMAIL_SITES) * 2 + len(PHONE_SITES) * 2,
        "qualimon_commitment_samples": (len(EMAIL_SITES) * 2 + len(PHONE_SITES) * 2) * 2,
        "qualimon_mailbox_up": 1,
        "qualimon_mailbox_last_success_timestamp_seconds": 1,
        "qualimon_calllog_last_ingest_timestamp_seconds": len(SOURCES),
        "qualimon_calllog_rows_rejected_total": len(SOURCES) * len(CALLLOG_REJECT_REASONS),
        # site-13's only channel is paused (per_month: 0): no watchdog series
        "qualimon_last_probe_sent_timestamp_seconds": len(SITES) - 1,
    }
    for name, count in expected.items():
        found = samples(registry, name)
        assert len(found) == count, name
        assert all(s.value == 0 for s in found), name


def test_it_only_creates_series_for_what_a_site_has(metrics, registry):
    assert label_sets(registry, "qualimon_probes_open") == {
        (("channel", "email"), ("site", s)) for s in EMAIL_SITES}
    commitments = {dict(ls)["commitment"] for ls in label_sets(registry, "qualimon_commitment_compliance_ratio")
                   if dict(ls)["site"] == "site-12"}
    assert commitments == {"email.ack", "email.reply"}
    assert {dict(ls)["site"] for ls in label_sets(registry, "qualimon_last_probe_sent_timestamp_seconds")} == set(
        SITES) - {"site-13"}


def test_it_publishes_version_targets_and_wall_clock_thresholds_only(metrics, registry):
    assert value(registry, "qualimon_build_info", version=monitor.__version__) == 1
    assert value(registry, "qualimon_commitment_target_ratio", commitment="phone.answer") == 0.85
    assert value(registry, "qualimon_commitment_target_ratio", commitment="email.reply") == 0.90
    assert value(registry, "qualimon_commitment_threshold_seconds", commitment="phone.answer") == 25.0
    thresholds = {dict(ls)["commitment"] for ls in label_sets(registry, "qualimon_commitment_threshold_seconds")}
    assert thresholds == {"phone.answer", "phone.out_of_hours"}


def test_histogram_buckets_include_every_commitment_threshold(metrics, registry):
    delay_les = {s.labels["le"] for s in samples(registry, "qualimon_response_delay_seconds_bucket")}
    ring_les = {s.labels["le"] for s in samples(registry, "qualimon_call_ring_seconds_bucket")}
    assert {"25.0", "86400.0", "432000.0", "2.592e+06", "+Inf"} <= delay_les
    assert "25.0" in ring_les


def test_the_threshold_bucket_reads_the_on_time_share(metrics, registry):
    metrics.verdict("site-01", "phone.answer", "met", delay_seconds=24.9)
    metrics.verdict("site-02", "phone.answer", "missed", delay_seconds=25.1)
    metrics.verdict("site-01", "phone.answer", "void", delay_seconds=3.0)  # our failure: not a delay
    within = value(registry, "qualimon_response_delay_seconds_bucket", commitment="phone.answer", le="25.0")
    total = value(registry, "qualimon_response_delay_seconds_count", commitment="phone.answer")
    assert (within, total) == (1, 2)
    assert value(registry, "qualimon_verdicts_total", commitment="phone.answer", verdict="void") == 1


# ---------------------------------------------------------------------------
# writers keep label values bounded


def drive_every_writer(metrics: Metrics) -> None:
    metrics.probe_sent("site-00", "email", T0)
    metrics.send_failed("site-00", "phone", "sip trunk said 503 to probe 7f3a")
    metrics.response("site-00", "email", "auto_reply")
    metrics.verdict("site-00", "email.reply", "missed", delay_seconds=7 * 86400.0, business_delay_seconds=5 * 86400.0)
    metrics.call("site-01", "calllog", "answered", ring_seconds=12.0)
    metrics.mailbox_status("mystery", up=True, at=T0)
    metrics.mailbox_message("mystery", "held")
    metrics.calllog_ingested("asterisk-main", T0)
    metrics.calllog_rejected("operator-csv", "row 12 for contact@example.org", count=3)


def test_label_values_are_only_config_names_and_enums(metrics, registry, config):
    drive_every_writer(metrics)
    allowed = {
        "site": {s.id for s in config.sites},
        "channel": {"email", "phone"},
        "commitment": set(config.commitments),
        "mailbox": set(config.mailboxes),
        "source": {*SOURCES, "mystery", "calllog"},
        "verdict": {"met", "missed", "pending", "void"},
        "kind": {"human_reply", "auto_reply", "bounce"},
        "outcome": set(CALL_OUTCOMES),
        "window": {"30d", "90d"},
        "reason": {*SEND_FAILURE_REASONS, *CALLLOG_REJECT_REASONS},
        "version": {monitor.__version__},
        "bucket": {"matched", "unrelated", "held", "quarantined"},
        "task": set(fleet_tasks(config)),
    }
    for family in families(registry).values():
        for sample in family.samples:
            for key, label in sample.labels.items():
                if key != "le":
                    assert label in allowed[key], (sample.name, key, label)


def test_an_unknown_reason_is_counted_as_other(metrics, registry):
    drive_every_writer(metrics)
    assert value(registry, "qualimon_probe_send_failures_total", channel="phone", reason="other") == 1
    assert value(registry, "qualimon_calllog_rows_rejected_total", source="operator-csv", reason="other") == 3


@pytest.mark.parametrize("text, reason", [
    ("auth", "auth"),
    ("timeout: the probe took more than 120 s", "timeout"),
    ("smtp: connection refused by smtp.example.net", "connect"),
    ("SSL: CERTIFICATE_VERIFY_FAILED", "tls"),
    ("535 5.7.8 authentication credentials invalid", "auth"),
    ("recipient contact@example.org rejected (550)", "refused"),
    ("monitor error: KeyError('x')", "internal"),
    ("no probe kind for channel 'fax' in this build", "internal"),
    ("the moon is in the wrong phase", "other"),
])
def test_free_text_send_failures_fold_into_the_fixed_reasons(text, reason):
    assert send_failure_reason(text) == reason


@pytest.mark.parametrize("write", [
    lambda m: m.probe_sent("site-99", "email", T0),
    lambda m: m.probe_sent("site-12", "phone", T0),  # site-12 has no phone
    lambda m: m.response("site-00", "email", "read_receipt"),
    lambda m: m.verdict("site-00", "email.ack", "pending"),
    lambda m: m.verdict("site-12", "phone.answer", "met"),
    lambda m: m.call("site-00", "mystery", "voicemail"),
    lambda m: m.call("site-12", "mystery", "answered"),  # site-12 makes no calls
    lambda m: m.send_failed("site-13", "email", "auth"),  # site-13 has no email
    lambda m: m.mailbox_status("jeanne.martin@probes.example.net", up=False),
    lambda m: m.calllog_ingested("unknown-pbx", T0),
])
def test_it_refuses_a_label_value_outside_the_config(metrics, registry, write):
    before = generate_latest(registry)
    with pytest.raises(UnknownLabel):
        write(metrics)
    assert generate_latest(registry) == before


def test_outside_strict_mode_an_unknown_label_is_dropped_with_one_warning(registry, config, caplog):
    lenient = Metrics(registry, config, source_ids=SOURCES)
    before = generate_latest(registry)
    for _ in range(3):
        lenient.verdict("site-removed-from-config", "email.ack", "met", delay_seconds=10.0)
    lenient.calllog_ingested("unknown-pbx", T0)
    assert generate_latest(registry) == before
    warnings = [r.getMessage() for r in caplog.records if "site-removed-from-config" in r.getMessage()]
    assert len(warnings) == 1  # once, not once per call


def test_it_refuses_naive_instants(metrics):
    with pytest.raises(ValueError, match="naive"):
        metrics.probe_sent("site-00", "email", datetime(2026, 5, 11, 8, 0))


def test_a_paused_channel_counts_one_off_probes_without_arming_the_watchdog(metrics, registry):
    metrics.probe_sent("site-13", "phone", T0)
    assert value(registry, "qualimon_probes_sent_total", channel="phone") == 1
    assert value(registry, "qualimon_last_probe_sent_timestamp_seconds", site="site-13") is None


def test_the_watchdog_of_a_site_is_its_last_send_on_any_planned_channel(metrics, registry):
    metrics.probe_sent("site-01", "phone", T0 + timedelta(hours=1))
    metrics.probe_sent("site-01", "email", T0)
    assert value(registry, "qualimon_last_probe_sent_timestamp_seconds", site="site-01") == T0.timestamp() + 3600


def test_mailbox_status_records_up_down_and_last_success(metrics, registry):
    metrics.mailbox_status("mystery", up=True, at=T0)
    metrics.mailbox_status("mystery", up=False, at=T0 + timedelta(minutes=5))
    assert value(registry, "qualimon_mailbox_up", mailbox="mystery") == 0
    assert value(registry, "qualimon_mailbox_last_success_timestamp_seconds", mailbox="mystery") == T0.timestamp()


# ---------------------------------------------------------------------------
# database-derived gauges


def test_apply_snapshot_sets_gauges_zeroes_the_rest_and_ignores_unknown_sites(metrics, registry):
    metrics.apply_snapshot(DerivedSnapshot(probes_open={("site-01", "email"): 9}))
    metrics.apply_snapshot(DerivedSnapshot(
        compliance_ratio={("site-00", "email.reply", "30d"): 0.8, ("gone-site", "email.reply", "30d"): 0.1},
        samples={("site-00", "email.reply", "30d", "met"): 8, ("site-00", "email.reply", "30d", "missed"): 2,
                 ("site-00", "email.reply", "30d", "pending"): 5, ("site-00", "email.reply", "90d", "met"): 20},
        probes_open={("site-00", "email"): 2, ("site-00", "phone"): 1},
        probes_overdue={("site-00", "email.ack"): 1},
        oldest_open_probe_age_seconds={("site-00", "phone"): 30.0, ("site-01", "phone"): 45.0,
                                       ("site-02", "email"): 7.0},
    ))
    assert value(registry, "qualimon_commitment_compliance_ratio",
                 site="site-00", commitment="email.reply", window="30d") == 0.8
    assert value(registry, "qualimon_commitment_samples",
                 site="site-00", commitment="email.reply", window="30d", verdict="missed") == 2
    assert value(registry, "qualimon_probes_open", site="site-00", channel="email") == 2
    assert value(registry, "qualimon_probes_open", site="site-01", channel="email") == 0
    assert value(registry, "qualimon_probes_overdue", site="site-00", commitment="email.ack") == 1
    assert value(registry, "qualimon_oldest_open_probe_age_seconds", channel="phone") == 45
    assert value(registry, "qualimon_oldest_open_probe_age_seconds", channel="email") == 7
    text = generate_latest(registry).decode()
    assert "gone-site" not in text and 'verdict="pending"' not in text and 'window="90d"' not in text


def test_store_timestamps_never_move_a_live_timestamp_back(metrics, registry):
    later = T0 + timedelta(hours=1)
    metrics.probe_sent("site-00", "email", later)
    metrics.apply_snapshot(DerivedSnapshot(
        last_probe_sent={("site-00", "email"): T0, ("site-01", "phone"): T0},
        calllog_last_ingest={"asterisk-main": T0, "unknown-pbx": T0},
    ))
    assert value(registry, "qualimon_last_probe_sent_timestamp_seconds", site="site-00") == later.timestamp()
    assert value(registry, "qualimon_last_probe_sent_timestamp_seconds", site="site-01") == T0.timestamp()
    assert value(registry, "qualimon_calllog_last_ingest_timestamp_seconds",
                 source="asterisk-main") == T0.timestamp()


# ---------------------------------------------------------------------------
# a fleet: the database-derived families come from the holder of the refresh only

DERIVED_NAMES = {"qualimon_probes_open", "qualimon_probes_overdue", "qualimon_oldest_open_probe_age_seconds",
                 "qualimon_commitment_compliance_ratio", "qualimon_commitment_samples",
                 "qualimon_last_probe_sent_timestamp_seconds", "qualimon_mailbox_awaiting_review",
                 "qualimon_mailbox_oldest_awaiting_review_timestamp_seconds", "qualimon_verdicts_in_review"}
SOME_FIGURES = DerivedSnapshot(
    compliance_ratio={("site-00", "email.reply", "30d"): 0.8},
    probes_open={("site-00", "email"): 3},
    last_probe_sent={("site-00", "email"): T0},
)


def test_every_series_with_a_site_label_comes_from_the_database(metrics, registry):
    drive_every_writer(metrics)
    per_site = {s.name for f in families(registry).values() for s in f.samples if "site" in s.labels}
    assert per_site == {"qualimon_probes_open", "qualimon_probes_overdue", "qualimon_commitment_compliance_ratio",
                        "qualimon_commitment_samples", "qualimon_last_probe_sent_timestamp_seconds"}


def test_an_instance_without_the_refresh_exports_no_derived_series_not_even_zeros(metrics, registry):
    metrics.apply_snapshot(SOME_FIGURES)
    metrics.export_derived(False)
    drive_every_writer(metrics)
    found = families(registry)
    assert set(found) == set(CONTRACT) - DERIVED_NAMES
    assert "site=" not in generate_latest(registry).decode()
    assert not metrics.exports_derived
    assert value(registry, "qualimon_probes_sent_total", channel="email") == 1  # its own counts stay


def test_a_new_holder_shows_the_derived_series_from_its_first_snapshot_on(metrics, registry):
    metrics.export_derived(False)
    metrics.probe_sent("site-00", "email", T0 - timedelta(days=1))  # while standing by
    metrics.export_derived(True)
    assert metrics.exports_derived
    assert set(families(registry)) == set(CONTRACT) - DERIVED_NAMES  # no zeros, nothing stale before it
    metrics.apply_snapshot(SOME_FIGURES)
    assert set(families(registry)) == set(CONTRACT)
    assert value(registry, "qualimon_probes_open", site="site-00", channel="email") == 3
    assert value(registry, "qualimon_commitment_compliance_ratio",
                 site="site-00", commitment="email.reply", window="30d") == 0.8
    assert value(registry, "qualimon_last_probe_sent_timestamp_seconds", site="site-00") == T0.timestamp()


def test_losing_the_refresh_hides_the_derived_series_at_once_even_with_a_snapshot_not_yet_read(metrics, registry):
    metrics.export_derived(False)
    metrics.export_derived(True)
    metrics.apply_snapshot(SOME_FIGURES)
    metrics.export_derived(False)
    assert set(families(registry)) == set(CONTRACT) - DERIVED_NAMES
    metrics.apply_snapshot(SOME_FIGURES)  # a refresh that was under way when the lock was lost
    assert set(families(registry)) == set(CONTRACT) - DERIVED_NAMES


def test_losing_the_refresh_while_a_snapshot_is_being_applied_still_hides_them(metrics, registry, monkeypatch):
    dense = exposition_module.Family.dense
    lost = []

    def losing(self, values):
        if not lost:  # the lock is lost while the first family is being converted
            lost.append(True)
            metrics.export_derived(False)
        return dense(self, values)

    metrics.export_derived(False)
    metrics.export_derived(True)
    monkeypatch.setattr(exposition_module.Family, "dense", losing)
    metrics.apply_snapshot(SOME_FIGURES)
    assert set(families(registry)) == set(CONTRACT) - DERIVED_NAMES and lost


def test_one_instance_alone_exports_the_derived_series_from_start_up(metrics, registry):
    assert metrics.exports_derived
    assert DERIVED_NAMES <= set(families(registry))


async def test_the_served_text_leaves_out_the_same_families(aiohttp_client, tiny_blocks, config):
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES, strict=True)
    client = await client_for(aiohttp_client, registry, None)
    await client.get("/metrics")  # cached text of every block, derived ones included
    metrics.apply_snapshot(SOME_FIGURES)
    metrics.export_derived(False)
    drive_every_writer(metrics)
    text = await (await client.get("/metrics")).text()
    assert text == generate_latest(registry).decode()
    assert not DERIVED_NAMES & {f.name for f in text_string_to_metric_families(text)}
    filtered = await (await client.get("/metrics", params=[("name[]", "qualimon_probes_open"),
                                                           ("name[]", "qualimon_mailbox_up")])).text()
    assert {f.name for f in text_string_to_metric_families(filtered)} == {"qualimon_mailbox_up"}


# ---------------------------------------------------------------------------
# the HTTP handler


async def client_for(aiohttp_client, registry: CollectorRegistry, token: SecretStr | None, **options):
    app = web.Application()
    app.router.add_get("/metrics", make_metrics_app_handler(registry, token))
    return await aiohttp_client(app, **options)


async def test_metrics_without_a_token_are_open(aiohttp_client, metrics, registry):
    client = await client_for(aiohttp_client, registry, None)
    response = await client.get("/metrics")
    assert response.status == 200
    assert "qualimon_probes_sent_total" in await response.text()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-wrong-token", "bearer-secret-for-metrics",
                                    "Basic YWRtaW46YWRtaW4=", "Bearer é"])
async def test_metrics_with_a_token_refuse_anything_else(aiohttp_client, metrics, registry, header):
    client = await client_for(aiohttp_client, registry, SecretStr("bearer-secret-for-metrics"))
    headers = {"Authorization": header} if header else {}
    response = await client.get("/metrics", headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "qualimon" not in (await response.text()).replace("qualimon metrics", "")


async def test_metrics_with_a_token_serve_the_right_bearer(aiohttp_client, metrics, registry):
    client = await client_for(aiohttp_client, registry, SecretStr("bearer-secret-for-metrics"))
    response = await client.get("/metrics", headers={"Authorization": "Bearer bearer-secret-for-metrics"})
    assert response.status == 200
    assert "qualimon_build_info" in await response.text()


def test_an_empty_token_is_refused(registry):
    with pytest.raises(ValueError, match="empty"):
        make_metrics_app_handler(registry, SecretStr(""))


# ---------------------------------------------------------------------------
# the fast exposition: the same text as prometheus_client's encoders, off the loop

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


@pytest.fixture
def tiny_blocks(monkeypatch) -> None:
    """Blocks of 3 lines: every family spans several blocks and histograms one block per series."""
    monkeypatch.setattr(exposition_module, "BLOCK_LINES", 3)


def drive_a_snapshot(metrics: Metrics) -> None:
    metrics.apply_snapshot(DerivedSnapshot(
        compliance_ratio={("site-03", "email.ack", "90d"): 2 / 3},
        samples={("site-03", "email.ack", "90d", "met"): 2, ("site-03", "email.ack", "90d", "missed"): 1},
        oldest_open_probe_age_seconds={("site-07", "phone"): 1234.5},
        last_probe_sent={("site-09", "email"): T0},
    ))


async def test_the_served_text_is_prometheus_clients_own_encoding(aiohttp_client, tiny_blocks, config):
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES, strict=True)
    client = await client_for(aiohttp_client, registry, None)
    assert await (await client.get("/metrics")).text() == generate_latest(registry).decode()  # a cold render
    drive_every_writer(metrics)
    drive_a_snapshot(metrics)
    metrics.verdict("site-05", "email.ack", "met", delay_seconds=0.1 + 0.2, business_delay_seconds=1e-9)
    response = await client.get("/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert await response.text() == generate_latest(registry).decode()


async def test_openmetrics_is_served_when_asked_for_as_prometheus_does(aiohttp_client, tiny_blocks, config):
    registry = CollectorRegistry()
    drive_every_writer(Metrics(registry, config, source_ids=SOURCES))
    client = await client_for(aiohttp_client, registry, None)
    response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert await response.text() == openmetrics_latest(registry).decode()


async def test_gzip_is_one_valid_stream_of_the_same_text(aiohttp_client, tiny_blocks, config):
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES)
    client = await client_for(aiohttp_client, registry, None, auto_decompress=False)
    for _ in range(2):  # the second time from cached segments, one of them re-deflated
        response = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})
        assert response.headers["Content-Encoding"] == "gzip"
        body = await response.read()
        assert len(body) == int(response.headers["Content-Length"])
        assert gzip.decompress(body) == generate_latest(registry)  # checks the CRC and the length too
        metrics.probe_sent("site-04", "phone", T0)


async def test_other_collectors_on_the_registry_are_still_served(aiohttp_client, metrics, registry):
    Counter("other_events", "Not a qualimon metric", registry=registry).inc(2)
    client = await client_for(aiohttp_client, registry, None)
    text = await (await client.get("/metrics")).text()
    assert "other_events_total 2.0" in text and text.count("# TYPE qualimon_probes_sent_total counter") == 1
    om = await (await client.get("/metrics", headers={"Accept": OPENMETRICS})).text()
    assert "\nother_events_total 2.0\n" in om and om.endswith("\n# EOF\n") and om.count("# EOF") == 1


async def test_name_filters_are_honoured(aiohttp_client, metrics, registry):
    client = await client_for(aiohttp_client, registry, None)
    text = await (await client.get("/metrics", params=[("name[]", "qualimon_mailbox_up")])).text()
    assert {f.name for f in text_string_to_metric_families(text)} == {"qualimon_mailbox_up"}


FILTER = ["qualimon_mailbox_up", "qualimon_probes_sent_total", "qualimon_call_ring_seconds_count",
          "qualimon_call_ring_seconds_sum", "qualimon_verdicts", "no_such_metric"]


@pytest.fixture
def conversions(monkeypatch) -> list[str]:
    """The families turned into prometheus_client objects: the slow full collection, one entry per family."""
    converted: list[str] = []
    to_metric = exposition_module.Family.to_metric

    def spy(self, values):
        converted.append(self.spec.name)
        return to_metric(self, values)

    monkeypatch.setattr(exposition_module.Family, "to_metric", spy)
    return converted


async def test_a_filtered_scrape_holds_exactly_the_requested_samples_without_a_full_collection(
        aiohttp_client, tiny_blocks, config, conversions):
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES, strict=True)
    drive_every_writer(metrics)
    client = await client_for(aiohttp_client, registry, None, auto_decompress=False)
    query = [("name[]", name) for name in FILTER]
    plain = {"Accept-Encoding": "identity"}
    text = await (await client.get("/metrics", params=query, headers=plain)).read()
    om = await (await client.get("/metrics", params=query, headers={**plain, "Accept": OPENMETRICS})).read()
    zipped = await (await client.get("/metrics", params=query, headers={"Accept-Encoding": "gzip"})).read()

    assert conversions == []
    restricted = registry.restricted_registry(FILTER)  # prometheus_client's own filter: by sample name
    assert text == generate_latest(restricted) == gzip.decompress(zipped)
    assert om == openmetrics_latest(restricted)
    shown = {(f.name, s.name) for f in text_string_to_metric_families(text.decode()) for s in f.samples}
    assert {family for family, _ in shown} == {
        "qualimon_mailbox_up", "qualimon_probes_sent", "qualimon_call_ring_seconds"}
    assert {sample for _, sample in shown} == {"qualimon_mailbox_up", "qualimon_probes_sent_total",
                                               "qualimon_call_ring_seconds_count", "qualimon_call_ring_seconds_sum"}


async def test_a_filter_also_applies_to_other_collectors_on_the_registry(aiohttp_client, metrics, registry):
    Counter("other_events", "Not a qualimon metric", registry=registry).inc(2)
    Counter("unrelated_events", "Not asked for", registry=registry).inc()
    client = await client_for(aiohttp_client, registry, None)
    query = [("name[]", "other_events_total"), ("name[]", "qualimon_mailbox_up")]
    text = await (await client.get("/metrics", params=query)).text()
    assert {f.name for f in text_string_to_metric_families(text)} == {"other_events", "qualimon_mailbox_up"}


async def scraped_together(aiohttp_client, registry: CollectorRegistry, scrapes: int, release: threading.Event,
                           **request) -> list[bytes]:
    """`scrapes` overlapping requests: the first render is held until every request has reached the handler."""
    arrived: list[web.Request] = []

    @web.middleware
    async def count_arrivals(http_request, handler):
        arrived.append(http_request)
        return await handler(http_request)

    app = web.Application(middlewares=[count_arrivals])
    app.router.add_get("/metrics", make_metrics_app_handler(registry, None))
    client = await aiohttp_client(app)

    async def scrape() -> bytes:
        response = await client.get("/metrics", **request)
        assert response.status == 200
        return await response.read()

    tasks = [asyncio.create_task(scrape()) for _ in range(scrapes)]
    for _ in range(1000):  # bounded: ~10 s at most
        if len(arrived) == scrapes or all(task.done() for task in tasks):
            break
        await asyncio.sleep(0.01)
    release.set()
    return await asyncio.gather(*tasks)


async def test_concurrent_filtered_scrapes_share_one_render_and_never_collect(
        aiohttp_client, metrics, registry, monkeypatch, conversions):
    renders: list[threading.Thread] = []
    release = threading.Event()
    body = exposition_module.Exposition.body

    def held(self, *args, **kwargs):
        renders.append(threading.current_thread())
        release.wait(10)  # bounded: the test releases it once every request has arrived
        return body(self, *args, **kwargs)

    monkeypatch.setattr(exposition_module.Exposition, "body", held)
    drive_every_writer(metrics)
    bodies = await scraped_together(aiohttp_client, registry, 20, release, params=[("name[]", "qualimon_mailbox_up")])

    assert conversions == [] and len(renders) == 1
    assert len(set(bodies)) == 1 and b'qualimon_mailbox_up{mailbox="mystery"} 1.0' in bodies[0]


class CountingCollector:
    """A collector without `Metrics` behind it (prometheus_client's own path), held on its first collection."""

    def __init__(self, release: threading.Event):
        self.collections = 0
        self.release = release

    def describe(self):
        yield CounterMetricFamily("plain_events", "Events", labels=["kind"])

    def collect(self):
        self.collections += 1
        self.release.wait(10)  # bounded: the test releases it once every request has arrived
        counter = CounterMetricFamily("plain_events", "Events", labels=["kind"])
        counter.add_metric(["a"], 1.0)
        yield counter


async def test_concurrent_scrapes_of_a_plain_registry_run_one_collection(aiohttp_client):
    release = threading.Event()
    registry = CollectorRegistry()
    collector = CountingCollector(release)
    registry.register(collector)

    bodies = await scraped_together(aiohttp_client, registry, 20, release, params=[("name[]", "plain_events_total")])

    assert collector.collections == 1
    assert set(bodies) == {b'# HELP plain_events_total Events\n# TYPE plain_events_total counter\n'
                           b'plain_events_total{kind="a"} 1.0\n'}


async def test_the_exposition_is_rendered_off_the_event_loop(aiohttp_client, metrics, registry, monkeypatch):
    threads = []
    render = exposition_module.Exposition.body

    def spy(self, *args, **kwargs):
        threads.append(threading.current_thread())
        return render(self, *args, **kwargs)

    monkeypatch.setattr(exposition_module.Exposition, "body", spy)
    client = await client_for(aiohttp_client, registry, None)
    assert (await client.get("/metrics")).status == 200
    assert threads and threading.main_thread() not in threads


def test_a_scrape_sees_each_snapshot_whole(tiny_blocks, config):
    """Two snapshots with the same total per site applied in a loop: no scrape mixes them."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES)
    keys = [(s, "email.ack", "30d") for s in EMAIL_SITES]
    all_met = DerivedSnapshot(samples={(*k, "met"): 10 for k in keys})
    all_missed = DerivedSnapshot(samples={(*k, "missed"): 10 for k in keys})
    metrics.apply_snapshot(all_met)
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            metrics.apply_snapshot(all_missed)
            metrics.apply_snapshot(all_met)

    writer = threading.Thread(target=flip)
    writer.start()
    try:
        for _ in range(50):
            text = b"".join(metrics._exposition.body(openmetrics=False, gzip=False)).decode()
            totals = {"met": 0.0, "missed": 0.0}
            for line in text.splitlines():
                if line.startswith('qualimon_commitment_samples{commitment="email.ack"') and 'window="30d"' in line:
                    verdict = line.split('verdict="')[1].split('"')[0]
                    if verdict in totals:
                        totals[verdict] += float(line.rsplit(" ", 1)[1])
            assert totals in ({"met": 10.0 * len(keys), "missed": 0.0}, {"met": 0.0, "missed": 10.0 * len(keys)})
    finally:
        stop.set()
        writer.join()


def test_a_histogram_reads_like_prometheus_clients_own(config):
    """Cumulative buckets, +Inf, count and sum of a series, from one observation per bucket edge and beyond."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES, strict=True)
    reference = Histogram("reference_seconds", "x", buckets=metrics.ring.spec.buckets, registry=CollectorRegistry())
    for ring in (*metrics.ring.spec.buckets, 0.0, 0.5, 1e9, float("nan")):
        metrics.call("site-02", "mystery", "answered", ring_seconds=ring)
        reference.observe(ring)
    expected = {s.labels.get("le"): s.value for s in reference.collect()[0].samples if s.name.endswith("_bucket")}
    found = {s.labels["le"]: s.value for s in samples(registry, "qualimon_call_ring_seconds_bucket")
             if s.labels["source"] == "mystery"}
    assert found == expected
    assert value(registry, "qualimon_call_ring_seconds_count", source="mystery") == expected["+Inf"]


async def test_a_snapshot_is_turned_into_values_off_the_event_loop(aiohttp_client, metrics, registry, monkeypatch):
    threads = []
    dense = exposition_module.Family.dense

    def spy(self, values):
        threads.append(threading.current_thread())
        return dense(self, values)

    monkeypatch.setattr(exposition_module.Family, "dense", spy)
    metrics.apply_snapshot(DerivedSnapshot(probes_open={("site-00", "email"): 2}))
    assert threading.main_thread() not in threads  # handed over, not converted on the loop
    client = await client_for(aiohttp_client, registry, None)
    text = await (await client.get("/metrics")).text()
    assert 'qualimon_probes_open{channel="email",site="site-00"} 2.0' in text
    assert threads and threading.main_thread() not in threads  # by the preparer, or the scrape if it came first


def test_a_snapshot_is_ready_before_the_next_scrape_asks(config):
    """The preparer applies it and renders its blocks, so the scrape finds nothing left to do."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=SOURCES)
    metrics.apply_snapshot(DerivedSnapshot(probes_open={("site-00", "email"): 2}))
    exposition = metrics._exposition
    for _ in range(500):  # bounded: the preparer thread takes milliseconds
        with exposition._lock:
            if exposition._pending is None and not exposition._dirty and None not in exposition._deflated:
                break
        threading.Event().wait(0.01)
    else:
        raise AssertionError("the snapshot was not prepared")
    assert registry.get_sample_value("qualimon_probes_open", {"site": "site-00", "channel": "email"}) == 2


async def test_label_values_are_escaped_as_prometheus_client_escapes_them(aiohttp_client, config):
    registry = CollectorRegistry()
    metrics = Metrics(registry, config, source_ids=('pbx "north"\\1', "pbx\nsouth"))
    metrics.calllog_rejected('pbx "north"\\1', "columns", count=2)
    client = await client_for(aiohttp_client, registry, None)
    text = await (await client.get("/metrics")).text()
    assert text == generate_latest(registry).decode()
    assert 'source="pbx \\"north\\"\\\\1"} 2.0' in text and 'source="pbx\\nsouth"' in text
