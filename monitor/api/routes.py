"""The route table of /api/v1: path, method, role, parameters and response schemas in one place.

`install` registers every route on a sub-application mounted at /api/v1
(its own middleware turns every error into JSON and never touches the
status page or /metrics).  Each registered handler first checks the token
against the route's role, then parses the route's declared parameters, then
runs; `openapi.build` documents the very same table, so a route or
parameter cannot exist undocumented.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from monitor.api import handlers, messages
from monitor.api.auth import Authenticator
from monitor.api.errors import json_errors
from monitor.api.grade import body_schema as grade_schema
from monitor.api.params import (
    CURSOR_PARAM,
    FROM,
    LIMIT,
    PROBE_ID_PARAM,
    TO,
    VERDICTS,
    Args,
    Param,
    commitment_param,
    matching,
    one_of,
    parse_args,
    parse_positive_int,
    site_param,
)
from monitor.api.regrade import body_schema
from monitor.config.models import SLUG, Role
from monitor.store.records import BUCKETS

RouteHandler = Callable[[web.Request, Args], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # below /api/v1
    handler: RouteHandler
    role: Role | None  # None: open to anyone
    summary: str
    response: str  # the name of the 200 schema in openapi.SCHEMAS
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    description: str = ""
    not_found: bool = False
    conflict: str = ""  # when the route can answer 409: what that means
    csv: bool = False
    download: bool = False
    tags: tuple[str, ...] = field(default=())


CHANNEL_FILTER = Param("channel", {"type": "string", "pattern": SLUG},
                       "Only this channel: `email`, `phone`, or another probe kind's of this build.",
                       matching(SLUG, "a channel such as 'email'"))
COMMITMENT_FILTER = commitment_param("Only probes with a verdict for this commitment.")
VERDICT_FILTER = Param("verdict", {"type": "string", "enum": list(VERDICTS)},
                       "Only probes with this verdict (for `commitment` when given, else for any commitment).",
                       one_of(VERDICTS))
CALL_SOURCE = Param("source", {"type": "string", "enum": ["mystery", "calllog"], "default": "mystery"},
                    "mystery: our own calls; calllog: the sites' real calls from their call logs.",
                    one_of(("mystery", "calllog")), default="mystery")
PROBE_FILTERS = (site_param(), CHANNEL_FILTER, COMMITMENT_FILTER, VERDICT_FILTER, FROM, TO, LIMIT, CURSOR_PARAM)
FORMAT = Param("format", {"type": "string", "enum": ["json", "csv"]},
               "csv streams every matching probe from `cursor` on as CSV (limit does not apply); "
               "without it, `Accept: text/csv` does the same.", one_of(("json", "csv")))
COMPLIANCE_FORMAT = Param("format", {"type": "string", "enum": ["json", "csv"]},
                          "csv: the same rows as CSV (UTF-8 with BOM); without it, `Accept: text/csv` does the same.",
                          one_of(("json", "csv")))
REVIEW_STATUS = Param("status", {"type": "string", "enum": ["to_review", "confirmed", "all"], "default": "to_review"},
                      "to_review: some criterion is uncertain and undecided, or no auditor has looked at the answer; "
                      "confirmed: the rest; all: both.", one_of(("to_review", "confirmed", "all")),
                      default="to_review")
EVIDENCE_ID = Param("evidence_id", {"type": "integer", "minimum": 1}, "An evidence id from the evidence list.",
                    parse_positive_int, location="path")
MAILBOX = Param("name", {"type": "string", "pattern": SLUG}, "A mailbox's name in the config.",
                matching(SLUG, "a mailbox name such as 'mystery'"), location="path")
MESSAGE_ID = Param("message_id", {"type": "integer", "minimum": 1}, "A message id from the mailbox's list.",
                   parse_positive_int, location="path")
BUCKET_FILTER = Param("bucket", {"type": "string", "enum": list(BUCKETS)}, "Only messages of this bucket.",
                      one_of(BUCKETS))
DECIDED_FILTER = Param("decided", {"type": "string", "enum": ["true", "false"]},
                       "false: only those no auditor attached or dismissed yet; true: only decided ones.",
                       lambda text: {"true": True, "false": False}[one_of(("true", "false"))(text)])
MESSAGE_CURSOR = Param("cursor", {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"},
                       "The next_cursor of the previous page, as it was given.", parse_positive_int)
PERIOD_NOTE = ("`from`/`to` select probes by planned instant (the order of the list); a date is a day in the "
               "configured time zone and a date `to` includes that day.")

ROUTES: tuple[Route, ...] = (
    Route("GET", "/openapi.json", handlers.openapi_document, None, "This OpenAPI document", "OpenApi",
          description="Open without a token: it describes the API, holds no data."),
    Route("GET", "/sites", handlers.list_sites, Role.viewer, "Sites as configured", "SiteList",
          description="Auditors and admins also see each site's published email address and phone number; "
                      "viewers (dashboards) do not need them. Our own mailboxes and lines never appear."),
    Route("GET", "/commitments", handlers.list_commitments, Role.viewer, "Commitments as configured",
          "CommitmentList"),
    Route("GET", "/compliance", handlers.compliance, Role.viewer, "Compliance per site × commitment",
          "ComplianceList", (FROM, TO, site_param(), commitment_param(), COMPLIANCE_FORMAT), csv=True,
          description="Every configured (site, commitment) pair over probes whose commitment clock started in "
                      "[from, to); void probes are left out of the ratio; Wilson bounds at `compliance.confidence` "
                      "(95 % by default); `needed`: decided probes still needed to conclude (null: no number can). "
                      "Without from/to: all history. Sites or commitments not in the config give an empty list."),
    Route("GET", "/calls", handlers.list_calls, Role.viewer, "Call records with their verdicts", "CallPage",
          (CALL_SOURCE, site_param(), COMMITMENT_FILTER, VERDICT_FILTER, FROM, TO, LIMIT, CURSOR_PARAM),
          description="`source=mystery` (default): the mystery calls placed (or that we failed to place: void), "
                      "by planned instant. `source=calllog`: the sites' real calls read from their call logs "
                      "(CDR), by start instant, each judged against the phone commitment of its hour; never a "
                      "caller number. " + PERIOD_NOTE),
    Route("GET", "/probes", handlers.list_probes, Role.auditor, "Probe history, paginated or as CSV", "ProbePage",
          PROBE_FILTERS + (FORMAT,), csv=True,
          description="Items are the `qualimon export` documents, in (planned_at, id) order; follow next_cursor "
                      "until it is null. A walk never skips or repeats a probe while others are written "
                      "(a planned probe re-planned after a failed send of ours moves later and can be met "
                      "again). CSV: one row per probe × commitment. " + PERIOD_NOTE),
    Route("GET", "/probes/{id}", handlers.get_probe, Role.auditor, "One probe with its events and verdicts",
          "ProbeDetail", (PROBE_ID_PARAM,), not_found=True),
    Route("GET", "/probes/{id}/evidence", handlers.list_evidence, Role.auditor, "A probe's evidence",
          "EvidenceList", (PROBE_ID_PARAM,), not_found=True),
    Route("GET", "/probes/{id}/evidence/{evidence_id}", handlers.get_evidence, Role.auditor,
          "One piece of evidence, raw", "Binary", (PROBE_ID_PARAM, EVIDENCE_ID), not_found=True, download=True,
          description="Served as an attachment, text/plain or application/octet-stream (never HTML: these are "
                      "messages from outside), with X-Content-Type-Options: nosniff and its SHA-256."),
    Route("GET", "/audit/verify", handlers.verify_chain, Role.auditor, "Verify the event log's hash chain",
          "ChainReport", description="Reads the whole log. Note last_hash: a later run that finds another hash "
                                     "for the same seq proves the history was rewritten."),
    Route("GET", "/mailboxes/{name}/messages", messages.list_messages, Role.auditor,
          "Messages read from a mystery mailbox, each in its bucket", "MessagePage",
          (MAILBOX, BUCKET_FILTER, DECIDED_FILTER, LIMIT, MESSAGE_CURSOR), not_found=True,
          description="Newest first. Every message the watcher read is in exactly one bucket: matched, "
                      "unrelated, held (would answer a probe, sender not authenticated: its verdicts are review "
                      "until an auditor decides) or quarantined (processing failed; the message is kept). "
                      "Summaries hold headers only."),
    Route("GET", "/mailboxes/{name}/messages/{message_id}/raw", messages.get_raw, Role.auditor,
          "A mailbox message as kept, raw", "Binary", (MAILBOX, MESSAGE_ID), not_found=True, download=True,
          description="Served as an attachment (application/octet-stream, never HTML), with its SHA-256."),
    Route("POST", "/mailboxes/{name}/messages/{message_id}/attach", messages.attach_message, Role.auditor,
          "Attach a message to the probe it answers (appended event)", "Message", (MAILBOX, MESSAGE_ID),
          body=messages.body_schema(with_probe=True), not_found=True,
          description="Appends an attached event (who = the token's name, when, why): the message counts for "
                      "the probe as what it is (an answer, or a permanent bounce's failure); the verdicts are "
                      "recomputed. A held message attached elsewhere is dismissed from the probe it was held "
                      "for. Once per message."),
    Route("POST", "/mailboxes/{name}/messages/{message_id}/dismiss", messages.dismiss_message, Role.auditor,
          "Dismiss a message (appended event)", "Message", (MAILBOX, MESSAGE_ID),
          body=messages.body_schema(with_probe=False), not_found=True,
          description="Appends a dismissed event with who and why; a held message then changes nothing and the "
                      "verdicts are recomputed. Once per message."),
    Route("POST", "/probes/{id}/regrade", handlers.regrade, Role.auditor, "Regrade a probe (appended event)",
          "ProbeDetail", (PROBE_ID_PARAM,), body=body_schema(), not_found=True,
          description="Appends a regrade event (who = the token's name, when, why); the verdicts are "
                      "recomputed from the log. Returns the probe as GET /probes/{id} shows it."),
    Route("POST", "/probes/{id}/grade", handlers.grade, Role.auditor, "Decide quality criteria of an answer",
          "Grading", (PROBE_ID_PARAM,), body=grade_schema(), not_found=True,
          conflict="The probe has no answer to grade yet.",
          description="Body: {criterion: met|not_met, …, reason, response_seq?}. Appends a grade event (who = "
                      "the token's name, when, why); quality verdicts are recomputed. A criterion an auditor "
                      "already decided needs a reason to be decided again. Returns the graded answer."),
    Route("GET", "/grading", handlers.list_grading, Role.auditor, "Graded answers, to review or confirmed",
          "GradingPage", (REVIEW_STATUS, site_param(), FROM, TO, LIMIT, CURSOR_PARAM),
          description="Answers graded by a quality commitment, by planned instant, each with every criterion "
                      "(the machine's result, its evidence span or reason, auditors' decisions) and its printable "
                      "sheet. Filtering on status scans at most 2000 probes per page: a page may be short, follow "
                      "next_cursor until it is null. " + PERIOD_NOTE),
)


def install(app: web.Application, service: Any) -> None:
    """Mount /api/v1 on `app` (once: a second call does nothing)."""
    from monitor.api.openapi import build

    if app.get(handlers.CONTEXT) is not None:
        return
    api = web.Application(middlewares=[json_errors])
    api[handlers.CONTEXT] = handlers.ApiContext(service, Authenticator(service.config.tokens), build(ROUTES))
    for route in ROUTES:
        api.router.add_route(route.method, route.path, guarded(route))
    app[handlers.CONTEXT] = api[handlers.CONTEXT]
    app.add_subapp(handlers.API_PREFIX, api)


def guarded(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        identity = None
        if route.role is not None:
            auth = request.app[handlers.CONTEXT].auth
            identity = auth.require(request.headers.get("Authorization"), route.role)
        args = parse_args(route.params, request.query, request.match_info, request.query.getall, identity)
        return await route.handler(request, args)

    handle.__name__ = route.handler.__name__
    return handle
