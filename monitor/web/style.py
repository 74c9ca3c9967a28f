"""The stylesheet of the status page and the report, inlined in every page (no file to serve or lose).

Colours only ever repeat what a text label already says.  `@media print`
drops navigation, keeps the status colours when the printer allows it, adds
the link targets after evidence links, and starts each site on a new page.
"""

from __future__ import annotations

from monitor.web.html import STATUS_STYLE

_STATUS_RULES = "\n".join(f".{cls} {{ background: {colour}; }}" for cls, colour, _, _ in STATUS_STYLE.values())

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #111;
       margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin: 0 0 .3rem; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 .5rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; }
h3 { font-size: 1rem; margin: 1rem 0 .3rem; }
.meta { color: #444; margin: 0 0 1rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; }
th, td { border: 1px solid #bbb; padding: .25rem .45rem; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.cell { text-align: center; min-width: 6.5rem; font-variant-numeric: tabular-nums; }
td.cell small { display: block; color: #333; }
.status { white-space: nowrap; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.badge { display: inline-block; padding: .1rem .5rem; border: 1px solid #888; border-radius: 3px;
         font-weight: 600; }
.v-met { color: #1e7b34; } .v-missed { color: #b3261e; font-weight: 600; } .v-void { color: #555; }
.v-pending { color: #8a6d00; }
.v-review { color: #6a3d9a; }
.subject, .sender, .reason { overflow-wrap: anywhere; }
.hash { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85em; overflow-wrap: anywhere; }
.ok-text { color: #1e7b34; font-weight: 600; } .bad-text { color: #b3261e; font-weight: 600; }
.legend span { margin-right: 1rem; padding: .1rem .4rem; border: 1px solid #bbb; }
nav.pages a, nav.pages span { margin-right: .5rem; }
figure { margin: .5rem 0 1rem; display: inline-block; vertical-align: top; }
figcaption { font-size: .85rem; color: #333; max-width: 520px; }
.note { font-size: .9rem; color: #444; max-width: 60rem; }
.wide { overflow-x: auto; }
@media print {
  nav, .noprint { display: none !important; }
  body { margin: 0; max-width: none; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; text-decoration: none; }
  a.evidence::after { content: " [" attr(href) "]"; font-size: 8pt; }
  section.site { break-before: page; }
  table, figure, tr { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  .wide { overflow: visible; }
}
""" + _STATUS_RULES + "\n"
