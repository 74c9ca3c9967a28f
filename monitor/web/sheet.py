"""The printable grading sheet of one answer, `GET /probes/{id}/grading`: server-rendered, no script.

It shows what an auditor needs to confirm or correct the machine: the request
we sent, the answer without the part quoting us (exactly the text the criteria
were judged on), each criterion's evidence highlighted in that text, and a
table with, per criterion, what it requires, what the machine found (its span
or the reason it failed, and whether it is sure), every auditor's decision
with who, when and why, and how it stands.  Everything comes from the probe's
events (`monitor.grading`), so the sheet shows what the verdicts were computed
from.  Decisions are made with `POST /api/v1/probes/{id}/grade`.

Access: the sheet quotes museum staff (names in signatures), so it is served
like reply details on the status page — when the server listens on loopback
or `http.status_page_details` allows it — or to a request with an auditor's
bearer token.  Everything from outside is escaped; the response forbids
scripts outright.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from monitor.api.auth import Authenticator
from monitor.api.errors import ApiError
from monitor.config.models import Config, Role
from monitor.grading import GradedAnswer, graded_answers
from monitor.quality import Standing, score
from monitor.web.html import document, esc, fmt_local, tag
from monitor.web.page import SECURITY_HEADERS
from monitor.web.style import CSS

PROBE_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")
MARK_COLOURS = ("#fff3a3", "#cfe8ff", "#d7f5d0", "#ffd9e6", "#e6dcff", "#ffe2c2", "#d9f2f2")
SHEET_CSS = CSS + """
pre.text { white-space: pre-wrap; overflow-wrap: anywhere; border: 1px solid #bbb; padding: .6rem; background: #fafafa;
           font: 13px/1.45 ui-monospace, Menlo, Consolas, monospace; max-width: 60rem; }
mark { padding: 0 .1rem; border-bottom: 2px solid #555; }
mark sup { font: 600 9px/1 system-ui, sans-serif; color: #333; margin-left: .15rem; }
td.stands-met { color: #1e7b34; font-weight: 600; } td.stands-not { color: #b3261e; font-weight: 600; }
td.stands-open { color: #8a6d00; font-weight: 600; }
@media print { pre.text { background: none; } }
"""


def add_grading_sheet(app: web.Application, service: Any, *, open_to_all: bool) -> None:
    authenticator = Authenticator(service.config.tokens)

    async def handler(request: web.Request) -> web.Response:
        if not open_to_all:
            try:
                authenticator.require(request.headers.get("Authorization"), Role.auditor)
            except ApiError:
                return _page(403, "Grading sheet not available here", (
                    "<p>Grading sheets quote the answers museum staff wrote. This server shows them only on "
                    "loopback or with <code>http.status_page_details: true</code>, or to a request with an "
                    "auditor's bearer token.</p>"))
        probe_id = request.match_info["id"]
        probe = await service.store.probe(probe_id) if PROBE_ID.fullmatch(probe_id) else None
        found = await graded_answers(service.store, service.config, [probe]) if probe is not None else []
        if not found:
            return _page(404, "No graded answer", "<p>This probe has no answer that a quality commitment grades "
                                                  "(or no such probe exists).</p>")
        return web.Response(text=render_sheet(service.config, found[0]), content_type="text/html",
                            charset="utf-8", headers=SECURITY_HEADERS)

    app.router.add_get("/probes/{id}/grading", handler)


def _page(status: int, title: str, body: str) -> web.Response:
    return web.Response(text=document(title, f"<h1>{esc(title)}</h1>{body}", CSS), status=status,
                        content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


# ---------------------------------------------------------------- rendering (pure)


def render_sheet(config: Config, graded: GradedAnswer) -> str:
    probe = graded.probe
    site = next((s for s in config.sites if s.id == probe.site), None)
    title = f"Grading sheet — {site.name if site else probe.site} — probe {probe.id}"
    body = "\n".join([
        f"<header><h1>{esc(title)}</h1>{_facts(config, graded)}</header>",
        _verdicts(graded),
        "<section id=\"request\"><h2>The request we sent</h2>"
        + (f'<pre class="text">{esc(graded.request)}</pre>' if graded.request
           else "<p>Not recorded (sent before qualimon kept the text of its requests); see the evidence "
                "<code>sent.eml</code>.</p>") + "</section>",
        "<section id=\"answer\"><h2>The answer, without the part quoting us</h2>"
        + (f'<pre class="text">{highlighted(graded.answer, graded.standings)}</pre>' if graded.answer
           else "<p>Not assessed by the machine: an auditor grades every criterion.</p>") + "</section>",
        _criteria(graded),
        '<footer class="note"><p>Criteria stand as an auditor decided them, else as the machine found them. '
        f"Decide with <code>POST /api/v1/probes/{esc(probe.id)}/grade</code> "
        "<code>{\"signed\": \"met\", \"reason\": \"…\"}</code> (auditor token); every decision is an event of "
        "the tamper-evident log.</p></footer>",
    ])
    return document(title, body, SHEET_CSS)


def _facts(config: Config, graded: GradedAnswer) -> str:
    assessment = graded.grading.assessment or {}
    rows = [
        ("site", graded.probe.site), ("probe", graded.probe.id),
        ("sent", fmt_local(graded.probe.sent_at, config.timezone)),
        ("answered", fmt_local(graded.answered_at, config.timezone)),
        ("template", assessment.get("template") or graded.probe.details.get("template") or "–"),
        ("language", f"{assessment.get('language', '–')} (the request: {assessment.get('expected_language', '–')})"),
        ("review", graded.status.replace("_", " ") + (f" — decided by {', '.join(graded.deciders)}"
                                                      if graded.deciders else "")),
    ]
    cells = "".join(f"<tr>{tag('th', k, scope='row')}{tag('td', v)}</tr>" for k, v in rows)
    return f'<table class="facts"><tbody>{cells}</tbody></table>'


def _verdicts(graded: GradedAnswer) -> str:
    rows = []
    for cid, commitment in graded.commitments.items():
        record = graded.verdicts.get(cid)
        verdict = record.verdict if record else "pending"
        value = score(graded.grading, commitment.graded_criteria)
        rows.append(f"<tr>{tag('th', cid, scope='row')}{tag('td', verdict, class_=f'v-{verdict}')}"
                    f"{tag('td', record.reason if record and record.reason else '–')}"
                    f"{tag('td', '–' if value is None else f'{value:.0%}', class_='num')}"
                    f"{tag('td', ', '.join(commitment.required_criteria) or 'none')}</tr>")
    return ('<section id="verdicts"><h2>Verdicts</h2><table><thead><tr><th scope="col">commitment</th>'
            '<th scope="col">verdict</th><th scope="col">reason</th><th scope="col">score</th>'
            f'<th scope="col">required</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _criteria(graded: GradedAnswer) -> str:
    first = next(iter(graded.commitments.values()))
    requirement: Mapping[str, str] = first.criteria or {}
    rows = "\n".join(_criterion_row(s, requirement.get(s.name, "–"), i) for i, s in enumerate(graded.standings))
    return ('<section id="criteria"><h2>Criteria</h2><table class="criteria"><thead><tr>'
            '<th scope="col">criterion</th><th scope="col">requirement</th><th scope="col">the machine</th>'
            '<th scope="col">evidence or reason</th><th scope="col">auditors</th><th scope="col">stands</th>'
            f"</tr></thead><tbody>\n{rows}\n</tbody></table></section>")


def _criterion_row(s: Standing, requirement: str, index: int) -> str:
    machine = "–" if s.machine_met is None else ("met" if s.machine_met else "not met")
    if s.source == "machine" and not s.certain:
        machine += " (unsure)"
    reason = s.machine_reason or ("not assessed" if s.source != "machine" else s.reason)
    evidence = (f'<mark style="background:{_colour(index)}">{esc((s.span or {}).get("text", ""))}</mark><br>'
                if s.span and s.met else "") + esc(reason)
    decisions = "<br>".join(
        esc(f"{'met' if d.met else 'not met'} by {d.by}" + (f", {fmt_iso(d.at)}" if d.at else "")
            + (f": {d.reason}" if d.reason else "")) for d in s.decisions) or "–"
    stands, css = (("to review", "stands-open") if s.met is None or not s.certain
                   else ("met", "stands-met") if s.met else ("not met", "stands-not"))
    return (f"<tr data-criterion=\"{esc(s.name)}\">{tag('th', s.name, scope='row')}{tag('td', requirement)}"
            f"{tag('td', machine)}<td>{evidence}</td><td>{decisions}</td>{tag('td', stands, class_=css)}</tr>")


def fmt_iso(at: datetime) -> str:
    return at.isoformat(timespec="minutes").replace("+00:00", "Z")


def _colour(index: int) -> str:
    return MARK_COLOURS[index % len(MARK_COLOURS)]


def highlighted(text: str, standings: Sequence[Standing]) -> str:
    """`text` escaped, each met criterion's span in a <mark> labelled with the criterion's name."""
    spans = []
    for index, s in enumerate(standings):
        span = s.span if s.met else None
        if span and 0 <= int(span.get("start", -1)) < int(span.get("end", -1)) <= len(text):
            spans.append((int(span["start"]), int(span["end"]), s.name, index))
    cuts = sorted({0, len(text), *(a for a, _, _, _ in spans), *(b for _, b, _, _ in spans)})
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        covering = [(name, index) for start, end, name, index in spans if start <= a and b <= end]
        piece = esc(text[a:b])
        if not covering:
            out.append(piece)
            continue
        ending = [name for start, end, name, _ in spans if end == b and start <= a]
        label = "".join(f"<sup>{esc(name)}</sup>" for name in ending)
        names = " ".join(name for name, _ in covering)
        out.append(f'<mark data-criteria="{esc(names)}" style="background:{_colour(covering[0][1])}">'
                   f"{piece}{label}</mark>")
    return "".join(out)
