"""HTML of the audit report: the network index pages, one page per site, and a print-all file.

Pure functions of a `ReportContext` and the per-site data; `build.py` does
the reading and the writing.  Pages are self-contained (inline CSS and SVG,
no script, no font, no remote resource, a CSP meta that forbids them) and
every value from the store or the config is escaped by `esc()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.compliance import Compliance, compliance
from monitor.config.models import Commitment, Config, Site
from monitor.grading import GradedAnswer
from monitor.quality import score
from monitor.report.data import Histograms, MissedProbe
from monitor.report.evidence import EvidenceFile, safe_component
from monitor.report.period import Period
from monitor.store.chain import ChainReport
from monitor.verdicts import VERDICTS
from monitor.web.charts import DelayHistogram, describe, fmt_amount, histogram_svg
from monitor.web.html import (
    compliance_table,
    document,
    esc,
    fmt_delay,
    fmt_local,
    fmt_local_exact,
    fmt_target,
    status_class,
    status_label,
    status_symbol,
    tag,
)
from monitor.web.style import CSS

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
TITLE = "QualiPARIS mystery-user audit report"


@dataclass(frozen=True)
class ReportContext:
    config: Config
    period: Period
    start: datetime
    end: datetime
    generated_at: datetime
    chain: ChainReport
    sites: Sequence[Site]                       # the sites reported, in config order
    rows_by_site: Mapping[str, Sequence[Compliance]]
    hists: Histograms
    index_pages: int
    sites_per_page: int
    print_all: bool                             # whether all-sites.html is written
    missed_limit: int

    @property
    def tz(self) -> str:
        return self.config.timezone


@dataclass(frozen=True)
class SiteData:
    site: Site
    missed: Sequence[MissedProbe]
    missed_total: int
    evidence: Mapping[str, Sequence[EvidenceFile]]
    graded: Sequence[GradedAnswer] = ()
    graded_total: int = 0


def site_file(site_id: str) -> str:
    return f"site-{safe_component(site_id)}.html"


def index_file(page: int) -> str:
    return "index.html" if page == 1 else f"index-{page}.html"


# ---------------------------------------------------------------- index pages


def render_index_page(ctx: ReportContext, page: int, sites: Sequence[Site]) -> str:
    parts = [_header(ctx, f"{TITLE} — {ctx.period.label}"), _nav(ctx, page)]
    if page == 1:
        parts += [chain_section(ctx), network_section(ctx)]
    parts += [sites_compliance(ctx, page, sites), config_section(ctx, page, sites), _nav(ctx, page)]
    title = f"{TITLE} — {ctx.period.label}" + (f" — sites page {page}" if page > 1 else "")
    return document(title, "\n".join(parts), CSS, csp_meta=CSP)


def _header(ctx: ReportContext, heading: str) -> str:
    start, end = ctx.start.isoformat().replace("+00:00", "Z"), ctx.end.isoformat().replace("+00:00", "Z")
    chain = (f'<span class="ok-text">✓ event log intact ({ctx.chain.events} events)</span>' if ctx.chain.ok
             else '<span class="bad-text">✗ event log BROKEN — see the verification section</span>')
    return (f"<header><h1>{esc(heading)}</h1><p class=\"meta\">Period {esc(ctx.period.describe())}, local time "
            f"{esc(ctx.tz)}: probes whose clock started in [{esc(start)}, {esc(end)}). "
            f"Generated {esc(fmt_local_exact(ctx.generated_at, ctx.tz))}. {chain}.</p></header>")


def _nav(ctx: ReportContext, page: int) -> str:
    links = []
    for number in range(1, ctx.index_pages + 1):
        label = "network" if number == 1 else f"sites page {number}"
        links.append(f"<strong>{label}</strong>" if number == page
                     else f'<a href="{index_file(number)}">{label}</a>')
    if ctx.print_all:
        links.append('<a href="all-sites.html">every site on one printable page</a>')
    return f'<nav aria-label="report pages">{" · ".join(links)}</nav>' if len(links) > 1 else ""


def chain_section(ctx: ReportContext) -> str:
    chain = ctx.chain
    if chain.ok:
        verdict = (f'<p class="ok-text">✓ Intact: {chain.events} events verified in order, each hash matching '
                   f"its content and the previous event; the chain head matches the last event "
                   f"(#{chain.last_seq}).</p>")
    else:
        verdict = (f'<p class="bad-text" role="alert">✗ BROKEN at event {chain.broken.seq if chain.broken else "?"}: '
                   f"{esc(chain.broken.problem if chain.broken else '')}. History was edited, deleted or re-ordered "
                   "after it was recorded; the figures below are read from the database as it is now.</p>")
    return (f'<section id="chain"><h2>Event log verification</h2>{verdict}'
            f'<p>Last hash: <span class="hash">{esc(chain.last_hash)}</span><br>'
            "Re-check at any time with <code>qualimon verify</code>.</p></section>")


def network_section(ctx: ReportContext) -> str:
    pooled = [_pooled(ctx, cid, c) for cid, c in ctx.config.commitments.items()]
    figures = "".join(_figure(ctx.hists.network.get(cid) or ctx.hists.empty(cid), cid, c, "all sites")
                      for cid, c in ctx.config.commitments.items() if c.within is not None)
    return ('<section id="network"><h2>Network summary</h2>'
            f"{_status_counts(ctx)}"
            + compliance_table(pooled, caption="All reported sites pooled, per commitment")
            + f'<h3>Delay distributions, all sites</h3><div class="charts">{figures}</div></section>')


def _pooled(ctx: ReportContext, cid: str, commitment: Commitment) -> Compliance:
    """One commitment's counts summed over the reported sites, judged like a site (labelled as a pool)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for rows in ctx.rows_by_site.values():
        for c in rows:
            if c.commitment == cid:
                for verdict in counts:
                    counts[verdict] += getattr(c, verdict)
    return compliance("(all sites)", cid, counts, commitment.target_ratio, ctx.config.compliance.min_samples,
                      ctx.config.compliance.confidence)


def _status_counts(ctx: ReportContext) -> str:
    head = "".join(f'<th scope="col" class="{status_class(s)}">{esc(status_symbol(s))} {esc(status_label(s))}</th>'
                   for s in ("compliant", "non_compliant", "insufficient_data"))
    body = []
    for cid in ctx.config.commitments:
        found = [c.status for rows in ctx.rows_by_site.values() for c in rows if c.commitment == cid]
        cells = "".join(f'<td class="num">{found.count(s)}</td>'
                        for s in ("compliant", "non_compliant", "insufficient_data"))
        body.append(f"<tr>{tag('th', cid, scope='row')}{cells}</tr>")
    return (f'<table class="status-counts"><caption>Sites by status</caption><thead><tr><th scope="col">commitment'
            f"</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def sites_compliance(ctx: ReportContext, page: int, sites: Sequence[Site]) -> str:
    links = {s.id: f'<a href="{esc(site_file(s.id))}">{esc(s.name)}</a><br><small>{esc(s.id)}</small>'
             for s in sites}
    rows = [c for s in sites for c in ctx.rows_by_site.get(s.id, ())]
    first = (page - 1) * ctx.sites_per_page + 1
    caption = f"Compliance per site and commitment — sites {first}–{first + len(sites) - 1} of {len(ctx.sites)}"
    return ('<section id="compliance"><h2>Compliance by site</h2>'
            '<p class="note">n = met + missed; ratio = met ÷ n (void probes, the monitor\'s own failures, and pending '
            "ones or those in review, awaiting an auditor's decision, are left out); "
            f"{ctx.config.compliance.confidence:.0%} Wilson score interval; <em>insufficient "
            f"data</em> when fewer than {ctx.config.compliance.min_samples} decided probes leave the interval across "
            "the target; <em>needed</em>: further decided probes that would conclude if they went the way the "
            "results point (0: concluded, – : no number can).</p>"
            f'<div class="wide">{compliance_table(rows, links, caption)}</div></section>')


def config_section(ctx: ReportContext, page: int, sites: Sequence[Site]) -> str:
    parts = ['<section id="config"><h2>Configuration audited</h2>']
    if page == 1:
        parts.append(_commitments_table(ctx.config))
    parts.append(_sites_table(sites))
    parts.append("</section>")
    return "".join(parts)


def _commitments_table(config: Config) -> str:
    rows = "".join(
        f"<tr>{tag('th', cid, scope='row')}{tag('td', c.channel)}{tag('td', describe_within(c))}"
        f"{tag('td', ', '.join(c.answer_kinds))}{tag('td', c.during)}{tag('td', fmt_target(c.target_ratio), class_='num')}"
        "</tr>" for cid, c in config.commitments.items())
    return ('<table><caption>Commitments</caption><thead><tr><th scope="col">commitment</th><th scope="col">channel'
            '</th><th scope="col">within</th><th scope="col">answers counted</th><th scope="col">during</th>'
            f'<th scope="col">target</th></tr></thead><tbody>{rows}</tbody></table>')


def describe_within(c: Commitment) -> str:
    within = c.within
    if within is None:
        return f"no deadline: the answer is graded (required: {', '.join(c.required_criteria) or 'none'})"
    if within.working_days is not None:
        n = within.working_days
        return f"{n} working day{'s' if n > 1 else ''} (to the end of the day)"
    if within.business_hours is not None:
        return f"{within.business_hours:g} business hours"
    if within.rings is not None:
        return f"{within.rings:g} rings ({fmt_amount(within.rings * c.ring_cadence_seconds)})"
    return fmt_amount(within.seconds or 0.0)


def _sites_table(sites: Sequence[Site]) -> str:
    rows = "".join(
        f"<tr>{tag('th', s.id, scope='row')}{tag('td', s.name)}{tag('td', s.calendar)}"
        f"{tag('td', s.office_calendar or s.calendar)}"
        f"{tag('td', s.email.address if s.email else '–')}{tag('td', s.email.per_month if s.email else '–', class_='num')}"
        f"{tag('td', s.phone.number if s.phone else '–')}"
        f"{tag('td', s.phone.per_month if s.phone else '–', class_='num')}"
        f"{tag('td', s.phone.out_of_hours_per_month if s.phone else '–', class_='num')}</tr>"
        for s in sites)
    heads = "".join(f'<th scope="col">{h}</th>' for h in (
        "site", "name", "calendar", "office calendar", "email", "emails / month", "phone", "calls / month",
        "out-of-hours / month"))
    return (f'<div class="wide"><table><caption>Sites</caption><thead><tr>{heads}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


# ---------------------------------------------------------------- site pages


def render_site_page(ctx: ReportContext, data: SiteData) -> str:
    body = "\n".join([
        _header(ctx, f"{data.site.name} — {ctx.period.label}"),
        '<nav aria-label="report pages"><a href="index.html">← network report</a></nav>',
        site_section(ctx, data),
    ])
    return document(f"{TITLE} — {ctx.period.label} — {data.site.name}", body, CSS, csp_meta=CSP)


def render_all_sites(ctx: ReportContext, sections: Sequence[str]) -> str:
    body = "\n".join([_header(ctx, f"{TITLE} — {ctx.period.label} — every site"),
                      '<nav aria-label="report pages"><a href="index.html">← network report</a></nav>',
                      chain_section(ctx), network_section(ctx), *sections])
    return document(f"{TITLE} — {ctx.period.label} — every site", body, CSS, csp_meta=CSP)


def site_section(ctx: ReportContext, data: SiteData) -> str:
    site = data.site
    rows = ctx.rows_by_site.get(site.id, ())
    figures = "".join(_figure(ctx.hists.get(site.id, c.commitment), c.commitment,
                              ctx.config.commitments[c.commitment], site.name) for c in rows
                      if ctx.config.commitments[c.commitment].within is not None)
    return (f'<section class="site" id="site-{esc(site.id)}" data-site="{esc(site.id)}">'
            f"<h2>{esc(site.name)} <small>({esc(site.id)})</small></h2>"
            + compliance_table(rows, caption=f"Compliance, {ctx.period.label}")
            + f'<h3>Delay distributions</h3><div class="charts">{figures or "<p>No commitment applies.</p>"}</div>'
            + _missed_table(ctx, data) + _quality_table(ctx, data) + "</section>")


def _figure(hist: DelayHistogram, cid: str, commitment: Commitment, who: str) -> str:
    label = "delay" if hist.exact else "business delay"
    title = f"{cid}, {who}: delay against the threshold"
    caption = describe(hist) + _nominal_note(commitment)
    return (f'<figure data-commitment="{esc(cid)}">{histogram_svg(hist, title, label)}'
            f"<figcaption>{esc(cid)}: {esc(caption)}.</figcaption></figure>")


def _nominal_note(commitment: Commitment) -> str:
    """Why the line is only a guide for calendar deadlines (the colours are the recorded verdicts)."""
    within = commitment.within
    if within is None:
        return ""
    if within.working_days is not None:
        return (f". The deadline is the end of working day {within.working_days} after the day of sending, so an "
                "answer with a little more business time can still be in time; the colours are the recorded verdicts")
    if within.business_hours is not None:
        return ". The deadline counts opening hours only; the colours are the recorded verdicts"
    return ""


def _missed_table(ctx: ReportContext, data: SiteData) -> str:
    heads = "".join(f'<th scope="col">{h}</th>' for h in (
        "probe", "commitment", "clock started", "deadline", "outcome", "answer", "reply subject", "sender",
        "evidence (SHA-256)"))
    rows = "\n".join(_missed_row(ctx, m, data.evidence.get(m.probe_id, ())) for m in data.missed)
    shown = len(data.missed)
    more = ""
    if data.missed_total > shown:
        more = (f'<p class="note">Showing the first {shown} of {data.missed_total} missed verdicts; the full list '
                "is in <code>qualimon export --format csv</code> for the same period.</p>")
    if not data.missed:
        return '<h3>Missed probes</h3><p>No missed probe in this period.</p>'
    return (f'<h3>Missed probes ({data.missed_total})</h3>{more}<div class="wide"><table class="missed">'
            f"<thead><tr>{heads}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>"
            '<p class="note">Evidence files are the raw bytes as recorded (saved as .txt so that no browser runs '
            "them); the digests are those recorded at the time and are re-checked in "
            "<code>evidence/SHA256SUMS</code>.</p>")


def _missed_row(ctx: ReportContext, m: MissedProbe, evidence: Sequence[EvidenceFile]) -> str:
    if m.late:
        outcome = f"answered late, after {fmt_delay(m.delay_seconds)}"
    else:
        outcome = f"no qualifying answer ({m.reason or 'no_answer'})"
    reply = m.reply
    cells = [tag("td", m.probe_id, class_="hash"), tag("td", m.commitment),
             tag("td", fmt_local(m.started_at, ctx.tz)), tag("td", fmt_local(m.deadline, ctx.tz)),
             tag("td", outcome, class_="reason"), tag("td", reply.kind if reply else "–"),
             tag("td", reply.subject if reply and reply.subject is not None else "–", class_="subject"),
             tag("td", reply.sender if reply and reply.sender else "–", class_="sender"),
             f"<td>{_evidence_links(evidence)}</td>"]
    return f'<tr data-probe="{esc(m.probe_id)}">{"".join(cells)}</tr>'


CRITERION_MARK = {True: "✓", False: "✗", None: "?"}


def _quality_table(ctx: ReportContext, data: SiteData) -> str:
    """The site's graded answers: each criterion as it stands, and who decided what."""
    if not data.graded:
        return ""
    criteria = data.graded[0].criteria
    heads = "".join(f'<th scope="col">{esc(h)}</th>' for h in ("probe", "answered", *criteria, "verdict", "score",
                                                              "decided by"))
    rows = "\n".join(_quality_row(ctx, g) for g in data.graded)
    more = ""
    if data.graded_total > len(data.graded):
        more = (f'<p class="note">Showing the first {len(data.graded)} of {data.graded_total} graded answers; '
                "all are in <code>qualimon export --format csv</code> (columns criteria, decided_by).</p>")
    return (f'<h3>Answer quality ({data.graded_total} graded)</h3>{more}<div class="wide"><table class="quality">'
            f"<thead><tr>{heads}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div>"
            '<p class="note">✓ met, ✗ not met, ? not sure (the machine is unsure and no auditor decided); '
            "<em>a</em> after a mark: decided by an auditor. Score: share of the graded criteria met.</p>")


def _quality_row(ctx: ReportContext, graded: GradedAnswer) -> str:
    marks = "".join(
        tag("td", CRITERION_MARK[s.met if s.certain else None] + (" a" if s.decided_by else ""),
            class_="num", title=s.reason) for s in graded.standings)
    verdicts = "; ".join(f"{cid}: {v.verdict}" for cid, v in graded.verdicts.items()) or "pending"
    scores = [score(graded.grading, c.graded_criteria) for c in graded.commitments.values()]
    value = next((s for s in scores if s is not None), None)
    return (f'<tr data-probe="{esc(graded.probe.id)}">{tag("td", graded.probe.id, class_="hash")}'
            f"{tag('td', fmt_local(graded.answered_at, ctx.tz))}{marks}{tag('td', verdicts)}"
            f"{tag('td', '–' if value is None else f'{value:.0%}', class_='num')}"
            f"{tag('td', ', '.join(graded.deciders) or '–')}</tr>")


def _evidence_links(files: Sequence[EvidenceFile]) -> str:
    if not files:
        return "–"
    items = []
    for f in files:
        check = "" if f.intact else ' <strong class="bad-text">digest mismatch</strong>'
        items.append(f'<li><a class="evidence" href="{esc(f.href)}" type="text/plain">{esc(f.name)}</a> '
                     f'({f.size} bytes)<br><span class="hash">{esc(f.sha256)}</span>{check}</li>')
    return f'<ul class="evidence">{"".join(items)}</ul>'
