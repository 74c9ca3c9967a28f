"""`qualimon report`: write the audit report of one period into a directory.

Output, all relative links, openable from a USB stick or an archive:

- `index.html` (and `index-2.html`… beyond 100 sites): chain verification,
  network summary and charts, the compliance table, the audited config;
- `site-<id>.html`: one page per site, with its charts and missed probes;
- `all-sites.html` (up to 100 sites): everything on one printable page,
  each site starting on a new sheet;
- `evidence/<probe>/<id>-<name>.txt` and `evidence/SHA256SUMS`;
- with `--format pdf`, also `qualimon-report-<period>.pdf`: a cover with the
  period and the chain verification, then everything above on numbered pages,
  one section per site (`pdf.py`).

Success means every file was written and the index path is returned; the
figures are those of `compliance_rows` for the period, and the chain result
is that of `Store.verify_chain()` at generation time.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from monitor.config.models import Config, Site
from monitor.grading import GradedAnswer
from monitor.report.data import by_site, delay_histograms, graded_for_site, missed_probes
from monitor.report.evidence import EVIDENCE_DIR, EvidenceFile, write_evidence
from monitor.report.pdf import pdf_name, render_pdf_html, write_pdf
from monitor.report.period import parse_period
from monitor.report.render import (
    ReportContext,
    SiteData,
    index_file,
    render_all_sites,
    render_index_page,
    render_site_page,
    site_file,
    site_section,
)
from monitor.status import compliance_rows
from monitor.store.store import Store

SITES_PER_INDEX_PAGE = 100
MISSED_PER_SITE = 200
GRADED_PER_SITE = 200
PRINT_ALL_MAX_SITES = 100


class ReportError(ValueError):
    """The report cannot be built as asked (unknown site); the message says why."""


async def build_report(store: Store, config: Config, period: str, site: str | None, out_dir: Path,
                       now: datetime, *, format: str = "html") -> Path:
    """Write the report of `period` (see `parse_period`) for the network or one site; returns index.html,
    or with `format="pdf"` the one PDF file (see `pdf.py`)."""
    chosen = parse_period(period)
    start, end = chosen.bounds(config.timezone)
    sites = selected_sites(config, site)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = await compliance_rows(store, config, start, end, site=site)
    ctx = ReportContext(
        config=config, period=chosen, start=start, end=end, generated_at=now, chain=await store.verify_chain(),
        sites=sites, rows_by_site=by_site(rows), hists=await delay_histograms(store, config, start, end, site),
        index_pages=max(1, -(-len(sites) // SITES_PER_INDEX_PAGE)), sites_per_page=SITES_PER_INDEX_PAGE,
        print_all=len(sites) <= PRINT_ALL_MAX_SITES or format == "pdf",
        missed_limit=MISSED_PER_SITE)
    sections = await _write_site_pages(store, ctx, out_dir)
    if format == "pdf":
        return write_pdf(render_pdf_html(ctx, sections), out_dir / pdf_name(ctx))
    for page in range(1, ctx.index_pages + 1):
        chunk = sites[(page - 1) * SITES_PER_INDEX_PAGE:page * SITES_PER_INDEX_PAGE]
        _write(out_dir / index_file(page), render_index_page(ctx, page, chunk))
    if ctx.print_all:
        _write(out_dir / "all-sites.html", render_all_sites(ctx, sections))
    return out_dir / "index.html"


def selected_sites(config: Config, site: str | None) -> tuple[Site, ...]:
    if site is None:
        return config.sites
    try:
        return (config.site(site),)
    except KeyError as exc:
        raise ReportError(str(exc.args[0])) from None


async def _write_site_pages(store: Store, ctx: ReportContext, out_dir: Path) -> list[str]:
    """One page per site; returns their sections when the print-all page is wanted (few sites)."""
    sums = out_dir / EVIDENCE_DIR / "SHA256SUMS"
    sums.parent.mkdir(parents=True, exist_ok=True)
    sums.write_text("", encoding="ascii")
    sections = []
    for site in ctx.sites:
        data = await _site_data(store, ctx, site, out_dir)
        _append_checksums(sums, [f for files in data.evidence.values() for f in files])
        _write(out_dir / site_file(site.id), render_site_page(ctx, data))
        if ctx.print_all:
            sections.append(site_section(ctx, data))
    return sections


async def _site_data(store: Store, ctx: ReportContext, site: Site, out_dir: Path) -> SiteData:
    rows = ctx.rows_by_site.get(site.id, ())
    total = sum(c.missed for c in rows)
    graded: list[GradedAnswer] = []
    graded_total = 0
    if any(ctx.config.commitments[c.commitment].is_quality and c.met + c.missed + c.pending for c in rows):
        graded, graded_total = await graded_for_site(store, ctx.config, site.id, ctx.start, ctx.end,
                                                     GRADED_PER_SITE)
    if total == 0:  # most sites of a large network: no query at all
        return SiteData(site, (), 0, {}, graded, graded_total)
    missed = await missed_probes(store, site.id, ctx.start, ctx.end, ctx.missed_limit)
    evidence = await write_evidence(store, sorted({m.probe_id for m in missed}), out_dir)
    return SiteData(site, missed, total, evidence, graded, graded_total)


def _append_checksums(path: Path, files: list[EvidenceFile]) -> None:
    """`sha256sum -c` format, paths relative to the evidence directory, recorded digests."""
    if files:
        with path.open("a", encoding="ascii") as out:
            out.writelines(f"{f.sha256}  {f.href.removeprefix(EVIDENCE_DIR + '/')}\n" for f in files)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
