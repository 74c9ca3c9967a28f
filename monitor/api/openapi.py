"""The OpenAPI 3.1 document of /api/v1, built from the route table so it cannot drift from the handlers.

Paths, methods, roles, parameters (with the schemas their parsers enforce)
and request bodies come from `routes.ROUTES`; this module adds the response
schemas, which the API tests and the schemathesis run check every response
against.  Served at GET /api/v1/openapi.json without a token.
"""

from __future__ import annotations

from typing import Any

from monitor import __version__
from monitor.api.messages import MESSAGE_FIELDS
from monitor.api.routes import Route
from monitor.verdicts import VERDICTS

INSTANT = {"type": ["string", "null"], "format": "date-time"}
NUMBER_OR_NULL = {"type": ["number", "null"]}
TEXT_OR_NULL = {"type": ["string", "null"]}
INTEGER_OR_NULL = {"type": ["integer", "null"]}
PER_MONTH = {"oneOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}]}


def closed(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with exactly these properties (all required but `optional`)."""
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [name for name in properties if name not in optional]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def page_of(item: str) -> dict[str, Any]:
    return closed({"items": {"type": "array", "items": ref(item)}, "next_cursor": TEXT_OR_NULL})


VERDICT = closed({"verdict": {"type": "string", "enum": list(VERDICTS)},
                  "deadline": INSTANT, "delay_seconds": NUMBER_OR_NULL, "business_delay_seconds": NUMBER_OR_NULL,
                  "late": {"type": "boolean"}, "reason": TEXT_OR_NULL})
EVENT = closed({"seq": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
                "type": {"type": "string"}, "data": {"type": "object"}})
PROBE_FIELDS = {
    "id": {"type": "string"}, "site": {"type": "string"}, "channel": {"type": "string"},
    "purpose": {"type": "string"}, "origin": {"type": "string"}, "status": {"type": "string"},
    "planned_at": {"type": "string", "format": "date-time"}, "sent_at": INSTANT, "reason": TEXT_OR_NULL,
    "events": {"type": "array", "items": ref("Event")},
    "verdicts": {"type": "object", "additionalProperties": ref("Verdict")},
}
EVIDENCE = closed({"id": {"type": "integer"}, "name": {"type": "string"}, "content_type": {"type": "string"},
                   "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "size": {"type": "integer"},
                   "created_at": {"type": "string", "format": "date-time"}, "url": {"type": "string"}})
SITE = closed({
    "id": {"type": "string"}, "name": {"type": "string"}, "calendar": {"type": "string"},
    "office_calendar": TEXT_OR_NULL,
    "email": {"oneOf": [{"type": "null"}, closed({"per_month": PER_MONTH, "max_per_month": INTEGER_OR_NULL,
                                                  "address": {"type": "string"}}, optional=("address",))]},
    "phone": {"oneOf": [{"type": "null"}, closed({"per_month": PER_MONTH, "max_per_month": INTEGER_OR_NULL,
                                                  "out_of_hours_per_month": {"type": "integer"},
                                                  "number": {"type": "string"}}, optional=("number",))]},
    "commitments": {"type": "array", "items": {"type": "string"}},
})
COMMITMENT = closed({
    "id": {"type": "string"}, "channel": {"type": "string"}, "kind": {"type": "string", "enum": ["delay", "quality"]},
    "within": {"oneOf": [{"type": "null"}, closed({
        "unit": {"type": "string", "enum": ["working_days", "business_hours", "seconds", "rings"]},
        "amount": {"type": "number"}})]},
    "criteria": {"oneOf": [{"type": "null"}, {"type": "object", "additionalProperties": {
        "type": "string", "enum": ["required", "optional", "off"]}}]},
    "threshold_seconds": NUMBER_OR_NULL, "counts": {"type": "array", "items": {"type": "string"}},
    "during": {"type": "string", "enum": ["open", "closed", "any"]}, "ring_cadence_seconds": {"type": "number"},
    "target": {"type": "number"},
})
COUNT = {"type": "integer", "minimum": 0}
COMPLIANCE = closed({
    "site": {"type": "string"}, "commitment": {"type": "string"}, "n": COUNT, "met": COUNT, "missed": COUNT,
    "pending": COUNT, "review": COUNT, "void": COUNT, "ratio": NUMBER_OR_NULL, "ci_low": NUMBER_OR_NULL,
    "ci_high": NUMBER_OR_NULL,
    "target": {"type": "number"},
    "status": {"type": "string", "enum": ["compliant", "non_compliant", "insufficient_data"]},
    "needed": {"type": ["integer", "null"], "minimum": 0},
})
CALL = closed({
    "id": {"type": "string"}, "source": {"type": "string"}, "site": {"type": "string"},
    "purpose": {"type": "string"}, "status": {"type": "string"}, "started_at": INSTANT, "answered_at": INSTANT,
    "outcome": TEXT_OR_NULL, "ring_seconds": NUMBER_OR_NULL, "rings": {"type": ["integer", "null"]},
    "reason": TEXT_OR_NULL, "verdicts": {"type": "object", "additionalProperties": ref("Verdict")},
})
CHAIN = closed({"ok": {"type": "boolean"}, "events": COUNT, "last_seq": COUNT, "last_hash": {"type": "string"},
                "broken": {"oneOf": [{"type": "null"},
                                     closed({"seq": {"type": "integer"}, "problem": {"type": "string"}})]}})

SPAN = {"oneOf": [{"type": "null"}, closed({"start": COUNT, "end": COUNT, "text": {"type": "string"}})]}
DECISION = closed({"met": {"type": "boolean"}, "by": {"type": "string"}, "reason": TEXT_OR_NULL, "at": INSTANT})
STANDING = closed({
    "met": {"type": ["boolean", "null"]}, "certain": {"type": "boolean"},
    "source": {"type": "string", "enum": ["machine", "auditor", "none"]}, "reason": {"type": "string"},
    "span": SPAN, "machine": {"type": ["boolean", "null"]}, "machine_reason": TEXT_OR_NULL,
    "decided_by": TEXT_OR_NULL,
    "decisions": {"type": "array", "items": DECISION}})
GRADING = closed({
    "probe": {"type": "string"}, "site": {"type": "string"}, "channel": {"type": "string"},
    "planned_at": {"type": "string", "format": "date-time"}, "answered_at": INSTANT,
    "response_seq": {"type": ["integer", "null"]}, "status": {"type": "string", "enum": ["to_review", "confirmed"]},
    "assessed": {"type": "boolean"}, "language": TEXT_OR_NULL, "template": TEXT_OR_NULL,
    "uncertain": {"type": "array", "items": {"type": "string"}},
    "decided_by": {"type": "array", "items": {"type": "string"}},
    "criteria": {"type": "object", "additionalProperties": STANDING},
    "commitments": {"type": "object", "additionalProperties": closed({
        "verdict": {"type": "string"}, "reason": TEXT_OR_NULL, "score": NUMBER_OR_NULL,
        "required": {"type": "array", "items": {"type": "string"}}})},
    "sheet": {"type": "string"},
})

SCHEMAS: dict[str, Any] = {
    "Error": closed({"error": {"type": "string"}, "detail": {"type": "string"}}),
    "Verdict": VERDICT,
    "Event": EVENT,
    "Probe": closed(PROBE_FIELDS),
    "ProbeDetail": closed({**PROBE_FIELDS, "evidence": {"type": "array", "items": ref("Evidence")}}),
    "ProbePage": page_of("Probe"),
    "Evidence": EVIDENCE,
    "EvidenceList": {"type": "array", "items": ref("Evidence")},
    "Site": SITE,
    "SiteList": {"type": "array", "items": ref("Site")},
    "Commitment": COMMITMENT,
    "CommitmentList": {"type": "array", "items": ref("Commitment")},
    "ComplianceRow": COMPLIANCE,
    "ComplianceList": {"type": "array", "items": ref("ComplianceRow")},
    "Call": CALL,
    "CallPage": page_of("Call"),
    "ChainReport": CHAIN,
    "Grading": GRADING,
    "GradingPage": page_of("Grading"),
    "Message": closed(MESSAGE_FIELDS),
    "MessagePage": page_of("Message"),
    "OpenApi": {"type": "object", "required": ["openapi", "paths"]},
}

ROLE_NOTE = {None: "Open: no token needed.", "viewer": "Role: viewer, auditor or admin.",
             "auditor": "Role: auditor or admin.", "admin": "Role: admin."}


def build(routes: tuple[Route, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(f"/api/v1{route.path}", {})[route.method.lower()] = operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "qualimon API", "version": __version__,
                 "description": "Mystery-user monitoring of public-service reception (QualiPARIS). Instants are "
                                "ISO 8601 UTC with Z; delays are seconds. Errors are JSON {error, detail}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "A token from the config's `tokens:`."}}},
        "security": [{"bearer": []}],
    }


def operation(route: Route) -> dict[str, Any]:
    role = route.role.value if route.role is not None else None
    doc: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": route.summary,
        "description": " ".join(filter(None, [ROLE_NOTE[role], route.description])),
        "x-qualimon-role": role,
        "parameters": [p.openapi() for p in route.params],
        "responses": responses(route),
    }
    if route.role is None:
        doc["security"] = []
    if route.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": route.body}}}
    return doc


def responses(route: Route) -> dict[str, Any]:
    result: dict[str, Any] = {"200": ok(route), "400": error("Invalid parameters or body.")}
    if route.role is not None:
        result["401"] = error("No token, or an unknown one.", {"WWW-Authenticate": {
            "required": True, "schema": {"type": "string"}}})
        result["403"] = error("The token's role is below the one this endpoint needs.")
    if route.not_found:
        result["404"] = error("No such probe (or evidence).")
    if route.conflict:
        result["409"] = error(route.conflict)
    return result


def ok(route: Route) -> dict[str, Any]:
    if route.download:
        binary = {"schema": {"type": "string", "format": "binary"}}
        return {"description": "The stored bytes.", "content": {"application/octet-stream": binary,
                                                                 "text/plain": binary}}
    content: dict[str, Any] = {"application/json": {"schema": ref(route.response)}}
    if route.csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"description": "OK", "content": content}


def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": ref("Error")}}}
    if headers:
        response["headers"] = headers
    return response
