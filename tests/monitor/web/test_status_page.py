"""The status page `GET /` served by aiohttp: the figures of compliance_rows, escaped replies, safe headers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web

from monitor.config import Config, load_config
from monitor.derived import overdue
from monitor.metrics import DerivedSnapshot
from monitor.status import compliance_rows
from monitor.store.store import Store
from monitor.web import add_status_page
from monitor.web.html import fmt_ratio
from tests.conftest import PARIS
from tests.monitor.web.dataset import (
    COMPLIANT_SITE,
    HOSTILE_SENDER,
    HOSTILE_SITE,
    HOSTILE_SUBJECT,
    SLOW_SITE,
    T0,
    HistoryFile,
    build_dataset,
    many_sites,
    service_for,
    sqlite_history,
)
from tests.support.chromium import Node, parse_dom, table_rows
from tests.support.rawhttp import errors_logged, get, raw_request


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> HistoryFile:
    return sqlite_history(sqlite_template, tmp_path_factory.mktemp("status-history"), load_config(PARIS))


@pytest.fixture
async def history_store(history: HistoryFile) -> AsyncIterator[Store]:
    store = Store.open(history.url)
    yield store
    await store.close()


async def get_page(aiohttp_client, service, path: str = "/", **options) -> tuple[int, dict[str, str], str]:
    app = web.Application()
    add_status_page(app, service, **options)
    client = await aiohttp_client(app)
    response = await client.get(path)
    return response.status, dict(response.headers), await response.text()


def cells(page: Node) -> dict[tuple[str, str], Node]:
    return {(td.attrs["data-site"], td.attrs["data-commitment"]): td
            for td in page.iter("td") if "data-commitment" in td.attrs}


async def test_every_cell_shows_the_figures_of_compliance_rows(aiohttp_client, store: Store,
                                                               paris_config: Config) -> None:
    dataset = await build_dataset(store, paris_config)
    now = dataset.clock.now()
    status, _, html = await get_page(aiohttp_client, service_for(paris_config, store, now))
    expected = await compliance_rows(store, paris_config, now - timedelta(days=30), None)
    shown = cells(parse_dom(html))
    assert status == 200 and len(expected) == len(shown) == 14 * 5  # 14 museums × 5 commitments
    for row in expected:
        td = shown[(row.site, row.commitment)]
        assert (int(td.attrs["data-n"]), int(td.attrs["data-met"]), int(td.attrs["data-missed"]),
                int(td.attrs["data-pending"]), int(td.attrs["data-void"]), td.attrs["data-status"]) == (
            row.n, row.met, row.missed, row.pending, row.void, row.status)
        assert td.attrs["data-ratio"] == ("" if row.ratio is None else repr(row.ratio))
        assert f"{fmt_ratio(row.ratio)}n={row.n}" in td.text()
    assert shown[(COMPLIANT_SITE, "phone.answer")].attrs["data-status"] == "compliant"      # 12 calls, 12 met
    assert shown[(SLOW_SITE, "phone.answer")].attrs["data-status"] == "non_compliant"       # 12 calls, 12 late


async def test_each_cell_says_its_interval_on_hover_and_to_screen_readers(aiohttp_client, history_store,
                                                                          history, paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now))
    td = cells(parse_dom(html))[(COMPLIANT_SITE, "phone.answer")]
    assert td.attrs["title"] == ("petit-palais, phone.answer: compliant, 12 of 12 met (100.0%), "
                                 "interval 75.8–100.0%, target 85%, 0 pending, 0 in review, 0 void, "
                                 "10 more decided probes to conclude")
    assert td.find("span", class_="sr").text() == td.attrs["title"]
    assert "st-ok" in td.attrs["class"]


async def test_open_and_overdue_per_site_come_from_the_store(aiohttp_client, history_store, history,
                                                              paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now))
    rows = {tr.attrs["data-site"]: tr for tr in parse_dom(html).find("table", class_="matrix").iter("tr")
            if "data-site" in tr.attrs}
    late = await overdue(history_store, history.now)
    opened = await history_store.open_counts(history.now)
    for site in paris_config.sites:
        tr = rows[site.id]
        assert int(tr.find("td", class_="num open").text()) == sum(n for (s, _), (n, _) in opened.items()
                                                                   if s == site.id)
        overdue_cell = next(td for td in tr.iter("td") if "overdue" in td.attrs.get("class", ""))
        assert int(overdue_cell.text()) == sum(n for (s, _), n in late.items() if s == site.id)
    assert sum(n for n, _ in opened.values()) > 0 and sum(late.values()) > 0


async def test_open_and_overdue_come_from_the_background_snapshot_when_there_is_one(
        aiohttp_client, history_store, history, paris_config) -> None:
    snapshot = DerivedSnapshot(probes_open={(COMPLIANT_SITE, "email"): 7, (COMPLIANT_SITE, "phone"): 1},
                               probes_overdue={(COMPLIANT_SITE, "email.reply"): 3})
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now, snapshot))
    tr = parse_dom(html).find("tr", data_site=COMPLIANT_SITE)
    assert [td.text() for td in tr.iter("td")][-2:] == ["8", "3"]


async def test_last_results_show_the_reply_subject_and_sender_as_text(aiohttp_client, history_store, history,
                                                                      paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now))
    assert "<script>document.title" not in html and "<img src=x" not in html
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in html
    page = parse_dom(html)
    rows = [r for r in table_rows(page.find("table", class_="recent")) if r["site"] == HOSTILE_SITE
            and r["channel"] == "email"]
    assert {(r["commitment"], r["verdict"], r["answer"], r["reply subject"], r["sender"]) for r in rows} == {
        ("email.ack", "met", "auto_reply", HOSTILE_SUBJECT, HOSTILE_SENDER),
        ("email.reply", "missed: no_answer", "auto_reply", HOSTILE_SUBJECT, HOSTILE_SENDER)}
    assert not page.find_all("img") and not page.find_all("script")


async def test_last_results_are_the_fifty_newest_decisions(aiohttp_client, history_store, history,
                                                           paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now))
    rows = table_rows(parse_dom(html).find("table", class_="recent"))
    assert len(rows) == 50
    assert [r["decided"] for r in rows] == sorted((r["decided"] for r in rows), reverse=True)
    late = next(r for r in rows if r["verdict"] == "missed (late)")
    assert (late["reply subject"], late["sender"], late["delay"]) == ("Re: Horaires (désolés)", "Paul Martin",
                                                                      "10 d 1 h")


async def test_replies_can_be_left_out(aiohttp_client, history_store, history, paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now),
                                show_replies=False)
    assert "reply subject" not in html and "pwned" not in html and "Claire Dupont" not in html


async def test_the_page_forbids_scripts_framing_and_sniffing(aiohttp_client, history_store, history,
                                                              paris_config) -> None:
    status, headers, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now))
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'unsafe-inline'; "
                                                         "img-src data:")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "<script" not in html.lower()


async def test_days_sets_the_period(aiohttp_client, history_store, history, paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now), "/?days=1")
    shown = cells(parse_dom(html))
    assert {td.attrs["data-n"] for td in shown.values()} == {"0"}  # every probe started ten days ago
    assert "last 1 days" in html and '<a href="?days=30">30 days</a>' in html


@pytest.mark.parametrize("query", ["days=0", "days=367", "days=abc", "days=-3", "days=1e3", "page=0", "page=x"])
async def test_a_bad_query_is_refused_with_what_was_expected(aiohttp_client, paris_config, query: str) -> None:
    status, headers, body = await get_page(aiohttp_client, service_for(paris_config, None, T0), f"/?{query}")
    name = query.split("=")[0]
    assert status == 400 and body.startswith(f"{name} must be a whole number from 1 to ")
    assert headers["X-Content-Type-Options"] == "nosniff"


async def test_the_page_says_why_it_has_no_figures_before_the_database_opens(aiohttp_client,
                                                                             paris_config) -> None:
    status, _, html = await get_page(aiohttp_client, service_for(paris_config, None, T0))
    assert status == 503 and "Figures unavailable: the database is not open yet" in html
    assert len(parse_dom(html).find("table", class_="matrix").find_all("tr", data_site="catacombes")) == 1


async def test_the_page_says_why_it_has_no_figures_when_the_database_fails(aiohttp_client, tmp_path,
                                                                           paris_config) -> None:
    broken = Store.open(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/store.db")
    try:
        status, _, html = await get_page(aiohttp_client, service_for(paris_config, broken, T0))
    finally:
        await broken.close()
    assert status == 503 and "the database could not be read (OperationalError)" in html


async def test_ten_thousand_sites_are_shown_a_hundred_per_page(aiohttp_client, history_store, history,
                                                                paris_config) -> None:
    config = many_sites(paris_config, 10_000)
    status, _, html = await get_page(aiohttp_client, service_for(config, history_store, history.now), "/?page=2")
    page = parse_dom(html)
    sites = [tr.attrs["data-site"] for tr in page.find("table", class_="matrix").iter("tr") if "data-site" in tr.attrs]
    assert status == 200 and sites == [f"site-{i:05d}" for i in range(100, 200)]
    assert "sites 101–200 of 10000" in html and len(html) < 400_000
    pager = page.find("nav", class_="pages")
    assert [a.attrs["href"] for a in pager.iter("a")][-1] == "?days=30&page=100"


async def test_a_page_past_the_end_shows_the_last_page(aiohttp_client, history_store, history,
                                                       paris_config) -> None:
    _, _, html = await get_page(aiohttp_client, service_for(paris_config, history_store, history.now), "/?page=9")
    assert len(cells(parse_dom(html))) == 14 * 5  # 14 museums × 5 commitments


class CountingReads:
    """Counts the compliance computations the page asks the store for (one `verdict_counts` each)."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[object] = []
        real = store.verdict_counts

        async def counting(since=None, *args, **kwargs):  # type: ignore[no-untyped-def]
            self.calls.append(since)
            return await real(since, *args, **kwargs)

        monkeypatch.setattr(store, "verdict_counts", counting)


async def test_requests_within_fifteen_seconds_share_one_computation(aiohttp_client, history_store, history,
                                                                     paris_config, monkeypatch) -> None:
    service = service_for(paris_config, history_store, history.now)
    reads = CountingReads(history_store, monkeypatch)
    app = web.Application()
    add_status_page(app, service)
    client = await aiohttp_client(app)
    first = await client.get("/")
    service.clock.advance(14)
    second, third = await asyncio.gather(client.get("/"), client.get("/?page=1"))
    assert (first.status, second.status, third.status) == (200, 200, 200)
    assert len(reads.calls) == 1
    assert cells(parse_dom(await first.text())).keys() == cells(parse_dom(await third.text())).keys()


async def test_the_figures_are_computed_again_once_fifteen_seconds_passed(aiohttp_client, history_store, history,
                                                                          paris_config, monkeypatch) -> None:
    service = service_for(paris_config, history_store, history.now)
    reads = CountingReads(history_store, monkeypatch)
    app = web.Application()
    add_status_page(app, service)
    client = await aiohttp_client(app)
    await client.get("/")
    service.clock.advance(15)
    await client.get("/")
    await client.get("/?days=7")
    assert len(reads.calls) == 3  # expired, then another period: each its own computation


async def test_a_failed_read_is_not_kept(aiohttp_client, tmp_path, paris_config, monkeypatch) -> None:
    broken = Store.open(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/store.db")
    reads = CountingReads(broken, monkeypatch)
    app = web.Application()
    add_status_page(app, service_for(paris_config, broken, T0))
    client = await aiohttp_client(app)
    try:
        statuses = [(await client.get("/")).status for _ in range(2)]
    finally:
        await broken.close()
    assert statuses == [503, 503] and len(reads.calls) == 2


@pytest.mark.parametrize("query", [
    "days=%C2%B2",           # '²': str.isdigit() says yes, int() says no
    "days=%D9%A3",           # Arabic-Indic three: int() reads it, but it is no ASCII number
    "page=%EF%BC%91",        # a fullwidth one
    "page=" + "1" * 5000,    # past Python's int-from-string limit of 4300 digits
    "days=" + "0" * 5000 + "7",
    "days=%201", "days=1%00", "days=1_0", "days=+1",
], ids=lambda query: query[:24])
async def test_a_malformed_number_is_refused_without_an_error_in_the_log(aiohttp_client, paris_config, caplog,
                                                                         query: str) -> None:
    caplog.set_level(logging.DEBUG)
    app = web.Application()
    add_status_page(app, service_for(paris_config, None, T0))
    client = await aiohttp_client(app)
    status, body = await raw_request(client.host, client.port, get(f"/?{query}"))
    assert status == 400 and body.startswith(f"{query.split('=')[0]} must be a whole number from 1 to ".encode())
    assert errors_logged(caplog) == []


async def test_health_details_show_only_where_reply_details_do(aiohttp_client, paris_config) -> None:
    service = service_for(paris_config, None, T0)
    service.health.report("mailbox:mystery", False, "imap.example.net:993: ConnectionRefusedError", T0)
    _, _, detailed = await get_page(aiohttp_client, service)
    _, _, public = await get_page(aiohttp_client, service, show_replies=False)
    assert "imap.example.net:993: ConnectionRefusedError" in detailed
    assert "imap.example.net" not in public and "ConnectionRefusedError" not in public
    assert [r["detail"] for r in table_rows(parse_dom(public).find("section", id="health").find("table"))] == [
        "degraded"]
