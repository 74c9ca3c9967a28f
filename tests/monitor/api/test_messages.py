"""Mailbox messages through the API: held ones put verdicts in review until an auditor attaches or dismisses them."""

from __future__ import annotations

from tests.monitor.api.conftest import held_message

BASE = "/api/v1/mailboxes/mystery/messages"


async def verdicts(api, probe_id: str) -> dict[str, str]:
    detail = await api.json(f"/api/v1/probes/{probe_id}", "auditor")
    return {cid: v["verdict"] for cid, v in detail["verdicts"].items()}


async def test_a_held_reply_puts_the_verdicts_it_could_change_in_review(api, history):
    await held_message(api.service, history["email"])
    # email.ack was met by the auto-reply; the held human reply could only change email.reply
    assert await verdicts(api, history["email"]) == {"email.ack": "met", "email.reply": "review"}
    rows = await api.json("/api/v1/compliance", "viewer", {"commitment": "email.reply", "site": "petit-palais"})
    assert (rows[0]["review"], rows[0]["pending"], rows[0]["n"]) == (1, 0, 0)
    listed = await api.json("/api/v1/probes", "auditor", {"verdict": "review"})
    assert [item["id"] for item in listed["items"]] == [history["email"]]


async def test_auditors_list_held_messages_with_their_reason_and_auth(api, history):
    message = await held_message(api.service, history["email"])
    page = await api.json(BASE, "auditor", {"bucket": "held", "decided": "false"})
    [item] = page["items"]
    assert item["id"] == message and item["probe"] == history["email"] and item["method"] == "correspondent"
    assert item["auth"] == {"result": "none", "method": None, "domain": None}
    assert item["summary"]["subject"].startswith("Re: visite") and item["decision"] is None
    assert item["raw_url"] == f"{BASE}/{message}/raw"
    raw = await api.get(item["raw_url"], "auditor")
    assert raw.status == 200 and raw.headers["Content-Type"] == "application/octet-stream"


async def test_attaching_a_held_reply_counts_it_with_who_and_why_in_the_log(api, history):
    message = await held_message(api.service, history["email"])
    response = await api.post(f"{BASE}/{message}/attach", {"probe": history["email"], "reason": "called the desk"})
    body = await response.json()
    assert response.status == 200, body
    assert body["decision"]["action"] == "attached" and body["decision"]["by"] == "audit-2026"
    assert await verdicts(api, history["email"]) == {"email.ack": "met", "email.reply": "met"}
    events = (await api.json(f"/api/v1/probes/{history['email']}", "auditor"))["events"]
    [attached] = [e["data"] for e in events if e["type"] == "attached"]
    assert (attached["by"], attached["reason"], attached["message"]) == ("audit-2026", "called the desk", message)
    assert (await api.json("/api/v1/audit/verify", "auditor"))["ok"] is True


async def test_dismissing_a_held_reply_gives_the_verdict_back_to_the_clock(api, history):
    message = await held_message(api.service, history["email"])
    response = await api.post(f"{BASE}/{message}/dismiss", {"reason": "forged: the desk never wrote it"})
    assert response.status == 200
    assert await verdicts(api, history["email"]) == {"email.ack": "met", "email.reply": "pending"}
    again = await api.post(f"{BASE}/{message}/attach", {"probe": history["email"], "reason": "changed my mind"})
    assert again.status == 400 and "already dismissed" in (await again.json())["detail"]


async def test_an_unrelated_message_can_be_attached_to_the_probe_it_answers(api, history):
    message = await held_message(api.service, history["email"], bucket="unrelated")
    assert await verdicts(api, history["email"]) == {"email.ack": "met", "email.reply": "pending"}
    response = await api.post(f"{BASE}/{message}/attach", {"probe": history["email"], "reason": "answer by phone"})
    assert response.status == 200
    assert await verdicts(api, history["email"]) == {"email.ack": "met", "email.reply": "met"}
    evidence = await api.json(f"/api/v1/probes/{history['email']}/evidence", "auditor")
    assert any(e["name"] == f"attached-{message}.eml" for e in evidence)


async def test_bad_requests_get_a_clear_4xx(api, history):
    message = await held_message(api.service, history["email"])
    assert (await api.get("/api/v1/mailboxes/nobody/messages", "auditor")).status == 404
    assert (await api.get(f"{BASE}?bucket=lost", "auditor")).status == 400
    assert (await api.post(f"{BASE}/999999/dismiss", {"reason": "x"})).status == 404
    assert (await api.post(f"{BASE}/{message}/attach", {"reason": "no probe"})).status == 400
    assert (await api.post(f"{BASE}/{message}/attach", {"probe": "0" * 26, "reason": "x"})).status == 404
    assert (await api.post(f"{BASE}/{message}/dismiss", {"reason": "x", "by": "someone else"})).status == 400
    assert (await api.post(f"{BASE}/{message}/dismiss", ["not", "an", "object"])).status == 400
    assert (await api.post(f"{BASE}/{message}/attach", {"probe": history["call"], "reason": "x"})).status == 400


async def test_review_shows_in_the_csv_and_the_status_page_counts_what_waits(api, history):
    import csv
    import io

    await held_message(api.service, history["email"])
    await held_message(api.service, history["email"], bucket="quarantined")
    response = await api.get("/api/v1/probes?format=csv", "auditor")
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode("utf-8-sig"))))
    assert {(r["commitment"], r["verdict"]) for r in rows if r["probe_id"] == history["email"]} == {
        ("email.ack", "met"), ("email.reply", "review")}
    page = await (await api.client.get("/")).text()
    section = page.split('id="mailboxes"')[1]
    assert '<td class="num held bad-text">1</td>' in section
    assert '<td class="num quarantined bad-text">1</td>' in section
