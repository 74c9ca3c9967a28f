"""No secret (SMTP/IMAP/SIP passwords, API and metrics tokens) in any response, header or log line."""

from __future__ import annotations

import logging

from tests.monitor.api.conftest import SECRETS, TOKENS, Api


def requests_to_try(history: dict[str, str], evidence: int) -> list[tuple[str, str, dict | None]]:
    email = history["email"]
    secret = SECRETS["SMTP_PASSWORD"]
    return [
        ("GET", "/healthz", None), ("GET", "/api/v1/openapi.json", None), ("GET", "/api/v1/sites", None),
        ("GET", "/api/v1/commitments", None), ("GET", "/api/v1/compliance", None), ("GET", "/api/v1/calls", None),
        ("GET", "/api/v1/probes", None), ("GET", "/api/v1/probes?format=csv", None),
        ("GET", f"/api/v1/probes/{email}", None), ("GET", f"/api/v1/probes/{email}/evidence", None),
        ("GET", f"/api/v1/probes/{email}/evidence/{evidence}", None),
        ("GET", f"/api/v1/probes/{history['call']}", None), ("GET", "/api/v1/audit/verify", None),
        # errors, some carrying a secret where a value belongs: it must not come back
        ("GET", f"/api/v1/probes?site={secret}", None), ("GET", f"/api/v1/probes?token={TOKENS['admin']}", None),
        ("GET", f"/api/v1/probes?cursor={secret}", None), ("GET", f"/api/v1/probes/{secret}", None),
        ("GET", "/api/v1/no-such-path", None),
        ("POST", f"/api/v1/probes/{email}/regrade", {"action": "clear", "reason": secret + "\u0000"}),
        ("POST", f"/api/v1/probes/{email}/regrade", {"action": "clear", "reason": "x", secret: 1}),
        ("POST", f"/api/v1/probes/{email}/regrade", {"action": "override", "verdict": "void", "reason": "ok"}),
    ]


async def test_no_secret_appears_in_any_response_or_log_line(api, history, caplog):
    caplog.set_level(logging.DEBUG)
    evidence = (await api.json(f"/api/v1/probes/{history['email']}/evidence"))[0]["id"]
    seen: list[str] = []
    for role in (None, "viewer", "auditor", "admin"):
        for method, path, body in requests_to_try(history, evidence):
            headers = Api.headers(role)
            if method == "POST":
                response = await api.client.post(path, json=body, headers=headers)
            else:
                response = await api.client.get(path, headers=headers)
            assert response.status < 500, (role, path)
            seen.append(f"{dict(response.headers)}\n" + (await response.read()).decode("utf-8", "replace"))
    metrics = await api.client.get("/metrics", headers={"Authorization": f"Bearer {SECRETS['METRICS_TOKEN']}"})
    seen.append(await metrics.text())
    # Ours at every level, libraries from INFO (aiosqlite's DEBUG quotes SQL parameters); not the access log,
    # which would quote the URLs above with the values sent in them (`qualimon run` has no access log).
    seen += [record.getMessage() for record in caplog.records if record.name.startswith("qualimon")
             or (record.levelno >= logging.INFO and record.name != "aiohttp.access")]
    everything = "\n".join(seen)
    leaked = sorted(name for name, value in SECRETS.items() if value in everything)
    assert leaked == [], [chunk[:600] for chunk in seen if any(v in chunk for v in SECRETS.values())]


async def test_the_config_views_carry_no_secret_even_for_admins(api):
    for path in ("/api/v1/sites", "/api/v1/commitments", "/api/v1/openapi.json"):
        text = await (await api.get(path, "admin")).text()
        assert not any(value in text for value in SECRETS.values())
        assert "password" not in text.lower()
