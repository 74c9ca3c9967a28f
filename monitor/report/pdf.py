"""`qualimon report --format pdf`: the audit report as one PDF file, because auditors file PDFs.

The same HTML as the report's pages (`render.py`), put together for print — a
cover with the period, the scope and the event-log verification, then the
network summary, the compliance table, the audited configuration and one
section per site, each starting on a new page — and rendered by WeasyPrint
(a maintained HTML/CSS-to-PDF engine: it lays out the inline SVG charts and
embeds the subset fonts it used, so the file reads the same anywhere).  Pages
are numbered "page N of M" in the footer, beside the period.  The evidence
files the site sections link to are written next to the PDF, as for HTML.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from monitor.report.render import (
    TITLE,
    ReportContext,
    chain_section,
    config_section,
    network_section,
    sites_compliance,
)
from monitor.web.html import document, esc, fmt_local_exact
from monitor.web.style import CSS

FONT = '"DejaVu Sans", "Liberation Sans", Arial, sans-serif'


def pdf_name(ctx: ReportContext) -> str:
    label = re.sub(r"[^0-9A-Za-z_-]+", "_", ctx.period.label).strip("_")
    return f"qualimon-report-{label}.pdf"


def print_css(ctx: ReportContext) -> str:
    footer = f"{TITLE} — {ctx.period.label}".replace('"', "'")
    return CSS + f"""
@page {{ size: A4; margin: 16mm 12mm 18mm 12mm;
        @bottom-left {{ content: "{footer}"; font: 7pt {FONT}; color: #555; }}
        @bottom-right {{ content: "page " counter(page) " of " counter(pages); font: 7pt {FONT}; color: #555; }} }}
@page :first {{ @bottom-left {{ content: none; }} @bottom-right {{ content: none; }} }}
body {{ font-family: {FONT}; font-size: 8.5pt; margin: 0; max-width: none; padding: 0; }}
table {{ font-size: 7.5pt; }} th, td {{ padding: .15rem .3rem; }}
.wide {{ overflow: visible; }}
section.cover {{ break-after: page; padding-top: 30mm; }}
section.cover h1 {{ font-size: 22pt; margin-bottom: 6mm; }}
section.cover .period {{ font-size: 15pt; margin: 0 0 10mm; }}
section.cover .chain {{ font-size: 13pt; border: 1.5pt solid #555; padding: 4mm; margin: 8mm 0; }}
section.site {{ break-before: page; }}
figure {{ break-inside: avoid; }} svg {{ max-width: 100%; height: auto; }}
nav {{ display: none; }}
"""


def render_pdf_html(ctx: ReportContext, sections: Sequence[str]) -> str:
    body = "\n".join([_cover(ctx), chain_section(ctx), network_section(ctx),
                      sites_compliance(ctx, 1, ctx.sites), config_section(ctx, 1, ctx.sites), *sections])
    return document(f"{TITLE} — {ctx.period.label}", body, print_css(ctx))


def _cover(ctx: ReportContext) -> str:
    chain = ctx.chain
    if chain.ok:
        verdict = (f'<p class="chain ok-text">✓ Event log intact: {chain.events} events verified, each hash matching '
                   f"its content and the previous event (last #{chain.last_seq}).</p>")
    else:
        where = chain.broken.seq if chain.broken else "?"
        verdict = (f'<p class="chain bad-text">✗ Event log BROKEN at event {esc(where)}: history was edited, '
                   "deleted or re-ordered after it was recorded.</p>")
    scope = ctx.sites[0].name if len(ctx.sites) == 1 else f"{len(ctx.sites)} sites"
    return (f'<section class="cover" id="cover"><h1>{esc(TITLE)}</h1>'
            f'<p class="period">Period {esc(ctx.period.describe())}</p>'
            f"<p>Scope: {esc(scope)}, {len(ctx.config.commitments)} commitments · local time {esc(ctx.tz)}</p>"
            f"{verdict}<p>Last hash: <span class=\"hash\">{esc(chain.last_hash)}</span></p>"
            f"<p>Generated {esc(fmt_local_exact(ctx.generated_at, ctx.tz))} by qualimon. Re-check the log at any "
            "time with <code>qualimon verify</code>.</p></section>")


def write_pdf(html: str, path: Path) -> Path:
    """Render `html` to `path` (relative links resolve next to it)."""
    import weasyprint  # a heavy import (and system libraries): only when a PDF is asked for

    for noisy in ("weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    weasyprint.HTML(string=html, base_url=str(path.parent)).write_pdf(path)
    return path
