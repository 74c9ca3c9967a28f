"""The status page served by a real aiohttp server and opened in headless Chromium (acceptance, issue 6).

One Chromium run renders the page for every test here: the DOM it dumps is
the page after any script would have run, so an unchanged title and no
injected element prove that hostile reply text stayed text.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from aiohttp import web

from monitor.config import load_config
from monitor.store.store import Store
from monitor.web import add_status_page
from tests.conftest import PARIS
from tests.monitor.web.dataset import (
    HOSTILE_SENDER,
    HOSTILE_SITE,
    HOSTILE_SUBJECT,
    service_for,
    sqlite_history,
)
from tests.support.chromium import (
    Job,
    Node,
    Rendered,
    chromium,
    parse_dom,
    render_many,
    table_rows,
)
from tests.support.integration import free_port

pytestmark = pytest.mark.integration
TITLE = "qualimon — QualiPARIS reception status"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Rendered:
    binary = chromium()
    config = load_config(PARIS)
    history = sqlite_history(sqlite_template, tmp_path_factory.mktemp("chromium-status"), config)

    async def serve_and_render() -> Rendered:
        store = Store.open(history.url)
        app = web.Application()
        add_status_page(app, service_for(config, store, history.now))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            jobs = {"status": Job(f"http://127.0.0.1:{port}/?days=30", screenshot="status-page.png")}
            return (await render_many(binary, jobs))["status"]
        finally:
            await runner.cleanup()
            await store.close()

    return asyncio.run(serve_and_render())


@pytest.fixture(scope="module")
def dom(rendered: Rendered) -> Node:
    return parse_dom(rendered.dom)


def test_the_page_renders_with_a_row_for_each_of_the_14_museums(dom: Node) -> None:
    matrix = dom.find("table", class_="matrix")
    rows = [tr for tr in matrix.iter("tr") if "data-site" in tr.attrs]
    assert [tr.attrs["data-site"] for tr in rows] == [s.id for s in load_config(PARIS).sites]
    assert "Musée Carnavalet – Histoire de Paris" in matrix.text()
    assert len([td for td in matrix.iter("td") if "data-commitment" in td.attrs]) == 14 * 5  # museums × commitments


def test_a_hostile_subject_and_sender_are_shown_as_text_not_run(dom: Node) -> None:
    assert dom.find("title").text() == TITLE
    assert not dom.find_all("script") and not dom.find_all("img")
    assert not [n for n in dom.iter() if any(a.startswith("on") for a in n.attrs)]
    recent = table_rows(dom.find("table", class_="recent"))
    hostile = [r for r in recent if r["site"] == HOSTILE_SITE and r["channel"] == "email"]
    assert hostile and all((r["reply subject"], r["sender"]) == (HOSTILE_SUBJECT, HOSTILE_SENDER) for r in hostile)


def test_the_page_needs_no_script_and_shows_health(dom: Node) -> None:
    assert dom.find("section", id="health") is not None
    assert "monitor health:" in dom.find("header").text()


def test_a_screenshot_is_kept_for_people_to_look_at(rendered: Rendered) -> None:
    assert rendered.screenshot is not None
    data = rendered.screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)
