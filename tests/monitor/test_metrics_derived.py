"""The database-derived figures (`monitor.derived`) that the refresh holder exports for the whole fleet.

Run against SQLite and PostgreSQL (the `store` fixture).  Rows go straight
into `probes` and `verdicts`: the derived figures read only those tables,
whichever instance of a fleet wrote them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry
from sqlalchemy import insert

from monitor import derived
from monitor.config import Config
from monitor.metrics import Metrics
from monitor.metrics.definitions import WINDOWS
from monitor.store.schema import Probe, Verdict
from monitor.store.store import Store

NOW = datetime(2026, 6, 2, 8, 30, tzinfo=UTC)


async def sent_probe(store: Store, probe_id: str, site: str, channel: str, planned: datetime, *,
                     claimed_by: str = "instance-a", verdict: tuple[str, str] | None = None) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(insert(Probe).values(
            id=probe_id, site=site, channel=channel, purpose="standard", origin="test", status="closed",
            planned_at=planned, sent_at=planned, timer_started_at=planned, closed_at=planned, details="{}",
            created_at=planned, updated_at=planned, attempts=1, claimed_by=claimed_by))
        if verdict is not None:
            commitment, value = verdict
            await conn.execute(insert(Verdict).values(
                probe_id=probe_id, commitment=commitment, site=site, channel=channel, verdict=value,
                deadline=planned + timedelta(days=1), started_at=planned, late=False, decided_at=planned))


def test_the_refresh_computes_the_windows_the_metrics_export():
    assert tuple(derived.WINDOWS) == WINDOWS


async def test_every_refresh_sees_the_recent_sends_of_every_instance(store: Store, paris_config: Config):
    site = paris_config.sites[0].id
    await sent_probe(store, "a" * 32, site, "email", NOW - timedelta(days=30))
    first = await derived.compute_snapshot(store, paris_config, NOW, with_last_sent=True)
    assert first.last_probe_sent[(site, "email")] == NOW - timedelta(days=30)

    await sent_probe(store, "b" * 32, site, "email", NOW - timedelta(hours=2), claimed_by="instance-b")
    later = await derived.compute_snapshot(store, paris_config, NOW, with_last_sent=False)
    assert later.last_probe_sent == {(site, "email"): NOW - timedelta(hours=2)}


async def test_a_refresh_after_the_first_reads_only_probes_planned_recently(store: Store, paris_config: Config):
    site = paris_config.sites[0].id
    await sent_probe(store, "c" * 32, site, "email", NOW - derived.RECENT_SENDS - timedelta(hours=1))
    later = await derived.compute_snapshot(store, paris_config, NOW, with_last_sent=False)
    assert later.last_probe_sent == {}  # the old send is already on the gauge since the first refresh


async def test_the_holder_exports_the_fleets_figures_once(store: Store, paris_config: Config):
    site = paris_config.sites[0].id
    await sent_probe(store, "d" * 32, site, "email", NOW - timedelta(days=2), verdict=("email.reply", "met"))
    await sent_probe(store, "e" * 32, site, "email", NOW - timedelta(days=3), claimed_by="instance-b",
                     verdict=("email.reply", "missed"))
    snapshot = await derived.compute_snapshot(store, paris_config, NOW)
    registry = CollectorRegistry()
    metrics = Metrics(registry, paris_config, source_ids=tuple(paris_config.call_logs))
    metrics.apply_snapshot(snapshot)
    labels = {"site": site, "commitment": "email.reply", "window": "30d"}
    assert registry.get_sample_value("qualimon_commitment_compliance_ratio", labels) == 0.5
    assert registry.get_sample_value("qualimon_commitment_samples", {**labels, "verdict": "missed"}) == 1
    assert registry.get_sample_value("qualimon_last_probe_sent_timestamp_seconds", {"site": site}) == (
        NOW - timedelta(days=2)).timestamp()
