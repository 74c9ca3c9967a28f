"""Tamper evidence over HTTP: chain verification, and regrades appended as events by the token's owner."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from monitor.store.schema import Event


async def test_an_intact_chain_verifies(api, history):
    report = await api.json("/api/v1/audit/verify", "auditor")
    assert report["ok"] is True and report["broken"] is None
    assert report["events"] == report["last_seq"] > 10 and len(report["last_hash"]) == 64


async def test_an_edited_event_breaks_the_chain_at_that_event(api, history, store):
    async with store.engine.begin() as conn:
        await conn.execute(update(Event).where(Event.seq == 4).values(data='{"by":"someone else"}'))
    report = await api.json("/api/v1/audit/verify", "auditor")
    assert report["ok"] is False
    assert report["broken"] == {"seq": 4, "problem": "its content does not match its hash: the row was edited"}


async def test_a_deleted_event_breaks_the_chain(api, history, store):
    async with store.engine.begin() as conn:
        await conn.execute(delete(Event).where(Event.seq == 5))
    report = await api.json("/api/v1/audit/verify", "auditor")
    assert report["ok"] is False and report["broken"]["seq"] == 5


async def response_seq(api, probe_id: str) -> int:
    events = (await api.json(f"/api/v1/probes/{probe_id}"))["events"]
    return next(e["seq"] for e in events if e["type"] == "response")


async def test_an_override_is_an_appended_event_signed_with_the_token_name(api, history):
    before = (await api.json("/api/v1/audit/verify"))["last_seq"]
    response = await api.post(f"/api/v1/probes/{history['email']}/regrade",
                              {"action": "override", "commitment": "email.ack", "verdict": "void",
                               "reason": "fermé pour travaux"})
    probe = await response.json()
    assert response.status == 200
    assert probe["verdicts"]["email.ack"]["verdict"] == "void"
    assert probe["verdicts"]["email.ack"]["reason"] == "regraded by audit-2026: fermé pour travaux"
    regrade = next(e for e in probe["events"] if e["type"] == "regrade")
    assert regrade["data"] == {"action": "override", "by": "audit-2026", "commitment": "email.ack",
                               "reason": "fermé pour travaux", "verdict": "void"}
    assert regrade["seq"] > before
    assert (await api.json("/api/v1/audit/verify"))["ok"] is True


async def test_discounting_the_answer_makes_the_verdict_follow_and_clear_undoes_an_override(api, history):
    url = f"/api/v1/probes/{history['email']}/regrade"
    seq = await response_seq(api, history["email"])
    probe = await (await api.post(url, {"action": "discount", "response_seq": seq,
                                        "reason": "an out-of-office is not an acknowledgement"})).json()
    assert probe["verdicts"]["email.ack"]["verdict"] == "pending"
    await api.post(url, {"action": "override", "verdict": "met", "reason": "acknowledged by phone"}, role="admin")
    assert (await api.json(f"/api/v1/probes/{history['email']}"))["verdicts"]["email.ack"]["verdict"] == "met"
    probe = await (await api.post(url, {"action": "clear", "reason": "the phone call is not in the log"})).json()
    assert probe["verdicts"]["email.ack"]["verdict"] == "pending"
    assert [e["data"]["by"] for e in probe["events"] if e["type"] == "regrade"] == ["audit-2026", "ops",
                                                                                   "audit-2026"]


@pytest.mark.parametrize("body,named", [
    ({"action": "override", "reason": "x"}, "verdict"),
    ({"action": "override", "verdict": "maybe", "reason": "x"}, "verdict"),
    ({"action": "discount", "reason": "x"}, "response_seq"),
    ({"action": "discount", "response_seq": "3", "reason": "x"}, "response_seq"),
    ({"action": "discount", "response_seq": True, "reason": "x"}, "response_seq"),
    ({"action": "discount", "response_seq": 1, "reason": "x"}, "response_seq"),  # seq 1 is the planned event
    ({"action": "erase", "reason": "x"}, "action"),
    ({"action": "clear"}, "reason"),
    ({"action": "clear", "reason": "   "}, "reason"),
    ({"action": "clear", "reason": "x" * 121}, "reason"),
    ({"action": "clear", "reason": "nul\u0000byte"}, "reason"),
    ({"action": "clear", "reason": "x", "by": "somebody-else"}, "the token's name"),
    ({"action": "clear", "reason": "x", "verdict": "met"}, "does not take"),
    ({"action": "clear", "reason": "x", "commitment": "Phone Answer"}, "commitment"),
    ({"action": "override", "verdict": "met", "reason": "x", "commitment": "phone.answer"}, "phone.answer"),
    (["override"], "JSON object"),
    ("not json at all", "JSON object"),
])
async def test_an_invalid_regrade_is_a_400_that_says_what_is_wrong(api, history, body, named):
    url = f"/api/v1/probes/{history['email']}/regrade"
    if body == "not json at all":
        response = await api.client.post(url, data=body, headers=api.headers("auditor"))
    else:
        response = await api.post(url, body)
    result = await response.json()
    assert response.status == 400, result
    assert named in result["detail"]
    events = (await api.json(f"/api/v1/probes/{history['email']}"))["events"]
    assert "regrade" not in [e["type"] for e in events]


async def test_regrading_an_unknown_probe_is_a_404(api):
    response = await api.post("/api/v1/probes/01J0000000000000000000000X/regrade",
                              {"action": "clear", "reason": "x"})
    assert response.status == 404
