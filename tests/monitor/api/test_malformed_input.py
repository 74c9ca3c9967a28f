"""Malformed requests get a 400 or 401 that says what was expected, and leave no error or traceback in the log.

Requests are written byte for byte (tests.support.rawhttp): HTTP clients
normalise exactly the inputs a hostile peer would send — header bytes that
are not UTF-8, digits from other scripts, numbers past Python's 4,300-digit
int-from-string limit, nesting past the recursion limit.
"""

from __future__ import annotations

import logging

import pytest

from tests.monitor.api.conftest import TOKENS, Api
from tests.support.rawhttp import errors_logged, get, post, raw_request

ADMIN = f"Authorization: Bearer {TOKENS['admin']}".encode()
HUGE = "9" * 5000
ARABIC_2026 = "%D9%A2%D9%A0%D9%A2%D9%A6"  # ٢٠٢٦: \d matches it, the OpenAPI pattern does not

BAD_QUERIES = [
    "/api/v1/probes?limit=%C2%B2", "/api/v1/probes?limit=%D9%A3", f"/api/v1/probes?limit={HUGE}",
    "/api/v1/probes?limit=99999999999999999999", "/api/v1/calls?limit=%EF%BC%91",
    f"/api/v1/probes?cursor={'A' * 5000}", "/api/v1/probes?cursor=MXzZotmg2aLZpi0wNy0wMVQwMDowMDowMCswMDowMHx4",
    f"/api/v1/probes?from={HUGE}", f"/api/v1/probes?to={ARABIC_2026}-07-01", "/api/v1/compliance?from=%C2%B2",
    f"/api/v1/compliance?from={ARABIC_2026}-07-01T00:00:00Z", "/api/v1/calls?to=9999-12-31",
    "/api/v1/probes?from=9999-12-31T23:59:59-23:59", "/api/v1/probes?from=0001-01-01T00:00:00%2B23:59",
    f"/api/v1/probes/x/evidence/{HUGE}", "/api/v1/probes?site=%ff", "/api/v1/probes?%ff=1",
    "/api/v1/probes?verdict=%00",
]
BAD_BODIES = [
    b'{"action": "discount", "reason": "x", "response_seq": ' + HUGE.encode() + b"}",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"action": "clear", "reason": "\xff\xfe"}',
    b'{"action": "discount", "reason": "x", "response_seq": 1e999}',
    b'{"action": "discount", "reason": "x", "response_seq": NaN}',
]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.mark.parametrize("path", BAD_QUERIES, ids=lambda path: path[8:40])
async def test_a_malformed_parameter_is_a_400_naming_it(api: Api, logged, path: str) -> None:
    status, body = await raw_request(api.client.host, api.client.port, get(path, ADMIN))
    assert status == 400 and b'"error": "bad_request"' in body
    assert errors_logged(logged) == []


@pytest.mark.parametrize("body", BAD_BODIES, ids=["huge-int", "deep-nesting", "not-utf8", "inf", "nan"])
async def test_a_malformed_regrade_body_is_a_400(api: Api, history, logged, body: bytes) -> None:
    path = f"/api/v1/probes/{history['email']}/regrade"
    status, answer = await raw_request(api.client.host, api.client.port,
                                       post(path, body, f"Authorization: Bearer {TOKENS['auditor']}".encode()))
    assert status == 400 and b'"error": "bad_request"' in answer
    assert errors_logged(logged) == []


@pytest.mark.parametrize("value", [b"Bearer \xff\xfe", b"Bearer \x80abc", b"\xff", b"Bearer caf\xc3\xa9",
                                   b"Bearer " + TOKENS["admin"].encode() + b"\xe9"], ids=repr)
@pytest.mark.parametrize("path", ["/api/v1/sites", "/metrics"])
async def test_an_authorization_header_that_is_not_utf8_is_a_401(api: Api, logged, path: str, value: bytes) -> None:
    status, _ = await raw_request(api.client.host, api.client.port, get(path, b"Authorization: " + value))
    assert status == 401
    assert errors_logged(logged) == []


@pytest.mark.parametrize("request_bytes", [
    get("/", b"X-Long: " + b"a" * 9000),          # a header line past aiohttp's 8190 bytes
    get("/", b"Bad Header: 1"),                    # a space in a header name
    get(b"/\xff"),                                 # a raw byte in the path
], ids=["long-header", "bad-header-name", "raw-byte-in-path"])
async def test_a_request_that_is_not_http_is_a_400_without_a_traceback(api: Api, logged,
                                                                       request_bytes: bytes) -> None:
    status, _ = await raw_request(api.client.host, api.client.port, request_bytes)
    assert status == 400
    assert errors_logged(logged) == []
