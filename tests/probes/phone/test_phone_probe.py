"""The phone probe through the runner, sipp playing the museum: verdicts, void on our own failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.store.store import Store
from probes.phone import KIND
from tests.conftest import config_from
from tests.support.integration import free_port, need_binary
from tests.support.probing import run_one
from tests.support.sipp import answer, hang_up_by_us, pause, recv, recv_invite, respond, ring, run_sipp, uas

pytestmark = pytest.mark.integration

CONFIG = """
calendars:
  always: {{holidays: null, opening_hours: {{daily: ["00:00-24:00"]}}}}
commitments:
  phone.answer: {{channel: phone, within: {{rings: 5}}, during: open}}
phone_lines:
  mystery:
    sip: {{proxy: "{proxy}", from: "sip:+33199001000@example.net", max_ring_seconds: 30, hold_seconds: 0.2}}
sites:
  - {{id: petit-palais, name: Petit Palais, calendar: always, phone: {{number: "+33199001234", per_month: 0}}}}
"""


@pytest.fixture(autouse=True)
def _sipp_installed() -> None:
    need_binary("sipp", "sip-tester")



async def call_through_runner(store: Store, proxy: str) -> str:
    return await run_one(store, config_from(CONFIG.format(proxy=proxy)), {"phone": KIND}, "petit-palais", "phone")


async def test_a_call_answered_after_two_rings_meets_the_commitment(tmp_path: Path, sqlite_store: Store) -> None:
    scenario = uas(recv_invite(), ring(), pause(2000), answer(), hang_up_by_us())
    async with run_sipp(scenario, tmp_path) as server:
        probe_id = await call_through_runner(sqlite_store, server.proxy)
    verdict = (await sqlite_store.verdicts_for(probe_id))["phone.answer"]
    assert verdict.verdict == "met" and verdict.delay_seconds == pytest.approx(2.0, abs=0.1)
    probe = await sqlite_store.probe(probe_id)
    assert probe.status == "closed" and probe.details["rings"] == 1
    names = [e.name for e in await sqlite_store.evidence_for(probe_id)]
    assert names == ["sip-transcript.txt", "call.json"]


async def test_a_busy_line_is_missed_with_reason_busy(tmp_path: Path, sqlite_store: Store) -> None:
    scenario = uas(recv_invite(), respond(486, "Busy Here"), recv("ACK"))
    async with run_sipp(scenario, tmp_path) as server:
        probe_id = await call_through_runner(sqlite_store, server.proxy)
    verdict = (await sqlite_store.verdicts_for(probe_id))["phone.answer"]
    assert (verdict.verdict, verdict.reason) == ("missed", "busy")


async def test_a_wrong_published_number_is_missed_and_alerts_the_operator(tmp_path: Path,
                                                                           sqlite_store: Store) -> None:
    scenario = uas(recv_invite(), respond(404, "Not Found"), recv("ACK"))
    async with run_sipp(scenario, tmp_path) as server:
        probe_id = await call_through_runner(sqlite_store, server.proxy)
    verdict = (await sqlite_store.verdicts_for(probe_id))["phone.answer"]
    assert (verdict.verdict, verdict.reason) == ("missed", "rejected")
    alerts = [e for e in await sqlite_store.events_for(probe_id) if e.type == "operator_alert"]
    assert alerts and "+33199001234 is wrong" in alerts[0].data["message"]


async def test_a_trunk_that_does_not_answer_voids_the_probe_instead_of_blaming_the_museum(
        sqlite_store: Store) -> None:
    probe_id = await call_through_runner(sqlite_store, f"sip:127.0.0.1:{free_port()};transport=tcp")
    probe = await sqlite_store.probe(probe_id)
    verdict = (await sqlite_store.verdicts_for(probe_id))["phone.answer"]
    assert probe.status == "void" and probe.void_reason.startswith("sip_failed")
    assert verdict.verdict == "void"

