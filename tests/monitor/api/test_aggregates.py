"""What viewers see: sites, commitments, compliance and calls, the same numbers as every other reader."""

from __future__ import annotations

from datetime import datetime, timezone

from monitor.status import compliance_rows
from tests.monitor.api.conftest import OUR_MAILBOX


async def test_compliance_rows_are_those_of_the_shared_computation(api, history, service):
    start, end = datetime(2026, 6, 1, 22, tzinfo=timezone.utc), datetime(2026, 6, 2, 22, tzinfo=timezone.utc)
    expected = [r.public() for r in await compliance_rows(service.store, service.config, start, end)]
    assert await api.json("/api/v1/compliance", "viewer", {"from": "2026-06-02", "to": "2026-06-02"}) == expected
    assert await api.json("/api/v1/compliance", "viewer", {"from": "2026-06-01T22:00:00Z",
                                                           "to": "2026-06-02T22:00:00Z"}) == expected


async def test_compliance_counts_met_pending_and_leaves_void_out_of_the_ratio(api, history):
    rows = await api.json("/api/v1/compliance", "viewer", {"site": "petit-palais"})
    by_commitment = {r["commitment"]: r for r in rows}
    assert set(by_commitment) == {"email.ack", "email.reply", "phone.answer"}
    assert {k: by_commitment["email.ack"][k] for k in ("n", "met", "missed", "pending", "void", "ratio")} == {
        "n": 1, "met": 1, "missed": 0, "pending": 0, "void": 0, "ratio": 1.0}
    assert by_commitment["email.reply"]["pending"] == 1 and by_commitment["email.reply"]["ratio"] is None
    await api.post(f"/api/v1/probes/{history['email']}/regrade",
                   {"action": "override", "verdict": "void", "reason": "our relay was down"})
    ack = (await api.json("/api/v1/compliance", "viewer", {"commitment": "email.ack", "site": "petit-palais"}))[0]
    assert (ack["n"], ack["void"], ack["ratio"], ack["status"]) == (0, 1, None, "insufficient_data")


async def test_compliance_of_a_period_without_probes_has_zero_samples(api, history):
    rows = await api.json("/api/v1/compliance", "viewer", {"from": "2026-07-01", "to": "2026-09-30"})
    assert len(rows) == 5 and all(r["n"] == 0 and r["status"] == "insufficient_data" for r in rows)


async def test_compliance_of_a_site_not_in_the_config_is_empty(api, history):
    assert await api.json("/api/v1/compliance", "viewer", {"site": "louvre"}) == []


async def test_compliance_refuses_a_period_that_ends_before_it_starts(api):
    body = await api.json("/api/v1/compliance", "viewer", {"from": "2026-06-02", "to": "2026-06-01"}, status=400)
    assert body["detail"].startswith("to:")


async def test_calls_list_the_calls_placed_with_their_verdicts(api, history, service, clock):
    from tests.monitor.api.conftest import plan

    await plan(service.store, clock.now(), channel="phone")  # still planned: not a call yet
    page = await api.json("/api/v1/calls", "viewer")
    assert page == {"items": [{
        "id": history["call"], "source": "mystery", "site": "petit-palais", "purpose": "open", "status": "closed",
        "started_at": "2026-06-02T08:30:00Z", "answered_at": "2026-06-02T08:30:12Z", "outcome": "answered",
        "ring_seconds": 12.0, "rings": 3, "reason": None,
        "verdicts": {"phone.answer": {"verdict": "met", "deadline": "2026-06-02T08:30:25Z", "delay_seconds": 12.0,
                                      "business_delay_seconds": 12.0, "late": False, "reason": None}}}],
        "next_cursor": None}


async def test_calls_filter_by_verdict(api, history):
    assert (await api.json("/api/v1/calls", "viewer", {"verdict": "missed"}))["items"] == []
    assert len((await api.json("/api/v1/calls", "viewer", {"commitment": "phone.answer"}))["items"]) == 1


async def test_viewers_see_sites_without_their_contacts_and_auditors_with_them(api):
    viewer = await api.json("/api/v1/sites", "viewer")
    auditor = await api.json("/api/v1/sites", "auditor")
    assert viewer[0] == {"id": "petit-palais", "name": "Petit Palais", "calendar": "always", "office_calendar": None,
                         "email": {"per_month": 0, "max_per_month": None},
                         "phone": {"per_month": 0, "max_per_month": None, "out_of_hours_per_month": 0},
                         "commitments": ["email.ack", "email.reply", "phone.answer"]}
    assert auditor[0]["email"]["address"] == "info.pp@example.org"
    assert auditor[0]["phone"]["number"] == "+33199001234"
    assert viewer[1]["phone"] is None and viewer[1]["commitments"] == ["email.ack", "email.reply"]


async def test_commitments_show_thresholds_and_targets(api):
    commitments = {c["id"]: c for c in await api.json("/api/v1/commitments", "viewer")}
    assert commitments["phone.answer"] == {
        "id": "phone.answer", "channel": "phone", "kind": "delay", "within": {"unit": "rings", "amount": 5.0},
        "criteria": None, "threshold_seconds": 25.0, "counts": ["answered"], "during": "open",
        "ring_cadence_seconds": 5.0, "target": 0.85}
    assert commitments["email.ack"]["target"] == 0.9


async def test_no_role_sees_our_own_mailbox_or_line_in_the_config_views(api):
    for role in ("viewer", "auditor", "admin"):
        for path in ("/api/v1/sites", "/api/v1/commitments"):
            text = await (await api.get(path, role)).text()
            assert OUR_MAILBOX not in text and "trunk.example.net" not in text and "mystery" not in text


async def insert_calllog_rows(store, clock, count: int) -> None:
    from datetime import timedelta

    from monitor.store.schema import Call

    rows = [{"source": "pbx", "record_key": f"k{i}", "site": "petit-palais", "dialled": "+33199001234",
             "caller_hash": None, "started_at": clock.now() + timedelta(minutes=i),
             "answered_at": clock.now() + timedelta(minutes=i, seconds=31) if i % 2 == 0 else None,
             "ended_at": clock.now() + timedelta(minutes=i, seconds=90), "ring_seconds": 31.0 if i % 2 == 0 else 40.0,
             "outcome": "answered" if i % 2 == 0 else "no_answer", "legs": 1, "opening": "open",
             "commitment": "phone.answer", "verdict": "missed",
             "delay_seconds": 31.0 if i % 2 == 0 else None, "late": i % 2 == 0,
             "reason": None if i % 2 == 0 else "no_answer", "ingested_at": clock.now()} for i in range(count)]
    async with store.write() as tx:
        await tx.conn.execute(Call.__table__.insert(), rows)


async def test_calls_from_call_logs_are_listed_with_their_verdicts_and_no_caller(api, service, clock):
    await insert_calllog_rows(service.store, clock, 3)
    page = await api.json("/api/v1/calls", "viewer", {"source": "calllog"})
    first = page["items"][0]
    assert first == {"id": first["id"], "source": "calllog", "site": "petit-palais", "purpose": "open",
                     "status": "closed", "started_at": "2026-06-02T08:30:00Z", "answered_at": "2026-06-02T08:30:31Z",
                     "outcome": "answered", "ring_seconds": 31.0, "rings": 7, "reason": None,
                     "verdicts": {"phone.answer": {"verdict": "missed", "deadline": None, "delay_seconds": 31.0,
                                                   "business_delay_seconds": None, "late": True, "reason": None}}}
    assert first["id"].startswith("pbx:") and "caller" not in str(page)
    assert [c["outcome"] for c in page["items"]] == ["answered", "no_answer", "answered"]


async def test_call_log_pages_neither_skip_nor_repeat(api, service, clock):
    await insert_calllog_rows(service.store, clock, 7)
    seen, cursor = [], None
    for _ in range(10):
        params = {"source": "calllog", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = await api.json("/api/v1/calls", "viewer", params)
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7


async def test_compliance_as_csv_carries_the_same_rows_with_needed(api):
    rows = await api.json("/api/v1/compliance", "viewer")
    for query, headers in (({"format": "csv"}, None), (None, {"Accept": "text/csv"})):
        response = await api.get("/api/v1/compliance", "viewer", params=query, headers=headers)
        text = (await response.read()).decode("utf-8")
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
        lines = text.lstrip("\ufeff").splitlines()
        assert lines[0].split(",") == ["site", "commitment", "n", "met", "missed", "pending", "void", "ratio",
                                       "ci_low", "ci_high", "target", "status", "needed"]
        assert [line.split(",")[-1] for line in lines[1:]] == [str(r["needed"]) for r in rows]
        assert all(r["needed"] == 35 for r in rows if r["n"] == 0 and r["target"] == 0.9)
