"""An API under test: a config with recognisable secrets, the store (SQLite and PostgreSQL), a runner with
fake probe kinds on a fake clock, and the app exactly as `monitor.http.make_app` builds it."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.clock import FakeClock
from monitor.config import Config
from monitor.health import Health
from monitor.http import make_app
from monitor.kinds import ProbeKind, ProbeOutcome, Response
from monitor.runner import Runner
from monitor.store.records import EvidenceItem, MailboxMessage
from monitor.store.store import Store
from tests.conftest import config_from
from tests.support import probing

SECRETS = {
    "VIEWER_TOKEN": "viewer-token-7a1c9e0f3b5d",
    "AUDITOR_TOKEN": "auditor-token-52f8d1a04c6e",
    "ADMIN_TOKEN": "admin-token-e93b07c2d6f1",
    "SMTP_PASSWORD": "smtp-password-d41d8cd98f00",
    "IMAP_PASSWORD": "imap-password-0cc175b9c0f1",
    "SIP_PASSWORD": "sip-password-92eb5ffee6ae",
    "METRICS_TOKEN": "metrics-token-4a8a08f09d37",
}
TOKENS = {"viewer": SECRETS["VIEWER_TOKEN"], "auditor": SECRETS["AUDITOR_TOKEN"], "admin": SECRETS["ADMIN_TOKEN"]}
OUR_MAILBOX = "jeanne.martin@probes.example.net"

CONFIG = """
timezone: Europe/Paris
http: {listen: "127.0.0.1:0", metrics_token: "${METRICS_TOKEN}"}
tokens:
  - {name: grafana, role: viewer, token: "${VIEWER_TOKEN}"}
  - {name: audit-2026, role: auditor, token: "${AUDITOR_TOKEN}"}
  - {name: ops, role: admin, token: "${ADMIN_TOKEN}"}
calendars:
  always:
    working_days: [mon, tue, wed, thu, fri, sat, sun]
    holidays: null
    opening_hours: {daily: ["00:00-24:00"]}
commitments:
  email.ack:   {channel: email, within: {seconds: 60}, counts: [auto_reply, human_reply]}
  email.reply: {channel: email, within: {seconds: 300}}
  phone.answer: {channel: phone, within: {rings: 5}, during: open}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {host: smtp.example.net, username: jeanne, password: "${SMTP_PASSWORD}"}
    imap: {host: imap.example.net, username: jeanne, password: "${IMAP_PASSWORD}"}
phone_lines:
  mystery:
    sip: {proxy: "sip:trunk.example.net", username: "33199001000", password: "${SIP_PASSWORD}",
          from: "sip:+33199001000@trunk.example.net"}
runner: {timeout_seconds: 5, claim_grace_seconds: 0}
compliance: {min_samples: 2}
sites:
  - id: petit-palais
    name: Petit Palais
    calendar: always
    email: {address: info.pp@example.org, per_month: 0}
    phone: {number: "+33199001234", per_month: 0}
  - id: maison-victor-hugo
    name: Maison de Victor Hugo
    calendar: always
    email: {address: contact.mvh@example.org, per_month: 0}
"""

# Everything a spreadsheet or a browser could trip on, in what we record as the subject.
TRICKY_SUBJECT = 'Horaires "groupes", tarifs\nréduits <script>alert(1)</script>'
HOSTILE_HTML = b"<html><script>alert('evidence')</script></html>"


class FakeEmail:
    """Sends nothing; records the subject and the message as evidence, like the real email kind."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.subject = TRICKY_SUBJECT

    async def run(self, probe, ctx) -> ProbeOutcome:  # type: ignore[no-untyped-def]
        details = {"to": "info.pp@example.org", "subject": self.subject, "template": "horaires"}
        await ctx.mark_sending(token=f"QP-{probe.id[-5:]}", message_id=f"<{probe.id}@probes.example.net>",
                               **details)
        return ProbeOutcome(sent_at=self.clock.now(), details=details, evidence=(
            EvidenceItem("sent.eml", "message/rfc822", f"Subject: {self.subject}\r\n\r\nBonjour".encode()),
            EvidenceItem("reply \"page\".html", "text/html", HOSTILE_HTML),
        ))

    async def reconcile(self, probe, ctx):  # type: ignore[no-untyped-def]
        return None


class FakePhone:
    """A call answered after 12 s of ringing, with its transcript as text evidence."""

    def __init__(self, clock: FakeClock):
        self.clock = clock

    async def run(self, probe, ctx) -> ProbeOutcome:  # type: ignore[no-untyped-def]
        await ctx.mark_sending(call_id=f"call-{probe.id}", number="+33199001234", line="mystery")
        now = self.clock.now()
        return ProbeOutcome(sent_at=now, timer_started_at=now, finished=True,
                            responses=(Response("answered", now + timedelta(seconds=12), {"rings": 3}),),
                            details={"call_outcome": "answered", "ring_seconds": 12.0, "rings": 3},
                            evidence=(EvidenceItem("sip-transcript.txt", "text/plain; charset=utf-8",
                                                   b"INVITE sip:+33199001234@trunk.example.net SIP/2.0\n"),))

    async def reconcile(self, probe, ctx):  # type: ignore[no-untyped-def]
        return None


@dataclass
class ApiService:
    """What `make_app` and the API read from the real `Service`."""

    config: Config
    store: Store
    runner: Runner
    clock: FakeClock
    health: Health
    registry: CollectorRegistry


def api_config(**overrides: str) -> Config:
    return config_from(CONFIG, **{**SECRETS, **overrides})


def build_service(store: Store, clock: FakeClock, config: Config | None = None) -> ApiService:
    config = config or api_config()
    kinds = {"email": ProbeKind("email", FakeEmail(clock).run, FakeEmail(clock).reconcile),
             "phone": ProbeKind("phone", FakePhone(clock).run, FakePhone(clock).reconcile)}
    runner = Runner(store, config, kinds, clock)
    return ApiService(config, store, runner, clock, Health(), CollectorRegistry())


def build_app(service: ApiService) -> Any:
    return make_app(service)  # which mounts the API


# Re-exported: the API tests import them from here.
plan = probing.plan
send_due = probing.dispatch


class Api:
    """The test client with one line per role: `await api.get("/api/v1/sites", role="viewer")`."""

    def __init__(self, client: Any, service: ApiService):
        self.client = client
        self.service = service

    @staticmethod
    def headers(role: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {TOKENS[role]}"
        return headers

    async def get(self, path: str, role: str | None = "admin", params: Any = None,
                  headers: dict[str, str] | None = None) -> Any:
        return await self.client.get(path, params=params, headers=self.headers(role, headers))

    async def json(self, path: str, role: str | None = "admin", params: Any = None, status: int = 200) -> Any:
        response = await self.get(path, role, params)
        body = await response.json()
        assert response.status == status, body
        return body

    async def post(self, path: str, body: Any, role: str | None = "auditor") -> Any:
        return await self.client.post(path, json=body, headers=self.headers(role))

    async def walk(self, path: str = "/api/v1/probes", **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.json(path, params={**params, **({"cursor": cursor} if cursor else {})})
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items


@pytest.fixture
def service(store: Store, clock: FakeClock) -> ApiService:
    return build_service(store, clock)


@pytest.fixture
async def api(aiohttp_client: Any, service: ApiService) -> Api:
    return Api(await aiohttp_client(build_app(service)), service)


@pytest.fixture
async def history(service: ApiService, clock: FakeClock) -> dict[str, str]:
    """An answered email probe, a call, and a probe still planned; returns their ids by name."""
    store, runner = service.store, service.runner
    email = await plan(store, clock.now())
    call = await plan(store, clock.now() - timedelta(seconds=1), channel="phone")
    await send_due(runner)
    clock.advance(30)
    await runner.record_response(email, Response("auto_reply", clock.now()))
    planned = await plan(store, clock.now() + timedelta(days=3), site="maison-victor-hugo")
    return {"email": email, "call": call, "planned": planned}


async def held_message(service: ApiService, probe_id: str, *, bucket: str = "held") -> int:
    """A message of the mailbox `mystery`, held for `probe_id` (or in another bucket, of no probe); its id."""
    number = next(_MESSAGES)
    raw = f"From: contact.pp@example.org\r\nSubject: Re: visite {number}\r\n\r\nBonjour.\r\n".encode()
    digest = hashlib.sha256(raw).hexdigest()
    at = service.clock.now()
    probe = probe_id if bucket == "held" else None
    message = MailboxMessage("mystery", "email", digest, f"imap:1:{number}", bucket, "sender not authenticated", at,
                             {"from": "contact.pp@example.org", "subject": f"Re: visite {number}"}, probe,
                             "correspondent" if probe else None, {"result": "none", "method": None, "domain": None},
                             "human_reply", True, None, raw, len(raw), digest)
    response = Response("human_reply", at, {"method": "correspondent"}, counts=True,
                        held="sender not authenticated") if probe else None
    await service.runner.record_message(message, response)
    rows = await service.store.messages("mystery", limit=1)
    return rows[0].id


_MESSAGES = itertools.count(1)
