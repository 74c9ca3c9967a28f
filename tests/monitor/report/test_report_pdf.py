"""`qualimon report --format pdf`: a cover with the period and the chain check, numbered pages, a section per site."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.report import build_report
from monitor.store.store import Store
from tests.conftest import PARIS
from tests.monitor.web.dataset import sqlite_history
from tests.support.pdf import ink, pdf_fonts, pdf_pages, render_pages

pytestmark = pytest.mark.integration  # poppler-utils reads the PDF back

NOW = datetime(2026, 10, 1, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pdf(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Path]:
    config = load_config(PARIS)
    history = sqlite_history(sqlite_template, tmp_path_factory.mktemp("pdf-history"), config)
    out = tmp_path_factory.mktemp("pdf-report")

    async def build() -> Path:
        store = Store.open(history.url)
        try:
            return await build_report(store, config, "2026-Q3", None, out, NOW, format="pdf")
        finally:
            await store.close()

    yield asyncio.run(build())


def test_the_cover_names_the_period_and_the_chain_verification(pdf: Path) -> None:
    cover = pdf_pages(pdf)[0]
    assert pdf.name == "qualimon-report-2026-Q3.pdf"
    assert "2026-Q3 (2026-07-01 to 2026-09-30 inclusive)" in cover
    assert "Event log intact" in cover and "events verified" in cover
    assert "page 1 of" not in cover  # the cover has no footer


def test_every_site_has_its_own_section_on_a_new_page(pdf: Path) -> None:
    pages = pdf_pages(pdf)
    for site in load_config(PARIS).sites:
        heading = "".join(f"{site.name} ({site.id})".split())  # pdftotext wraps long headings anywhere
        starts = [i for i, page in enumerate(pages) if "".join(page.split()).startswith(heading)]
        assert starts, f"no page starts with the section of {site.id}"


def test_pages_are_numbered_and_fonts_embedded(pdf: Path) -> None:
    pages = pdf_pages(pdf)
    assert f"page 2 of {len(pages)}" in pages[1] and f"page {len(pages)} of {len(pages)}" in pages[-1]
    fonts = pdf_fonts(pdf)
    assert fonts and all(f["emb"] == "yes" for f in fonts), fonts


def test_its_pages_render_to_pictures_with_content(pdf: Path, tmp_path: Path) -> None:
    pictures = render_pages(pdf, tmp_path, 1, 3)
    assert len(pictures) == 3 and all(p.stat().st_size > 2000 for p in pictures)
    assert ink(pdf, 1, tmp_path) > 0.005 and ink(pdf, 3, tmp_path) > 0.01
