"""`/healthz` is open to anyone but says only up, degraded or down per check; the details (host names,
file paths, error texts) need a token: any API role, or the metrics token."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.clock import FakeClock
from monitor.store.store import Store
from tests.monitor.api.conftest import SECRETS, TOKENS, build_app, build_service

PRIVATE = ("imap.example.net", "/var/log/asterisk", "Permission denied", "ConnectionRefusedError")


@pytest.fixture
async def client(aiohttp_client: Any, sqlite_store: Store, clock: FakeClock) -> Any:
    service = build_service(sqlite_store, clock)
    now = clock.now()
    service.health.report("database", True, "reachable", now, critical=True)
    service.health.report("mailbox:mystery", False, "imap.example.net:993: ConnectionRefusedError", now)
    service.health.report("calllog:asterisk", False,
                          "cannot read /var/log/asterisk/cdr-csv/Master.csv: Permission denied", now)
    service.health.report("job:plan", True, "ok", now)
    return await aiohttp_client(build_app(service))


async def health(client: Any, token: str | None) -> tuple[int, dict[str, Any], str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = await client.get("/healthz", headers=headers)
    text = await response.text()
    return response.status, await response.json(), text


@pytest.mark.parametrize("token", [None, "not-a-token-of-ours-0000", ""])
async def test_without_a_valid_token_it_says_only_the_state_of_each_check(client: Any, token: str | None) -> None:
    status, body, text = await health(client, token)
    assert status == 200 and body["status"] == "degraded"
    assert {name: (c["ok"], c["detail"]) for name, c in body["checks"].items()} == {
        "database": (True, "up"), "mailbox:mystery": (False, "degraded"),
        "calllog:asterisk": (False, "degraded"), "job:plan": (True, "up")}
    assert all(c["since"] for c in body["checks"].values())
    assert not [word for word in PRIVATE if word in text]


@pytest.mark.parametrize("token", [*TOKENS.values(), SECRETS["METRICS_TOKEN"]],
                         ids=[*TOKENS, "metrics"])
async def test_a_valid_token_shows_the_details(client: Any, token: str) -> None:
    status, body, text = await health(client, token)
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["calllog:asterisk"]["detail"] == (
        "cannot read /var/log/asterisk/cdr-csv/Master.csv: Permission denied")
    assert all(word in text for word in PRIVATE)


async def test_a_critical_check_failing_is_down_for_everyone(aiohttp_client: Any, sqlite_store: Store,
                                                              clock: FakeClock) -> None:
    service = build_service(sqlite_store, clock)
    service.health.report("database", False, "unreachable: OSError: db.example.net:5432", clock.now(),
                          critical=True)
    client = await aiohttp_client(build_app(service))
    status, body, text = await health(client, None)
    assert status == 503 and body == {"status": "down", "checks": {"database": {
        "ok": False, "detail": "down", "since": body["checks"]["database"]["since"]}}}
    assert "db.example.net" not in text
