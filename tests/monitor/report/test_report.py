"""`build_report`: the figures of compliance_rows, charts that count the same, evidence that stays inert."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.compliance import Compliance
from monitor.config import Config, load_config
from monitor.report import PeriodError, ReportError, build_report, parse_period
from monitor.status import compliance_rows
from monitor.store.store import Store
from monitor.web.html import fmt_ci, fmt_ratio, fmt_target, status_label, status_symbol
from tests.conftest import PARIS, config_from
from tests.monitor.web.dataset import (
    HOSTILE_SENDER,
    HOSTILE_SITE,
    HOSTILE_SUBJECT,
    HistoryFile,
    build_dataset,
    many_sites,
    sqlite_history,
)
from tests.support.chromium import Node, parse_dom, table_rows

NOW = datetime(2026, 10, 1, 7, 0, tzinfo=UTC)
SVG_DESC = re.compile(r"^(\d+) decided probes: (\d+) answered in time, (\d+) answered too late, (\d+) without")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> HistoryFile:
    return sqlite_history(sqlite_template, tmp_path_factory.mktemp("report-history"), load_config(PARIS))


@pytest.fixture
async def history_store(history: HistoryFile) -> AsyncIterator[Store]:
    store = Store.open(history.url)
    yield store
    await store.close()


@pytest.fixture(scope="module")
def report(history: HistoryFile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 2026-Q3 network report of the shared history, built once for the tests that only read it."""
    out = tmp_path_factory.mktemp("report")

    async def build() -> Path:
        store = Store.open(history.url)
        try:
            return await build_report(store, load_config(PARIS), "2026-Q3", None, out, NOW)
        finally:
            await store.close()

    return asyncio.run(build())


def page(path: Path) -> Node:
    return parse_dom(path.read_text(encoding="utf-8"))


def compliance_table_rows(node: Node) -> list[dict[str, str]]:
    return [r for table in node.find_all("table", class_="compliance") for r in table_rows(table)
            if not r["site"].startswith("(all sites)")]


def as_shown(row: Compliance) -> dict[str, str]:
    """A compliance row as the report's table must print it."""
    return {"commitment": row.commitment, "n": str(row.n), "met": str(row.met), "missed": str(row.missed),
            "pending": str(row.pending), "review": str(row.review), "void": str(row.void),
            "ratio": fmt_ratio(row.ratio), "interval": fmt_ci(row.ci_low, row.ci_high),
            "target": fmt_target(row.target), "status": f"{status_symbol(row.status)} {status_label(row.status)}",
            "needed": "–" if row.needed is None else str(row.needed)}


async def test_the_report_shows_the_figures_of_compliance_rows(store: Store, paris_config: Config,
                                                               tmp_path: Path) -> None:
    await build_dataset(store, paris_config)
    index = await build_report(store, paris_config, "2026-Q3", None, tmp_path, NOW)
    start, end = parse_period("2026-Q3").bounds(paris_config.timezone)
    expected = await compliance_rows(store, paris_config, start, end)
    shown = compliance_table_rows(page(index))
    assert [{k: v for k, v in r.items() if k != "site"} for r in shown] == [as_shown(c) for c in expected]
    assert [r["site"] for r in shown] == [f"{paris_config.site(c.site).name}{c.site}" for c in expected]
    for site in paris_config.sites:
        on_site_page = compliance_table_rows(page(tmp_path / f"site-{site.id}.html"))
        assert on_site_page == [{"site": c.site, **as_shown(c)} for c in expected if c.site == site.id]


def test_the_delay_charts_count_what_the_compliance_table_counts(report: Path) -> None:
    for site_page in sorted(report.parent.glob("site-*.html")):
        node = page(site_page)
        decided = {r["commitment"]: (int(r["n"]), int(r["met"]), int(r["missed"]))
                   for r in compliance_table_rows(node)}
        for figure in node.find_all("figure"):
            n, met, late, none = map(int, SVG_DESC.match(figure.find("desc").text()).groups())
            assert (n, met, late + none) == decided[figure.attrs["data-commitment"]], site_page.name


def test_it_writes_an_index_a_page_per_site_and_a_printable_whole(report: Path) -> None:
    names = {p.name for p in report.parent.iterdir()}
    assert {"index.html", "all-sites.html", "evidence"} <= names
    assert {n for n in names if n.startswith("site-")} == {f"site-{s.id}.html" for s in load_config(PARIS).sites}
    links = [a.attrs["href"] for a in page(report).iter("a")]
    assert "site-petit-palais.html" in links and "all-sites.html" in links
    whole = page(report.parent / "all-sites.html")
    assert len(whole.find_all("section", class_="site")) == 14


def test_the_chain_verification_and_generation_time_are_stated(report: Path) -> None:
    text = page(report).find("section", id="chain").text()
    assert re.search(r"✓ Intact: \d+ events verified in order", text)
    assert "Generated 2026-10-01T09:00:00+02:00" in page(report).find("header").text()


def test_missed_probes_link_their_evidence_as_inert_text_files_with_their_digests(report: Path) -> None:
    node = page(report.parent / f"site-{HOSTILE_SITE}.html")
    missed = node.find("table", class_="missed")
    row = next(r for r in table_rows(missed) if r["commitment"] == "email.reply")
    assert (row["answer"], row["reply subject"], row["sender"]) == ("auto_reply", HOSTILE_SUBJECT, HOSTILE_SENDER)
    link = missed.find("a", class_="evidence")
    target = report.parent / link.attrs["href"]
    assert not link.attrs["href"].startswith(("/", "http")) and target.suffix == ".txt"
    assert target.read_bytes().startswith(b"From: accueil@example.org")
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest in missed.text() and "digest mismatch" not in missed.text()
    sums = (report.parent / "evidence" / "SHA256SUMS").read_text().splitlines()
    assert f"{digest}  {link.attrs['href'].removeprefix('evidence/')}" in sums
    for line in sums:  # what `sha256sum -c SHA256SUMS` checks
        recorded, name = line.split("  ", 1)
        assert hashlib.sha256((report.parent / "evidence" / name).read_bytes()).hexdigest() == recorded


def test_hostile_text_is_escaped_and_evidence_never_inlined(report: Path) -> None:
    for html_file in report.parent.glob("*.html"):
        html = html_file.read_text(encoding="utf-8")
        assert "<script" not in html.lower() and "<img" not in html.lower(), html_file.name
        assert "pwned-evidence" not in html, html_file.name
    site = (report.parent / f"site-{HOSTILE_SITE}.html").read_text(encoding="utf-8")
    assert "Re: Horaires &lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in site
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned-img&#x27;&quot;&gt;" in site


def test_pages_are_self_contained_and_forbid_scripts(report: Path) -> None:
    for html_file in report.parent.glob("*.html"):
        html = html_file.read_text(encoding="utf-8")
        nodes = list(parse_dom(html).iter())
        assert not [n.tag for n in nodes if n.tag in ("script", "link", "iframe", "object", "embed", "img")]
        assert not [n.tag for n in nodes if "src" in n.attrs or any(a.startswith("on") for a in n.attrs)]
        assert not [n.attrs["href"] for n in nodes if re.match(r"(https?:)?//|javascript:", n.attrs.get("href", ""))]
        assert not re.search(r"@import|url\((?!#)", html), html_file.name
        assert ("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#x27;none&#x27;; style-src "
                "&#x27;unsafe-inline&#x27;; img-src data:\">") in html
        assert "@media print" in html


async def test_a_tampered_event_log_is_reported_as_broken(history: HistoryFile, tmp_path: Path) -> None:
    copy = tmp_path / "tampered.db"
    shutil.copy(history.url.removeprefix("sqlite+aiosqlite:///"), copy)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE events SET data = '{\"kind\": \"human_reply\"}' WHERE seq = 5")
    store = Store.open(f"sqlite+aiosqlite:///{copy}")
    try:
        index = await build_report(store, load_config(PARIS), "2026-Q3", None, tmp_path / "out", NOW)
    finally:
        await store.close()
    node = page(index)
    assert "✗ BROKEN at event 5: its content does not match its hash: the row was edited" in node.find(
        "section", id="chain").text()
    assert "event log BROKEN" in node.find("header").text()


async def test_one_site_gets_its_page_and_an_index_of_its_own_rows(history_store: Store, tmp_path: Path) -> None:
    index = await build_report(history_store, load_config(PARIS), "2026-07", HOSTILE_SITE, tmp_path, NOW)
    assert sorted(p.name for p in tmp_path.glob("*.html")) == ["all-sites.html", "index.html",
                                                               f"site-{HOSTILE_SITE}.html"]
    assert {r["site"] for r in compliance_table_rows(page(index))} == {f"Maison de Victor Hugo{HOSTILE_SITE}"}


async def test_an_unknown_site_or_period_is_refused_with_a_reason(history_store: Store, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no site 'louvre' in the config; known: catacombes, "):
        await build_report(history_store, load_config(PARIS), "2026-Q3", "louvre", tmp_path, NOW)
    with pytest.raises(PeriodError, match="the quarter must be Q1 to Q4"):
        await build_report(history_store, load_config(PARIS), "2026-Q7", None, tmp_path, NOW)
    assert not list(tmp_path.iterdir())


async def test_a_period_without_probes_says_so(history_store: Store, tmp_path: Path) -> None:
    index = await build_report(history_store, load_config(PARIS), "2026-Q1", None, tmp_path, NOW)
    assert {r["n"] for r in compliance_table_rows(page(index))} == {"0"}
    assert "No missed probe in this period." in (tmp_path / "site-petit-palais.html").read_text()


async def test_a_large_network_is_split_into_index_pages(history_store: Store, tmp_path: Path) -> None:
    config = many_sites(load_config(PARIS), 450)
    index = await build_report(history_store, config, "2026-Q3", None, tmp_path, NOW)
    assert sorted(p.name for p in tmp_path.glob("index*.html")) == [
        "index-2.html", "index-3.html", "index-4.html", "index-5.html", "index.html"]
    assert not (tmp_path / "all-sites.html").exists()  # one printable file is for small networks
    assert len(list(tmp_path.glob("site-*.html"))) == 450
    second = page(tmp_path / "index-2.html")
    assert len({r["site"] for r in compliance_table_rows(second)}) == 100
    assert "sites 101–200 of 450" in second.text()
    assert index.stat().st_size < 400_000  # 100 sites × 5 commitments, each row with its `needed`


async def test_no_secret_reaches_the_report(history_store: Store, tmp_path: Path) -> None:
    text = PARIS.read_text(encoding="utf-8").replace(
        "smtp: {host: relay.example.net, port: 25, tls: starttls}",
        'smtp: {host: relay.example.net, port: 587, tls: starttls, username: jeanne, password: "${SMTP_PASSWORD}"}',
    ).replace('http: {listen: "127.0.0.1:9137"}', 'http: {listen: "127.0.0.1:9137"}\ntokens:\n'
              '  - {name: audit, role: auditor, token: "${AUDIT_TOKEN}"}')
    config = config_from(text, SMTP_PASSWORD="smtp-secret-Zq81x", AUDIT_TOKEN="audit-token-secret-7Hq2pV")
    await build_report(history_store, config, "2026-Q3", None, tmp_path, NOW)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"smtp-secret-Zq81x" not in data and b"audit-token-secret-7Hq2pV" not in data, path
