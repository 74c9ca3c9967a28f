"""The printable grading sheet: the request, the answer without the quote, each criterion's highlighted evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.clock import FakeClock
from monitor.kinds import Response
from monitor.report import build_report
from monitor.store.store import Store
from probes.email.quality import Needs, grade
from tests.conftest import config_from
from tests.monitor.api.conftest import SECRETS, TOKENS, Api, build_app, build_service, plan, send_due
from tests.monitor.api.test_grading import QUALITY_CONFIG
from tests.monitor.web.test_status_page import parse_dom

HOSTILE = ("Bonjour,\n\nNous sommes ouverts de 10 h à 18 h. <script>alert(1)</script>\n\nCordialement,\n"
           "Claire Dubois\nChargée d'accueil\n01 99 00 12 34")


async def make_api(aiohttp_client: Any, store: Store, clock: FakeClock, **http: str) -> Api:
    text = QUALITY_CONFIG
    if http:
        text = text.replace('http: {listen: "127.0.0.1:0"', 'http: {listen: "127.0.0.1:0", status_page_details: false')
    service = build_service(store, clock, config_from(text, **SECRETS))
    return Api(await aiohttp_client(build_app(service)), service)


async def answered(api: Api, text: str | None = HOSTILE) -> str:
    service = api.service
    probe_id = await plan(service.store, service.clock.now())
    await send_due(service.runner)
    service.clock.advance(60)
    if text is not None:
        assessment = grade(text, Needs(("time",))).data() | {"template": "horaires"}
        await service.runner.record_response(probe_id, Response("human_reply", service.clock.now(),
                                                                {"from": "info.pp@example.org",
                                                                 "subject": "Re: horaires"},
                                                                assessment=assessment))
    return probe_id


@pytest.fixture
async def api(aiohttp_client: Any, sqlite_store: Store, clock: FakeClock) -> Api:
    return await make_api(aiohttp_client, sqlite_store, clock)


async def test_the_sheet_shows_the_answer_with_each_criterion_highlighted(api: Api) -> None:
    probe_id = await answered(api)
    await api.service.runner.grade(probe_id, by="audit-2026", decisions={"contact": False},
                                   reason="that number rings a closed office")

    response = await api.get(f"/probes/{probe_id}/grading", role=None)
    html = await response.text()

    assert response.status == 200 and "script-src" not in response.headers["Content-Security-Policy"]
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    dom = parse_dom(html)
    marks = {m.attrs["data-criteria"] for m in dom.find_all("mark") if "data-criteria" in m.attrs}
    assert {"greeting", "closing", "answers_question"} <= {n for m in marks for n in m.split()}
    answer = dom.find("section", id="answer").text()
    assert "Claire Dubois" in answer and "Bonjour" in answer
    rows = {tr.attrs["data-criterion"]: tr.text() for tr in dom.find_all("tr") if "data-criterion" in tr.attrs}
    assert set(rows) == {"greeting", "closing", "signed", "contact", "answers_question", "not_holding", "language"}
    assert "not met by audit-2026" in rows["contact"] and "that number rings a closed office" in rows["contact"]
    assert "a phone number: 01 99 00 12 34" in rows["contact"]  # what the machine had found
    assert "missed" in dom.find("section", id="verdicts").text()


async def test_the_status_page_links_each_graded_answer_to_its_sheet(api: Api) -> None:
    probe_id = await answered(api)

    html = await (await api.get("/", role=None)).text()

    links = [a.attrs["href"] for a in parse_dom(html).find_all("a") if "sheet" in a.attrs.get("class", "")]
    assert f"/probes/{probe_id}/grading" in links


async def test_an_unsure_answer_is_listed_for_review_on_the_status_page(api: Api) -> None:
    probe_id = await answered(api, "Bonjour,\n\nOuvert de 10 h à 18 h.\n\nCordialement,\nKsenia Vasquez\nAccueil\n"
                                   "01 99 00 12 34")

    section = parse_dom(await (await api.get("/", role=None)).text()).find("section", id="review")

    assert section is not None and "(1)" in section.text() and "to review: signed" in section.text()
    assert any(a.attrs["href"] == f"/probes/{probe_id}/grading" for a in section.find_all("a"))


async def test_a_probe_without_a_graded_answer_has_no_sheet(api: Api) -> None:
    probe_id = await answered(api, None)
    assert (await api.get(f"/probes/{probe_id}/grading", role=None)).status == 404
    assert (await api.get("/probes/<script>/grading", role=None)).status == 404


async def test_off_loopback_the_sheet_needs_an_auditor_token(aiohttp_client: Any, sqlite_store: Store,
                                                              clock: FakeClock) -> None:
    api = await make_api(aiohttp_client, sqlite_store, clock, details="off")
    probe_id = await answered(api)

    assert (await api.get(f"/probes/{probe_id}/grading", role=None)).status == 403
    assert (await api.get(f"/probes/{probe_id}/grading", role="viewer")).status == 403
    response = await api.client.get(f"/probes/{probe_id}/grading",
                                    headers={"Authorization": f"Bearer {TOKENS['auditor']}"})
    assert response.status == 200 and "Claire Dubois" in await response.text()
    page = await (await api.get("/", role=None)).text()
    assert "grading sheet" not in page


async def test_the_report_shows_each_criterion_and_who_decided(api: Api, tmp_path: Path) -> None:
    probe_id = await answered(api)
    await api.service.runner.grade(probe_id, by="audit-2026", decisions={"contact": False}, reason="closed office")

    await build_report(api.service.store, api.service.config, "2026-06", "petit-palais", tmp_path,
                       api.service.clock.now())

    table = parse_dom((tmp_path / "site-petit-palais.html").read_text()).find("table", class_="quality")
    assert table is not None
    [row] = [tr for tr in table.find_all("tr") if tr.attrs.get("data-probe") == probe_id]
    cells = [td.text() for td in row.find_all("td")]
    assert "audit-2026" in cells[-1] and "✗ a" in cells and "email.quality: missed" in " ".join(cells)
