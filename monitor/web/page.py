"""The status page, `GET /`: the whole network at a glance, for a person without Grafana.

Server-rendered HTML without any script.  It shows sites × commitments
coloured against their targets (figures from `compliance_rows`, the one
computation the API, the CLI and the report share), open and overdue probes
per site, the last decisions with the reply that decided them, and the
monitor's own health.  `?days=N` (1–366, default 30) sets the period and
`?page=N` pages through the sites, 100 at a time, so 10,000 sites stay
readable and the page stays small.

Cost per request: one grouped count over the period's verdicts, a walk of
the newest 50 `verdict` events, and (before the first background refresh
only) the open/overdue counts; afterwards those come from the service's
in-memory snapshot.  What was read is kept for 15 s of the service clock
per period (`monitor.web.cache`), so a burst of requests, or a crawler
walking every page, costs one computation.  Reply subjects and sender names
are hostile input and are escaped like everything else; the response also
forbids scripts outright (`Content-Security-Policy: default-src 'none'`).
The health checks' details (host names, file paths) show only to the
audience reply details show to (`http.status_page_details`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from monitor.compliance import Compliance
from monitor.config.models import Config, Site
from monitor.derived import overdue as overdue_counts
from monitor.grading import SHEET_PATH, Unsure, awaiting_review, graded_reply_kinds
from monitor.status import compliance_rows
from monitor.store.errors import is_outage
from monitor.web.cache import ShortCache
from monitor.web.html import (
    compliance_data_attrs,
    compliance_summary,
    document,
    esc,
    fmt_delay,
    fmt_local,
    fmt_ratio,
    fmt_target,
    status_class,
    status_label,
    status_symbol,
    tag,
)
from monitor.web.results import ResultLine, recent_results
from monitor.web.style import CSS

log = logging.getLogger("qualimon.web")

DEFAULT_DAYS, MAX_DAYS = 30, 366
SITES_PER_PAGE = 100
RECENT_LIMIT = 50
DB_TIMEOUT_SECONDS = 5.0
CACHE_SECONDS = 15.0  # the background refresh interval: the open/overdue counts are that old anyway
PERIOD_LINKS = (7, 30, 90)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class StatusView:
    """Everything the page shows, gathered before rendering so rendering is pure."""

    config: Config
    generated_at: datetime
    days: int
    page: int
    sites: Sequence[Site]                      # this page's sites
    total_sites: int
    cells: Mapping[tuple[str, str], Compliance]
    totals: Mapping[str, int]                  # compliance status -> cells, over every site
    open: Mapping[str, int]                    # site -> probes awaiting an answer
    overdue: Mapping[str, int]                 # site -> probes past a deadline with no answer
    recent: Sequence[ResultLine]
    health: Mapping[str, Any]
    show_replies: bool = True
    unsure: tuple[int, Sequence[Unsure]] = (0, ())   # answers whose quality waits for an auditor
    error: str | None = None
    # (mailbox, held|quarantined) -> (messages awaiting an auditor, arrival of the oldest)
    review: Mapping[tuple[str, str], tuple[int, datetime]] = field(default_factory=dict)
    commitments: Sequence[str] = field(default_factory=tuple)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total_sites // SITES_PER_PAGE))


def add_status_page(app: web.Application, service: Any, *, show_replies: bool = True) -> None:
    """Serve the status page at `/` from `service` (its config, store, clock, health and snapshot)."""
    cache: ShortCache[Figures] = ShortCache(service.clock, CACHE_SECONDS)

    async def handler(request: web.Request) -> web.Response:
        days = query_int(request, "days", DEFAULT_DAYS, 1, MAX_DAYS)
        page = query_int(request, "page", 1, 1, 1_000_000)
        view = await load_view(service, days, page, show_replies, cache)
        return web.Response(text=render_status_page(view), content_type="text/html", charset="utf-8",
                            status=503 if view.error else 200, headers=SECURITY_HEADERS)

    app.router.add_get("/", handler)


def query_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """`name` as an int in [low, high]: ASCII digits only, and few enough for int() to take (not 5,000)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    # Not str.isdigit(): it accepts '²' (int() then raises) and other scripts' digits.
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number from {low} to {high}, not {raw[:40]!r}\n",
                                 headers=SECURITY_HEADERS)
    return int(raw)


# ---------------------------------------------------------------- gathering


@dataclass(frozen=True)
class Figures:
    """What the page reads from the database for one period: the same for every page of sites."""

    read_at: datetime
    rows: list[Compliance]
    open: dict[str, int]
    overdue: dict[str, int]
    recent: list[ResultLine]
    unsure: tuple[int, Sequence[Unsure]]
    review: Mapping[tuple[str, str], tuple[int, datetime]]  # (mailbox, bucket) -> count, oldest


async def load_view(service: Any, days: int, page: int, show_replies: bool = True,
                    cache: ShortCache[Figures] | None = None) -> StatusView:
    config: Config = service.config
    now = service.clock.now()
    page = min(page, max(1, -(-len(config.sites) // SITES_PER_PAGE)))  # past the end: the last page
    start = (page - 1) * SITES_PER_PAGE
    sites = config.sites[start:start + SITES_PER_PAGE]
    base: dict[str, Any] = {
        "config": config, "generated_at": now, "days": days, "page": page, "sites": sites,
        # Health details name hosts and paths: shown to the same trusted audience as reply details.
        "total_sites": len(config.sites), "health": service.health.snapshot(details=show_replies),
        "show_replies": show_replies,
        "commitments": tuple(config.commitments)}
    if service.store is None:
        return StatusView(**base, cells={}, totals={}, open={}, overdue={}, recent=(),
                          error="the database is not open yet")
    try:
        figures = await (_read(service, days) if cache is None else cache.get(days, lambda: _read(service, days)))
    except Exception as exc:
        if not is_outage(exc):
            raise  # a statement of ours is wrong (a bug): a 500 and its traceback, not "the database is down"
        # The page must still say *why* it is empty.
        log.warning("status page: database read failed: %s: %s", type(exc).__name__, str(exc)[:200])
        return StatusView(**base, cells={}, totals={}, open={}, overdue={}, recent=(),
                          error=f"the database could not be read ({type(exc).__name__})")
    rows = figures.rows
    return StatusView(**{**base, "generated_at": figures.read_at}, cells={(c.site, c.commitment): c for c in rows},
                      totals=Counter(c.status for c in rows), open=figures.open, overdue=figures.overdue,
                      recent=figures.recent, unsure=figures.unsure,
                      review=figures.review)


async def _read(service: Any, days: int) -> Figures:
    return await asyncio.wait_for(_read_unbounded(service, service.clock.now(), days), timeout=DB_TIMEOUT_SECONDS)


async def _read_unbounded(service: Any, now: datetime, days: int) -> Figures:
    rows = await compliance_rows(service.store, service.config, now - timedelta(days=days), None)
    open_, overdue = await _open_and_overdue(service, now)
    recent = await recent_results(service.store, RECENT_LIMIT)
    unsure = await awaiting_review(service.store, service.config)
    return Figures(now, rows, open_, overdue, recent, unsure, await service.store.awaiting_review())


async def _open_and_overdue(service: Any, now: datetime) -> tuple[dict[str, int], dict[str, int]]:
    """From the background snapshot (what /metrics shows) when there is one, else from the database."""
    snapshot = getattr(service, "snapshot", None)
    if snapshot is not None:
        by_channel, by_commitment = snapshot.probes_open, snapshot.probes_overdue
    else:
        by_channel = {key: n for key, (n, _) in (await service.store.open_counts(now)).items()}
        by_commitment = await overdue_counts(service.store, now)
    return _per_site(by_channel), _per_site(by_commitment)


def _per_site(counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for (site, _), n in counts.items():
        totals[site] += n
    return dict(totals)


# ---------------------------------------------------------------- rendering


def render_status_page(view: StatusView) -> str:
    body = "\n".join([
        _header(view),
        f'<p class="badge bad-text" role="alert">Figures unavailable: {esc(view.error)}</p>' if view.error else "",
        _summary(view),
        _matrix_section(view),
        _review_section(view),
        _recent_section(view),
        _mailboxes_section(view),
        _health_section(view),
        _footer(view),
    ])
    return document("qualimon — QualiPARIS reception status", body, CSS)


def _header(view: StatusView) -> str:
    tz = view.config.timezone
    health = str(view.health.get("status", "unknown"))
    since = fmt_local(view.generated_at - timedelta(days=view.days), tz)
    links = " ".join(f"<strong>{d} days</strong>" if d == view.days else f'<a href="?days={d}">{d} days</a>'
                     for d in PERIOD_LINKS)
    return (f"<header><h1>QualiPARIS reception — status of the network</h1>"
            f'<p class="meta">Generated {esc(fmt_local(view.generated_at, tz))} ({esc(tz)}) · compliance over the '
            f"last {view.days} days (probes started since {esc(since)}) · "
            f'monitor health: <span class="badge health-{esc(health)}">{esc(health)}</span></p>'
            f'<nav aria-label="period">Period: {links}</nav></header>')


def _summary(view: StatusView) -> str:
    parts = [f'<span class="{status_class(s)}">{esc(status_symbol(s))} {view.totals.get(s, 0)} '
             f"{esc(status_label(s))}</span>" for s in ("compliant", "non_compliant", "insufficient_data")]
    return (f'<section id="summary"><h2>Summary</h2><p class="legend">Site × commitment cells: {" ".join(parts)}'
            f"</p><p>{len(view.config.sites)} sites · {sum(view.open.values())} probes awaiting an answer · "
            f"{sum(view.overdue.values())} past a deadline without an answer</p></section>")


def _matrix_section(view: StatusView) -> str:
    heads = "".join(f'<th scope="col">{esc(cid)}<br><small>target '
                    f"{esc(fmt_target(view.config.commitments[cid].target_ratio))}</small></th>"
                    for cid in view.commitments)
    rows = "\n".join(_matrix_row(view, site) for site in view.sites)
    first = (view.page - 1) * SITES_PER_PAGE
    caption = (f"Compliance per site and commitment, last {view.days} days — sites {first + 1}–"
               f"{first + len(view.sites)} of {view.total_sites}")
    return (f'<section id="compliance"><h2>Compliance by site</h2>'
            '<p class="note">Ratio = met ÷ (met + missed); void probes (the monitor\'s own failures), pending '
            "ones and those in review (waiting for an auditor) are left out. Hover a cell for the "
            f"{view.config.compliance.confidence:.0%} Wilson interval and the decided probes still needed to "
            "conclude.</p>"
            f'<div class="wide"><table class="matrix"><caption>{esc(caption)}</caption><thead><tr>'
            f'<th scope="col">site</th>{heads}<th scope="col">open</th><th scope="col">overdue</th></tr></thead>'
            f"\n<tbody>\n{rows}\n</tbody></table></div>{_pager(view)}</section>")


def _matrix_row(view: StatusView, site: Site) -> str:
    cells = "".join(_cell(view.cells.get((site.id, cid))) for cid in view.commitments)
    overdue = view.overdue.get(site.id, 0)
    return (f'<tr data-site="{esc(site.id)}"><th scope="row">{esc(site.name)}<br><small>{esc(site.id)}</small></th>'
            f'{cells}<td class="num open">{view.open.get(site.id, 0)}</td>'
            f'<td class="num overdue{" bad-text" if overdue else ""}">{overdue}</td></tr>')


def _cell(c: Compliance | None) -> str:
    if c is None:
        return '<td class="cell none">not probed</td>'
    summary = compliance_summary(c)
    return (f'<td class="cell {status_class(c.status)}" title="{esc(summary)}"{compliance_data_attrs(c)}>'
            f'<span aria-hidden="true">{esc(status_symbol(c.status))} {esc(fmt_ratio(c.ratio))}'
            f"<small>n={c.n}</small></span>"
            f'<span class="sr">{esc(summary)}</span></td>')


def _pager(view: StatusView) -> str:
    if view.pages == 1:
        return ""
    links = []
    for number in range(1, view.pages + 1):
        if number == view.page:
            links.append(f'<span aria-current="page">{number}</span>')
        elif number in (1, view.pages) or abs(number - view.page) <= 3:
            links.append(f'<a href="?days={view.days}&amp;page={number}">{number}</a>')
        elif links[-1] != "…":
            links.append("…")
    return f'<nav class="pages" aria-label="site pages">Pages: {" ".join(links)}</nav>'


def _recent_section(view: StatusView) -> str:
    tz = view.config.timezone
    head = ["decided", "site", "channel", "commitment", "verdict", "delay", "answer"]
    if view.show_replies:
        head += ["reply subject", "sender"]
    graded = graded_reply_kinds(view.config) if view.show_replies else {}
    rows = "\n".join(_recent_row(line, tz, view.show_replies, graded) for line in view.recent)
    if not view.recent:
        rows = f'<tr><td colspan="{len(head)}">No decision yet.</td></tr>'
    heads = "".join(f'<th scope="col">{esc(h)}</th>' for h in head)
    return (f'<section id="recent"><h2>Last results</h2><div class="wide"><table class="recent">'
            f"<caption>The {RECENT_LIMIT} most recent decisions, newest first</caption>"
            f"<thead><tr>{heads}</tr></thead>\n<tbody>\n{rows}\n</tbody></table></div></section>")


def _recent_row(line: ResultLine, tz: str, show_replies: bool, graded: Mapping[str, set[str]]) -> str:
    verdict = line.verdict + (" (late)" if line.late else "")
    if line.reason and line.verdict != "met":
        verdict += f": {line.reason}"
    reply = line.reply
    cells = [
        tag("td", fmt_local(line.decided_at, tz)), tag("td", line.site), tag("td", line.channel),
        tag("td", line.commitment), tag("td", verdict, class_=f"verdict v-{line.verdict} reason"),
        tag("td", fmt_delay(line.delay_seconds), class_="num"), _answer_cell(line, graded),
    ]
    if show_replies:
        cells += [tag("td", reply.subject if reply and reply.subject is not None else "–", class_="subject"),
                  tag("td", reply.sender if reply and reply.sender else "–", class_="sender")]
    return f'<tr data-probe="{esc(line.probe_id)}">{"".join(cells)}</tr>'


def _answer_cell(line: ResultLine, graded: Mapping[str, set[str]]) -> str:
    """The answer's kind, with a link to its grading sheet when a quality commitment grades it."""
    reply = line.reply
    if reply is None:
        return "<td>–</td>"
    if reply.kind not in graded.get(line.channel, set()):
        return tag("td", reply.kind)
    href = SHEET_PATH.format(id=line.probe_id)
    return f'<td>{esc(reply.kind)} · <a class="sheet" href="{esc(href)}">grading sheet</a></td>'


def _review_section(view: StatusView) -> str:
    total, latest = view.unsure
    if not total:
        return ""
    items = "".join(
        f"<li>{esc(fmt_local(u.answered_at, view.config.timezone))} · {esc(u.site)} · {esc(u.commitment)}: "
        f"{esc(u.reason or 'to review')}"
        + (f' — <a class="sheet" href="{esc(SHEET_PATH.format(id=u.probe_id))}">grading sheet</a>'
           if view.show_replies else "") + "</li>" for u in latest)
    return (f'<section id="review"><h2>Answers waiting for an auditor ({total})</h2>'
            '<p class="note">The machine is unsure of a required quality criterion: the verdict is <em>review</em> '
            "until an auditor decides (<code>POST /api/v1/probes/{id}/grade</code>; the list of all answers to "
            f"review is <code>GET /api/v1/grading?status=to_review</code>).</p><ul>{items}</ul></section>")


def _mailboxes_section(view: StatusView) -> str:
    """Messages of the mystery mailboxes that wait for an auditor (held: unauthenticated; quarantined: failed)."""
    tz = view.config.timezone
    rows = []
    for name in view.config.mailboxes:
        held, held_since = view.review.get((name, "held"), (0, None))
        quarantined, q_since = view.review.get((name, "quarantined"), (0, None))
        oldest = min((at for at in (held_since, q_since) if at is not None), default=None)
        rows.append(f'<tr data-mailbox="{esc(name)}">{tag("th", name, scope="row")}'
                    f'<td class="num held{" bad-text" if held else ""}">{held}</td>'
                    f'<td class="num quarantined{" bad-text" if quarantined else ""}">{quarantined}</td>'
                    f"{tag('td', fmt_local(oldest, tz) if oldest else '–')}</tr>")
    if not rows:
        return ""
    return ('<section id="mailboxes"><h2>Messages awaiting an auditor</h2>'
            '<p class="note">Held: it would answer a probe but its sender is not authenticated (the probe is '
            "<em>review</em> until an auditor attaches or dismisses it). Quarantined: reading it failed; it is "
            "kept. See <code>/api/v1/mailboxes/{name}/messages</code>.</p>"
            '<table class="mailboxes"><thead><tr><th scope="col">mailbox</th><th scope="col">held</th>'
            '<th scope="col">quarantined</th><th scope="col">oldest waiting since</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></section>")


def _health_section(view: StatusView) -> str:
    checks = view.health.get("checks", {})
    rows = "".join(
        f"<tr>{tag('th', name, scope='row')}"
        f"{tag('td', 'ok' if c.get('ok') else 'failing', class_='ok-text' if c.get('ok') else 'bad-text')}"
        f"{tag('td', c.get('detail'))}{tag('td', c.get('since'))}</tr>"
        for name, c in sorted(checks.items()))
    if not rows:
        rows = '<tr><td colspan="4">No check has reported yet.</td></tr>'
    return (f'<section id="health"><h2>Monitor health: {esc(view.health.get("status", "unknown"))}</h2>'
            '<table><thead><tr><th scope="col">check</th><th scope="col">state</th><th scope="col">detail</th>'
            f'<th scope="col">since (UTC)</th></tr></thead><tbody>{rows}</tbody></table></section>')


def _footer(view: StatusView) -> str:
    return ('<footer class="note"><p>Verdicts follow the commitments of the configuration; a <em>void</em> probe is '
            "a failure of the monitor itself and never counts against a site. Machine-readable figures: "
            "<code>/api/v1/compliance</code>; health: <code>/healthz</code>; metrics: <code>/metrics</code>."
            "</p></footer>")
