"""The pipeline with the real runner and store: any message lands in exactly one bucket and the watcher goes on.

Hostile bytes and header values (raw UTF-8, undecodable bytes, NUL, endless
folding) go through parse → classify → match → record; a failure anywhere
in processing quarantines the message (kept, with the error) instead of
stalling the watcher or dropping it.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.clock import FakeClock
from monitor.host import StoreQueries
from monitor.runner import Runner
from monitor.store.records import BUCKETS, NewProbe
from monitor.store.store import Store
from probes.email import pipeline as pipeline_module
from probes.email.pipeline import ReplyPipeline, digest_of
from probes.email.shingles import fingerprint
from probes.email.watcher import FetchedMessage, RetryPolicy, WatcherStats, deliver
from tests.conftest import config_from
from tests.support import databases

T0 = datetime(2026, 5, 7, 8, tzinfo=UTC)
CONFIG = """
calendars: {offices: {holidays: null}}
commitments:
  email.ack:   {channel: email, within: {working_days: 1}, counts: [auto_reply, human_reply]}
  email.reply: {channel: email, within: {working_days: 5}}
mailboxes:
  mystery: {address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: /tmp/unused,
            trust: {authserv_id: mx.probes.example.net}}
sites:
  - {id: petit-palais, name: Petit Palais, calendar: offices, email: {address: contact.pp@example.org, per_month: 0}}
"""
BODY = "Bonjour,\nJe prévois de venir au Petit Palais samedi 13 juin avec ma mère. Réservez-vous ?\nJeanne Martin\n"


async def world(url: str) -> tuple[Store, ReplyPipeline, str]:
    store = Store.open(url)
    config = config_from(CONFIG)
    clock = FakeClock(T0)
    probe = NewProbe(site="petit-palais", channel="email", planned_at=T0, purpose="standard")
    async with store.write() as tx:
        await tx.insert_probes([probe], T0)
        await tx.set_probe(probe.id, T0, status="sent", sent_at=T0, token="QP-7K2M9",
                           message_id="<probe-1@probes.example.net>",
                           details={"to": "contact.pp@example.org", "subject": "Horaires"})
        await tx.set_fingerprint(probe.id, "email", fingerprint(BODY))
    runner = Runner(store, config, {}, clock)
    return store, ReplyPipeline(runner, StoreQueries(store, clock), config, clock), probe.id


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return databases.sqlite_template(tmp_path_factory.mktemp("pipeline-template"))


def fetched(raw: bytes, uid: int = 1) -> FetchedMessage:
    return FetchedMessage("mystery", uid, raw, T0 + timedelta(hours=1), truncated=False, uidvalidity=7)


def header_value() -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=200), st.text(max_size=120).map(lambda t: t.encode("utf-8", "surrogatepass")))


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    fields = [b"Message-ID", b"In-Reply-To", b"References", b"From", b"Subject", b"To", b"Authentication-Results",
              b"Content-Type", b"Date"]
    lines = [name + b": " + draw(header_value()).replace(b"\r", b" ").replace(b"\n", b" ")
             for name in draw(st.lists(st.sampled_from(fields), max_size=8))]
    body = draw(st.sampled_from([b"", BODY.encode(), b"> " + BODY.encode(), draw(st.binary(max_size=500))]))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(raws=st.lists(hostile(), min_size=1, max_size=4))
def test_any_bytes_and_header_values_land_in_one_bucket_and_the_watcher_goes_on(tmp_path_factory, template,
                                                                                 raws: list[bytes]) -> None:
    url = databases.fresh_sqlite(template, tmp_path_factory.mktemp("pipeline"))

    async def scenario() -> None:
        store, pipeline, _ = await world(url)
        stats = WatcherStats()
        try:
            for uid, raw in enumerate(raws, start=1):
                assert await deliver(pipeline.handle, fetched(raw, uid), RetryPolicy(retry_delay=0.001), stats)
            rows = await store.messages("mystery", limit=100)
            assert {row.message.digest for row in rows} == {hashlib.sha256(raw).hexdigest() for raw in raws}
            assert all(row.message.bucket in BUCKETS for row in rows)
            assert stats.poisoned == 0 and (await store.verify_chain()).ok
        finally:
            await store.close()

    asyncio.run(scenario())


async def test_a_message_whose_processing_fails_is_quarantined_kept_and_the_next_one_is_read(
        tmp_path: Path, template: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, pipeline, probe_id = await world(databases.fresh_sqlite(template, tmp_path))
    real = pipeline_module.decide

    def fails_on_the_first(message, *args, **kwargs):  # type: ignore[no-untyped-def]
        if message.subject == "Boom":
            raise ValueError("a rule tripped on this message")
        return real(message, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "decide", fails_on_the_first)
    bad = b"From: contact.pp@example.org\r\nSubject: Boom\r\n\r\nx"
    good = b"From: contact.pp@example.org\r\nSubject: Re\r\nIn-Reply-To: <probe-1@probes.example.net>\r\n\r\nOui."
    try:
        assert await pipeline.handle(fetched(bad, 1)) == "quarantined"
        assert await pipeline.handle(fetched(good, 2)) == "matched:human_reply:message_id"
        assert await pipeline.handle(fetched(bad, 1)) == "duplicate"  # read again after a crash: recorded once
        [quarantined] = await store.messages("mystery", bucket="quarantined")
        assert quarantined.message.reason == "ValueError: a rule tripped on this message"
        assert quarantined.message.digest == digest_of(fetched(bad)) and quarantined.kept_bytes == len(bad)
        kept = await store.message("mystery", quarantined.id)
        assert kept is not None and kept.message.raw == bad
    finally:
        await store.close()


async def test_a_store_outage_is_raised_for_the_watcher_to_wait_not_quarantined(tmp_path: Path, template: Path) -> None:
    store, pipeline, _ = await world(databases.fresh_sqlite(template, tmp_path))
    await store.close()
    broken = ReplyPipeline(pipeline.recorder, pipeline.probes, pipeline.config, pipeline.clock)

    async def down(*args: object, **kwargs: object) -> list[tuple[int, str, bytes]]:
        raise OSError("database connection refused")

    broken.probes.fingerprints_after = down  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await broken.handle(fetched(b"From: a@example.org\r\n\r\nx"))
