"""Auditors decide, the machine proposes: POST /probes/{id}/grade and GET /grading, through events."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from monitor.clock import FakeClock
from monitor.kinds import Response
from monitor.store.store import Store
from probes.email.quality import Needs, grade
from tests.conftest import config_from
from tests.monitor.api.conftest import CONFIG, SECRETS, Api, build_app, build_service, plan, send_due

QUALITY_CONFIG = CONFIG.replace("  phone.answer:", "  email.quality: {channel: email, kind: quality, target: 0.8}\n"
                                                   "  phone.answer:")
GOOD = ("Bonjour,\n\nLe musée est ouvert du mardi au dimanche de 10 h à 18 h.\n\nCordialement,\n"
        "Claire Dubois\nChargée d'accueil\n01 99 00 12 34")
UNSIGNED = "Bonjour,\n\nNous sommes ouverts de 10 h à 18 h.\n\nCordialement,\nL'accueil"


@pytest.fixture
async def api(aiohttp_client: Any, store: Store, clock: FakeClock) -> Api:
    service = build_service(store, clock, config_from(QUALITY_CONFIG, **SECRETS))
    return Api(await aiohttp_client(build_app(service)), service)


async def answered(api: Api, text: str | None) -> str:
    """An email probe sent, and (unless `text` is None) a human reply graded by the machine."""
    service = api.service
    probe_id = await plan(service.store, service.clock.now())
    await send_due(service.runner)
    service.clock.advance(60)
    if text is not None:
        assessment = grade(text, Needs(("time", "day_range"))).data() | {"template": "horaires"}
        await service.runner.record_response(probe_id, Response("human_reply", service.clock.now(),
                                                                {"from": "info.pp@example.org"},
                                                                assessment=assessment))
    return probe_id


async def events(api: Api, probe_id: str) -> list[Any]:
    return await api.service.store.events_for(probe_id)


async def quality_verdict(api: Api, probe_id: str) -> tuple[str, str | None]:
    record = (await api.service.store.verdicts_for(probe_id))["email.quality"]
    return record.verdict, record.reason


async def test_an_unconfirmed_answer_is_listed_to_review_with_its_evidence(api: Api) -> None:
    probe_id = await answered(api, GOOD)

    page = await api.json("/api/v1/grading", "auditor")
    [item] = page["items"]
    assert item["probe"] == probe_id and item["status"] == "to_review" and page["next_cursor"] is None
    assert item["commitments"]["email.quality"] == {"verdict": "met", "reason": None, "score": 1.0,
                                                    "required": ["signed", "contact", "answers_question",
                                                                 "not_holding", "language"]}
    signed = item["criteria"]["signed"]
    assert signed["met"] and signed["source"] == "machine" and signed["span"]["text"].startswith("Claire Dubois")
    assert item["sheet"] == f"/probes/{probe_id}/grading"
    assert (await api.json("/api/v1/grading", "auditor", params={"status": "confirmed"}))["items"] == []


async def test_an_auditors_decision_changes_the_verdict_through_an_event(api: Api) -> None:
    probe_id = await answered(api, GOOD)
    assert await quality_verdict(api, probe_id) == ("met", None)

    response = await api.post(f"/api/v1/probes/{probe_id}/grade",
                              {"signed": "not_met", "reason": "the signature is a colleague on leave"})

    body = await response.json()
    assert response.status == 200, body
    assert body["criteria"]["signed"]["source"] == "auditor" and body["decided_by"] == ["audit-2026"]
    assert await quality_verdict(api, probe_id) == ("missed", "quality not met: signed")
    [event] = [e for e in await events(api, probe_id) if e.type == "grade"]
    assert event.data == {"response_seq": body["response_seq"], "by": "audit-2026",
                          "reason": "the signature is a colleague on leave", "decisions": {"signed": "not_met"}}
    assert (await api.json("/api/v1/audit/verify", "auditor"))["ok"]


async def test_confirming_every_criterion_moves_the_answer_out_of_review(api: Api) -> None:
    probe_id = await answered(api, UNSIGNED)
    assert await quality_verdict(api, probe_id) == ("missed", "quality not met: signed, contact")
    decisions = {name: "met" if name != "signed" else "not_met" for name in
                 ("greeting", "closing", "signed", "answers_question", "not_holding", "language")}

    response = await api.post(f"/api/v1/probes/{probe_id}/grade", {**decisions, "contact": "met",
                                                                    "reason": "phone number in the footer"})

    assert response.status == 200
    assert await quality_verdict(api, probe_id) == ("missed", "quality not met: signed")
    confirmed = await api.json("/api/v1/grading", "auditor", params={"status": "confirmed"})
    assert [i["probe"] for i in confirmed["items"]] == [probe_id]
    assert (await api.json("/api/v1/grading", "auditor"))["items"] == []


async def test_an_uncertain_required_criterion_puts_the_verdict_in_review_until_an_auditor_decides(api: Api) -> None:
    probe_id = await answered(api, "Bonjour,\n\nOui.\n\nCordialement,\nKsenia Vasquez\nAccueil\n01 99 00 12 34\n"
                                   "Le musée est ouvert de 10 h à 18 h.")
    assert await quality_verdict(api, probe_id) == ("review", "to review: signed")
    [item] = (await api.json("/api/v1/grading", "auditor"))["items"]
    assert item["uncertain"] == ["signed"]

    assert (await api.post(f"/api/v1/probes/{probe_id}/grade", {"signed": "met"})).status == 200

    assert await quality_verdict(api, probe_id) == ("met", None)


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"politeness": "met", "reason": "x"}, 400, "unknown criterion 'politeness'"),
    ({"signed": "yes"}, 400, "signed: must be met or not_met"),
    ({"reason": "only a reason"}, 400, "name at least one criterion"),
    (["signed"], 400, "JSON object"),
    ({"signed": "met", "reason": ""}, 400, "reason"),
    ({"signed": "met", "response_seq": 999999}, 400, "no counted response"),
], ids=["unknown-criterion", "bad-value", "no-criterion", "not-an-object", "empty-reason", "unknown-response"])
async def test_a_bad_grade_is_refused_and_nothing_is_recorded(api: Api, body: Any, status: int, says: str) -> None:
    probe_id = await answered(api, GOOD)
    before = await events(api, probe_id)

    response = await api.post(f"/api/v1/probes/{probe_id}/grade", body)

    answer = await response.json()
    assert response.status == status and says in answer["detail"], answer
    assert await events(api, probe_id) == before


async def test_grading_a_probe_without_an_answer_is_a_conflict_and_records_nothing(api: Api) -> None:
    probe_id = await answered(api, None)
    before = await events(api, probe_id)

    response = await api.post(f"/api/v1/probes/{probe_id}/grade", {"signed": "met"})

    assert response.status == 409 and "no answer to grade" in (await response.json())["detail"]
    assert await events(api, probe_id) == before


async def test_a_second_decision_needs_a_reason(api: Api) -> None:
    probe_id = await answered(api, GOOD)
    assert (await api.post(f"/api/v1/probes/{probe_id}/grade", {"contact": "met"})).status == 200
    before = await events(api, probe_id)

    refused = await api.post(f"/api/v1/probes/{probe_id}/grade", {"contact": "not_met"})

    assert refused.status == 400 and "must give a reason" in (await refused.json())["detail"]
    assert await events(api, probe_id) == before
    again = await api.post(f"/api/v1/probes/{probe_id}/grade", {"contact": "not_met", "reason": "wrong number"})
    assert again.status == 200
    assert await quality_verdict(api, probe_id) == ("missed", "quality not met: contact")


async def test_only_auditors_grade(api: Api) -> None:
    probe_id = await answered(api, GOOD)
    assert (await api.post(f"/api/v1/probes/{probe_id}/grade", {"signed": "met"}, role="viewer")).status == 403
    assert (await api.get("/api/v1/grading", "viewer")).status == 403
    assert (await api.post("/api/v1/probes/NOPE/grade", {"signed": "met"})).status == 404


async def test_the_grading_list_pages_with_a_cursor(api: Api) -> None:
    ids = [await answered(api, GOOD) for _ in range(3)]
    assert [i["probe"] for i in await api.walk("/api/v1/grading", status="all", limit=2)] == ids


async def test_the_csv_shows_each_criterion_and_who_decided(api: Api) -> None:
    probe_id = await answered(api, UNSIGNED)
    await api.post(f"/api/v1/probes/{probe_id}/grade", {"contact": "met", "reason": "number in the footer"})

    response = await api.get("/api/v1/probes", "auditor", params={"format": "csv"})
    text = (await response.read()).decode("utf-8").lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))

    [row] = [r for r in rows if r["probe_id"] == probe_id and r["commitment"] == "email.quality"]
    assert row["verdict"] == "missed" and row["decided_by"] == "audit-2026"
    assert "signed=not_met;" in row["criteria"] and "contact=met(audit-2026)" in row["criteria"]
    assert row["quality_score"] == repr(round(6 / 7, 4))  # all but signed, contact now by the auditor
    assert all(r["criteria"] == "" for r in rows if r["commitment"] != "email.quality")
