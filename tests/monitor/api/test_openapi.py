"""The OpenAPI document matches the handlers: every route, parameter and response shape."""

from __future__ import annotations

from datetime import datetime, timezone

import jsonschema_rs
import pytest

from monitor.api.params import encode_cursor, parse_args
from monitor.api.routes import ROUTES
from tests.monitor.api.conftest import build_app

# A value each documented query parameter accepts.
SAMPLES = {"site": "petit-palais", "channel": "email", "commitment": "email.ack", "verdict": "met",
           "from": "2026-06-01", "to": "2026-06-30T00:00:00Z", "limit": "10", "format": "json", "source": "calllog",
           "status": "to_review",
           "cursor": encode_cursor((datetime(2026, 6, 2, tzinfo=timezone.utc), "01J0000000000000000000000X")),
           "bucket": "held", "decided": "false"}
# Parameters whose sample differs on one route: mailbox messages page by message id.
ROUTE_SAMPLES = {("/mailboxes/{name}/messages", "cursor"): "42"}


def schema_for(document: dict, name: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                        "$ref": f"#/components/schemas/{name}",
                                        "components": document["components"]}, validate_formats=True)


async def test_every_route_of_the_app_is_documented_and_nothing_else(api):
    document = await api.json("/api/v1/openapi.json", role=None)
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    mounted = {(r.method, r.resource.canonical) for r in api.client.app.router.routes()
               if r.resource is not None and r.resource.canonical.startswith("/api/v1") and r.method != "HEAD"}
    assert documented == mounted


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_documented_query_parameter_is_accepted(route) -> None:
    query = {p.name: ROUTE_SAMPLES.get((route.path, p.name), SAMPLES[p.name]) for p in route.params
             if p.location == "query"}
    args = parse_args(route.params, query, {}, lambda name: [query[name]])
    assert set(args.values) == {p.name for p in route.params}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_every_path_parameter_is_in_its_path(route) -> None:
    in_path = {p.name for p in route.params if p.location == "path"}
    assert in_path == {part[1:-1] for part in route.path.split("/") if part.startswith("{")}


async def test_real_answers_conform_to_their_schemas(api, history):
    document = await api.json("/api/v1/openapi.json", role=None)
    email = history["email"]
    for path, name in [("/api/v1/sites", "SiteList"), ("/api/v1/commitments", "CommitmentList"),
                       ("/api/v1/compliance", "ComplianceList"), ("/api/v1/calls", "CallPage"),
                       ("/api/v1/probes", "ProbePage"), (f"/api/v1/probes/{email}", "ProbeDetail"),
                       (f"/api/v1/probes/{email}/evidence", "EvidenceList"), ("/api/v1/audit/verify", "ChainReport"),
                       ("/api/v1/probes?limit=0", "Error"), ("/api/v1/probes/nope", "Error")]:
        response = await api.get(path)
        schema_for(document, name).validate(await response.json())
    viewer_sites = await api.json("/api/v1/sites", role="viewer")
    schema_for(document, "SiteList").validate(viewer_sites)


def test_the_document_is_valid_openapi_3_1(service) -> None:
    import schemathesis

    from monitor.api.openapi import build

    schema = schemathesis.openapi.from_dict(build(ROUTES))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(ROUTES)


def test_auditor_routes_say_so(service) -> None:
    from monitor.api.openapi import build

    document = build(ROUTES)
    regrade = document["paths"]["/api/v1/probes/{id}/regrade"]["post"]
    assert regrade["x-qualimon-role"] == "auditor" and regrade["description"].startswith("Role: auditor")
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    assert build_app(service) is not None
