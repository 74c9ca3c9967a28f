"""Who may call what: every endpoint × role, on SQLite and PostgreSQL."""

from __future__ import annotations

import hmac

import pytest

from monitor.api import auth as auth_module
from monitor.api.auth import Authenticator
from monitor.api.routes import ROUTES
from monitor.config.models import Role
from tests.monitor.api.conftest import (
    SECRETS,
    TOKENS,
    Api,
    api_config,
    build_app,
    build_service,
    held_message,
)

REGRADE = {"action": "override", "verdict": "void", "reason": "the museum was closed for works"}
# (method, path, lowest role allowed); {email} is a probe id and {evidence} one of its evidence ids.
ENDPOINTS = [
    ("GET", "/api/v1/sites", "viewer"),
    ("GET", "/api/v1/commitments", "viewer"),
    ("GET", "/api/v1/compliance", "viewer"),
    ("GET", "/api/v1/calls", "viewer"),
    ("GET", "/api/v1/probes", "auditor"),
    ("GET", "/api/v1/probes?format=csv", "auditor"),
    ("GET", "/api/v1/probes/{email}", "auditor"),
    ("GET", "/api/v1/probes/{email}/evidence", "auditor"),
    ("GET", "/api/v1/probes/{email}/evidence/{evidence}", "auditor"),
    ("GET", "/api/v1/audit/verify", "auditor"),
    ("POST", "/api/v1/probes/{email}/regrade", "auditor"),
    ("POST", "/api/v1/probes/{email}/grade", "auditor"),
    ("GET", "/api/v1/grading", "auditor"),
    ("GET", "/api/v1/mailboxes/mystery/messages", "auditor"),
    ("GET", "/api/v1/mailboxes/mystery/messages/{message}/raw", "auditor"),
    ("POST", "/api/v1/mailboxes/mystery/messages/{message}/attach", "auditor"),
    ("POST", "/api/v1/mailboxes/mystery/messages/{message}/dismiss", "auditor"),
]
GRADE = {"greeting": "met"}
# What an allowed role gets when it is not 200: this config has no quality commitment, so past the role
# check the grade itself is refused (test_grading.py covers grading proper).
ALLOWED_STATUS = {"/api/v1/probes/{email}/grade": 400}
RANK = {"viewer": 1, "auditor": 2, "admin": 3}


async def call(api: Api, method: str, path: str, history: dict[str, str], headers: dict[str, str]):
    evidence = (await api.json(f"/api/v1/probes/{history['email']}/evidence"))[0]["id"]
    message = await held_message(api.service, history["email"])  # a fresh one: each is decided once
    url = path.format(email=history["email"], evidence=evidence, message=message)
    if method == "POST" and "/messages/" in path:
        body = {"reason": "read by the auditor"} | ({"probe": history["email"]} if path.endswith("attach") else {})
        return await api.client.post(url, json=body, headers=headers)
    if method == "POST":
        return await api.client.post(url, json=GRADE if path.endswith("/grade") else REGRADE, headers=headers)
    return await api.client.get(url, headers=headers)


def test_every_route_is_in_the_access_matrix() -> None:
    covered = {(m, p.split("?")[0].replace("{email}", "{id}").replace("{evidence}", "{evidence_id}")
                .replace("mystery", "{name}").replace("{message}", "{message_id}")) for m, p, _ in ENDPOINTS}
    protected = {(r.method, "/api/v1" + r.path) for r in ROUTES if r.role is not None}
    assert covered == protected


@pytest.mark.parametrize("method,path,lowest", ENDPOINTS)
async def test_a_request_without_a_token_is_refused_with_a_bearer_challenge(api, history, method, path, lowest):
    response = await call(api, method, path, history, {})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"] == "unauthorized"


@pytest.mark.parametrize("method,path,lowest", ENDPOINTS)
async def test_an_unknown_token_is_refused(api, history, method, path, lowest):
    response = await call(api, method, path, history, {"Authorization": "Bearer not-a-token-we-know-1234"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="qualimon", error="invalid_token"'


@pytest.mark.parametrize("header", ["Basic YXVkaXRvcjphdWRpdG9y", f"Bearer {SECRETS['METRICS_TOKEN']}", "Bearer",
                                    f"{TOKENS['admin']}", f"Bearer {TOKENS['admin']}x", f"Bearer {TOKENS['admin'][:-1]}"])
async def test_anything_but_a_configured_bearer_token_is_refused(api, header):
    response = await api.client.get("/api/v1/probes", headers={"Authorization": header})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("method,path,lowest", ENDPOINTS)
async def test_each_role_gets_what_it_may_and_a_403_for_the_rest(api, history, method, path, lowest):
    for role in ("viewer", "auditor", "admin"):
        response = await call(api, method, path, history, Api.headers(role))
        if RANK[role] >= RANK[lowest]:
            assert response.status == ALLOWED_STATUS.get(path, 200), (role, await response.text())
        else:
            assert response.status == 403
            assert await response.json() == {
                "error": "forbidden", "detail": "this endpoint needs the auditor role; token 'grafana' has viewer"}


async def test_the_scheme_name_is_case_insensitive(api, history):
    response = await api.client.get("/api/v1/sites", headers={"Authorization": f"bearer {TOKENS['viewer']}"})
    assert response.status == 200


async def test_the_openapi_document_and_healthz_need_no_token(api):
    assert (await api.client.get("/api/v1/openapi.json")).status == 200
    assert (await api.client.get("/healthz")).status == 200


async def test_without_configured_tokens_the_api_is_disabled_and_says_how_to_enable_it(aiohttp_client, store,
                                                                                       clock):
    config = api_config().model_copy(update={"tokens": ()})
    client = await aiohttp_client(build_app(build_service(store, clock, config)))
    response = await client.get("/api/v1/sites", headers={"Authorization": f"Bearer {TOKENS['admin']}"})
    assert response.status == 401
    assert "no tokens are configured" in (await response.json())["detail"]
    assert (await client.get("/api/v1/openapi.json")).status == 200


async def test_installing_the_api_twice_keeps_one_mount(aiohttp_client, service):
    from monitor.api import add_api_routes

    app = build_app(service)
    add_api_routes(app, service)
    client = await aiohttp_client(app)
    assert (await client.get("/api/v1/commitments", headers=Api.headers("viewer"))).status == 200


def test_tokens_are_kept_only_as_digests() -> None:
    authenticator = Authenticator(api_config().tokens)
    kept = repr(vars(authenticator))
    for token in TOKENS.values():
        assert token not in kept and token.encode().hex() not in kept


def test_a_token_is_compared_with_every_known_digest_whichever_matches(monkeypatch) -> None:
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", counting)
    authenticator = Authenticator(api_config().tokens)
    for presented in [TOKENS["viewer"], TOKENS["admin"], "unknown-token-000000"]:
        calls.clear()
        authenticator.identify(presented)
        assert len(calls) == 3


def test_roles_are_ordered_viewer_auditor_admin() -> None:
    authenticator = Authenticator(api_config().tokens)
    admin = authenticator.identify(TOKENS["admin"])
    viewer = authenticator.identify(TOKENS["viewer"])
    assert admin is not None and viewer is not None
    assert admin.may(Role.auditor) and admin.may(Role.viewer) and not viewer.may(Role.auditor)
