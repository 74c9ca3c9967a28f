"""Probe history over HTTP: pages, filters, detail, evidence, and the errors around them."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from monitor.api.params import encode_cursor
from monitor.history import iter_documents as export_documents
from monitor.kinds import Response
from monitor.store.records import NewProbe
from tests.monitor.api.conftest import HOSTILE_HTML, Api, plan, send_due

T0 = datetime(2026, 6, 2, 8, 30, tzinfo=timezone.utc)


async def insert(store, *planned: datetime, site: str = "petit-palais") -> list[NewProbe]:
    probes = [NewProbe(site=site, channel="email", planned_at=at, purpose="standard") for at in planned]
    async with store.write() as tx:
        await tx.insert_probes(probes, T0)
    return probes


def key(probe: NewProbe | dict) -> tuple[str, str]:
    if isinstance(probe, dict):
        return probe["planned_at"], probe["id"]
    return probe.planned_at.isoformat().replace("+00:00", "Z"), probe.id


# ------------------------------------------------------------------ pagination


async def test_a_walk_returns_every_probe_once_in_planned_order(api, store):
    probes = await insert(store, *(T0 + timedelta(minutes=7 * i) for i in range(23)))
    probes += await insert(store, *(T0 + timedelta(minutes=14) for _ in range(4)))  # ties broken by id
    items = await api.walk(limit=5)
    assert [i["id"] for i in items] == [p.id for p in sorted(probes, key=key)]


async def test_the_last_page_has_no_next_cursor(api, store):
    await insert(store, *(T0 + timedelta(minutes=i) for i in range(4)))
    page = await api.json("/api/v1/probes", params={"limit": 4})
    assert len(page["items"]) == 4 and page["next_cursor"] is None
    page = await api.json("/api/v1/probes", params={"limit": 3})
    assert page["next_cursor"] is not None


async def test_a_walk_neither_skips_nor_repeats_while_probes_are_written_between_pages(api, store, clock):
    originals = await insert(store, *(T0 + timedelta(minutes=10 * i) for i in range(20)))
    seen: list[dict] = []
    added: list[tuple[NewProbe, tuple[str, str]]] = []
    cursor = None
    while True:
        page = await api.json("/api/v1/probes", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        reached = key(page["items"][-1])
        # Behind the position, at exactly its instant, and ahead of it; and some of the walked ones get sent.
        last = datetime.fromisoformat(reached[0])
        for new in await insert(store, last - timedelta(minutes=25), last, last + timedelta(minutes=5)):
            added.append((new, reached))
        await send_due(api.service.runner)
        clock.advance(60)
    ids = [i["id"] for i in seen]
    assert len(ids) == len(set(ids)), "a probe was served twice"
    assert {p.id for p in originals} <= set(ids), "an original probe was skipped"
    expected_new = {new.id for new, reached in added if key(new) > reached}
    assert {new.id for new, _ in added} & set(ids) == expected_new
    assert [key(i) for i in seen] == sorted(key(i) for i in seen)


async def test_filters_keep_their_cursor_across_pages(api, store):
    await insert(store, *(T0 + timedelta(minutes=i) for i in range(7)), site="maison-victor-hugo")
    await insert(store, *(T0 + timedelta(minutes=i) for i in range(7)))
    items = await api.walk(site="maison-victor-hugo", limit=2)
    assert len(items) == 7 and {i["site"] for i in items} == {"maison-victor-hugo"}


async def test_a_page_holds_the_export_documents(api, store, history):
    exported = [d async for d in export_documents(store)]
    assert (await api.json("/api/v1/probes"))["items"] == exported


async def test_limit_defaults_to_100(api, store):
    await insert(store, *(T0 + timedelta(seconds=i) for i in range(101)))
    assert len((await api.json("/api/v1/probes"))["items"]) == 100


# ------------------------------------------------------------------ filters


async def test_the_filters_select_by_site_channel_commitment_and_verdict(api, history):
    def ids(body: dict) -> set[str]:
        return {i["id"] for i in body["items"]}

    probes = "/api/v1/probes"
    assert ids(await api.json(probes, params={"site": "maison-victor-hugo"})) == {history["planned"]}
    assert ids(await api.json(probes, params={"channel": "phone"})) == {history["call"]}
    assert ids(await api.json(probes, params={"commitment": "email.ack"})) == {history["email"]}
    assert ids(await api.json(probes, params={"verdict": "met"})) == {history["email"], history["call"]}
    assert ids(await api.json(probes, params={"commitment": "email.reply", "verdict": "pending"})) == {
        history["email"]}
    assert ids(await api.json(probes, params={"commitment": "email.reply", "verdict": "met"})) == set()
    assert ids(await api.json(probes, params={"site": "no-such-site"})) == set()


async def test_a_date_to_includes_that_whole_local_day_and_an_instant_to_excludes_itself(api, history, clock):
    probes = "/api/v1/probes"
    # The planned probe is at 2026-06-05 08:30:30Z, i.e. 10:30 in Paris on 5 June.
    june_5 = await api.json(probes, params={"from": "2026-06-05", "to": "2026-06-05"})
    assert [i["id"] for i in june_5["items"]] == [history["planned"]]
    before = await api.json(probes, params={"to": "2026-06-05T08:30:30Z"})
    assert history["planned"] not in {i["id"] for i in before["items"]}
    since = await api.json(probes, params={"from": "2026-06-05T10:30:30+02:00"})
    assert [i["id"] for i in since["items"]] == [history["planned"]]
    # Paris midnight of 5 June is 22:00Z on the 4th: a probe at 23:00Z on the 4th is on the 5th locally.
    late = await plan(api.service.store, datetime(2026, 6, 4, 23, 0, tzinfo=timezone.utc))
    assert late in {i["id"] for i in (await api.json(probes, params={"from": "2026-06-05"}))["items"]}


@pytest.mark.parametrize("params,named", [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"), ({"limit": "-1"}, "limit"),
    ({"channel": "fax"}, "channel"), ({"verdict": "maybe"}, "verdict"), ({"site": "<script>x</script>"}, "site"),
    ({"commitment": "Email Reply"}, "commitment"), ({"from": "2026-13-01"}, "from"), ({"from": "2026-02-30"}, "from"),
    ({"from": "2026-06-02T10:00:00"}, "from"), ({"to": "yesterday"}, "to"),
    ({"from": "2026-06-03", "to": "2026-06-02"}, "to"), ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
    ({"cursor": "!!!"}, "cursor"), ({"sites": "petit-palais"}, "unknown parameter"), ({"format": "xml"}, "format"),
    ([("site", "petit-palais"), ("site", "maison-victor-hugo")], "site"),
])
async def test_an_invalid_parameter_is_a_400_naming_it_without_echoing_the_value(api, params, named):
    response = await api.get("/api/v1/probes", params=params)
    body = await response.json()
    assert response.status == 400 and body["error"] == "bad_request"
    assert body["detail"].startswith(named) or f" {named}" in body["detail"]
    values = params.values() if isinstance(params, dict) else [v for _, v in params]
    assert all(value not in body["detail"] for value in values if len(value) > 4)


async def test_a_cursor_from_another_probe_list_is_still_a_valid_position(api, store):
    probes = await insert(store, *(T0 + timedelta(minutes=i) for i in range(3)))
    cursor = encode_cursor((probes[0].planned_at, probes[0].id))
    page = await api.json("/api/v1/probes", params={"cursor": cursor})
    assert [i["id"] for i in page["items"]] == [p.id for p in probes[1:]]


# ------------------------------------------------------------------ one probe


async def test_a_probe_shows_its_timeline_verdicts_and_evidence(api, history):
    probe = await api.json(f"/api/v1/probes/{history['email']}")
    assert [e["type"] for e in probe["events"]][:4] == ["planned", "claimed", "send_started", "sent"]
    assert probe["verdicts"]["email.ack"] == {"verdict": "met", "deadline": "2026-06-02T08:31:00Z",
                                              "delay_seconds": 30.0, "business_delay_seconds": 30.0,
                                              "late": False, "reason": None}
    assert probe["verdicts"]["email.reply"]["verdict"] == "pending"
    assert [e["name"] for e in probe["evidence"]] == ["sent.eml", 'reply "page".html']
    assert probe["evidence"][0]["url"] == f"/api/v1/probes/{history['email']}/evidence/{probe['evidence'][0]['id']}"


async def test_the_export_shape_is_the_detail_without_evidence(api, store, history):
    detail = await api.json(f"/api/v1/probes/{history['email']}")
    exported = [d async for d in export_documents(store) if d["id"] == history["email"]]
    assert exported == [{k: v for k, v in detail.items() if k != "evidence"}]


@pytest.mark.parametrize("path", ["/api/v1/probes/01J0000000000000000000000X", "/api/v1/probes/%3Cscript%3E",
                                  "/api/v1/probes/01J0000000000000000000000X/evidence",
                                  "/api/v1/probes/01J0000000000000000000000X/evidence/1",
                                  "/api/v1/probes/a%00b"])
async def test_an_unknown_probe_is_a_json_404(api, path):
    response = await api.get(path)
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"
    assert "script" not in (await response.text())


async def test_evidence_of_another_probe_is_not_served_under_this_one(api, history):
    evidence = (await api.json(f"/api/v1/probes/{history['email']}/evidence"))[0]["id"]
    response = await api.get(f"/api/v1/probes/{history['call']}/evidence/{evidence}")
    assert response.status == 404


async def test_a_hostile_html_evidence_is_a_download_never_a_page(api, history):
    listed = await api.json(f"/api/v1/probes/{history['email']}/evidence")
    html = next(e for e in listed if e["content_type"] == "text/html")
    response = await api.get(html["url"])
    assert response.status == 200 and await response.read() == HOSTILE_HTML
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="reply__page_.html"')
    assert response.headers["X-Evidence-SHA256"] == hashlib.sha256(HOSTILE_HTML).hexdigest() == html["sha256"]
    assert "sandbox" in response.headers["Content-Security-Policy"]


async def test_a_text_transcript_stays_readable_text(api, history):
    [transcript] = await api.json(f"/api/v1/probes/{history['call']}/evidence")
    response = await api.get(transcript["url"])
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await response.text()).startswith("INVITE sip:")


async def test_a_non_numeric_evidence_id_is_a_400(api, history):
    response = await api.get(f"/api/v1/probes/{history['email']}/evidence/first")
    assert response.status == 400 and "evidence_id" in (await response.json())["detail"]


# ------------------------------------------------------------------ protocol edges


async def test_an_unknown_api_path_is_a_json_404(api):
    response = await api.get("/api/v1/nothing-here")
    assert response.status == 404 and (await response.json())["error"] == "not_found"


async def test_a_wrong_method_is_a_json_405_with_allow(api):
    response = await api.client.delete("/api/v1/probes", headers=Api.headers("admin"))
    assert response.status == 405 and "GET" in response.headers["Allow"]
    assert (await response.json())["error"] == "method_not_allowed"


async def test_every_api_answer_forbids_sniffing(api, history):
    for path in ["/api/v1/sites", "/api/v1/probes?limit=zero", "/api/v1/nothing"]:
        assert (await api.get(path)).headers["X-Content-Type-Options"] == "nosniff"


async def test_a_late_answer_keeps_missed_and_shows_its_delay(api, history, clock):
    clock.advance(400)
    await api.service.runner.sweep()
    await api.service.runner.record_response(history["email"], Response("human_reply", clock.now()))
    reply = (await api.json(f"/api/v1/probes/{history['email']}"))["verdicts"]["email.reply"]
    assert reply == {"verdict": "missed", "deadline": "2026-06-02T08:35:00Z", "delay_seconds": 430.0,
                     "business_delay_seconds": 430.0, "late": True, "reason": None}
