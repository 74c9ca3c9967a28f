"""The audit report opened from disk (file://) in headless Chromium (acceptance, issue 6).

Four pages render in parallel Chromium processes: the network index, the
site whose reply is hostile, one of its evidence files, and the printable
whole printed to PDF.  Screenshots and the PDF stay in test-artifacts/.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.report import build_report
from monitor.store.store import Store
from tests.conftest import PARIS
from tests.monitor.web.dataset import (
    HOSTILE_SENDER,
    HOSTILE_SITE,
    HOSTILE_SUBJECT,
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

pytestmark = pytest.mark.integration
NOW = datetime(2026, 10, 1, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> dict[str, Rendered]:
    binary = chromium()
    config = load_config(PARIS)
    history = sqlite_history(sqlite_template, tmp_path_factory.mktemp("chromium-report-db"), config)
    out = tmp_path_factory.mktemp("chromium-report")

    async def build_and_render() -> dict[str, Rendered]:
        store = Store.open(history.url)
        try:
            index = await build_report(store, config, "2026-Q3", None, out, NOW)
        finally:
            await store.close()
        evidence = next((out / "evidence").glob("*/*-auto_reply-1.eml.txt"))
        hostile = next(p for p in (out / "evidence").glob("*/*.txt") if b"pwned-evidence" in p.read_bytes())
        assert evidence.exists()
        return await render_many(binary, {
            "index": Job(index.as_uri(), screenshot="report-index.png"),
            "site": Job((out / f"site-{HOSTILE_SITE}.html").as_uri(), screenshot="report-site-hostile.png"),
            "evidence": Job(hostile.as_uri()),
            "print": Job((out / "all-sites.html").as_uri(), pdf="report-all-sites.pdf"),
        })

    return asyncio.run(build_and_render())


def dom(rendered: dict[str, Rendered], name: str) -> Node:
    return parse_dom(rendered[name].dom)


def test_the_index_renders_with_a_link_to_each_museum(rendered: dict[str, Rendered]) -> None:
    page = dom(rendered, "index")
    links = {a.attrs["href"] for a in page.iter("a")}
    assert {f"site-{s.id}.html" for s in load_config(PARIS).sites} <= links
    assert page.find("title").text() == "QualiPARIS mystery-user audit report — 2026-Q3"
    assert "✓ Intact" in page.find("section", id="chain").text()
    assert len(page.find_all("svg")) == 4  # one network chart per commitment


def test_a_hostile_reply_in_the_report_is_text_not_code(rendered: dict[str, Rendered]) -> None:
    page = dom(rendered, "site")
    assert page.find("title").text() == "QualiPARIS mystery-user audit report — 2026-Q3 — Maison de Victor Hugo"
    assert not page.find_all("script") and not page.find_all("img")
    rows = table_rows(page.find("table", class_="missed"))
    assert any((r["reply subject"], r["sender"]) == (HOSTILE_SUBJECT, HOSTILE_SENDER) for r in rows)


def test_hostile_evidence_opens_as_plain_text(rendered: dict[str, Rendered]) -> None:
    page = dom(rendered, "evidence")
    assert not page.find_all("script")
    assert page.find("title") is None or "pwned" not in page.find("title").text()
    assert "<script>document.title='pwned-evidence'</script>" in page.find("pre").text()


def test_the_printable_report_puts_each_site_on_its_own_pages(rendered: dict[str, Rendered]) -> None:
    pdf = rendered["print"].pdf
    assert pdf is not None
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    pages = max(int(n) for n in re.findall(rb"/Count (\d+)", data))
    assert pages >= 1 + 14  # the network, then every site starting on a new sheet


def test_screenshots_are_kept(rendered: dict[str, Rendered]) -> None:
    for name in ("index", "site"):
        shot = rendered[name].screenshot
        assert shot is not None and shot.read_bytes()[:4] == b"\x89PNG"
