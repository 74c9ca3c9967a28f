"""SIGKILL between "our server accepted the email" and "qualimon recorded it", then restart:
the probe is found sent (by its blind copy in the mailbox) — neither lost nor sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from monitor.store import migrate
from monitor.store.records import NewProbe
from monitor.store.store import Store
from tests.conftest import ROOT
from tests.probes.email.test_email_end_to_end import CONFIG, DESK, SMTP_PASSWORD
from tests.support.dovecot import DovecotServer
from tests.support.integration import free_port
from tests.support.smtp import Received, RecordingHandler, password_checker, smtp_server

pytestmark = pytest.mark.integration


async def start_service(config: Path, dovecot: DovecotServer) -> asyncio.subprocess.Process:
    env = {**os.environ, "SMTP_PASSWORD": SMTP_PASSWORD, "IMAP_PASSWORD": dovecot.password}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "monitor", "run", "-c", str(config), cwd=ROOT,
                                                env=env, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)


async def plan_one_probe(url: str) -> str:
    await asyncio.to_thread(migrate.upgrade, url)
    store = Store.open(url)
    now = time.time()
    from datetime import datetime, timezone

    planned = datetime.fromtimestamp(now, timezone.utc)
    probe = NewProbe(site="maison-victor-hugo", channel="email", planned_at=planned, purpose="standard")
    async with store.write() as tx:
        await tx.insert_probes([probe], planned)
    await store.close()
    return probe.id


async def probe_state(url: str, probe_id: str):  # type: ignore[no-untyped-def]
    store = Store.open(url)
    try:
        return await store.probe(probe_id), await store.events_for(probe_id)
    finally:
        await store.close()


async def test_a_kill_between_accepted_and_recorded_neither_loses_nor_resends(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    running: dict[str, asyncio.subprocess.Process] = {}

    async def accept_then_kill(received: Received) -> None:
        if "jeanne.martin@probes.example.net" in received.rcpt_tos:
            await dovecot.aappend(received.data)       # the provider delivers our blind copy…
        running["service"].send_signal(signal.SIGKILL)  # …and qualimon dies before it hears "250"

    handler = RecordingHandler(on_data=accept_then_kill)
    async with smtp_server(handler, authenticator=password_checker("jeanne", SMTP_PASSWORD)) as smtp_port:
        config = tmp_path / "crash.yaml"
        text = CONFIG.format(database=url, http_port=free_port(), smtp_port=smtp_port, imap_port=dovecot.port,
                             imap_user=dovecot.user, desk=DESK)
        config.write_text(text.replace("runner: {timeout_seconds: 10,",
                                       "runner: {timeout_seconds: 2, claim_grace_seconds: 0,"))
        probe_id = await plan_one_probe(url)

        running["service"] = await start_service(config, dovecot)
        assert await asyncio.wait_for(running["service"].wait(), 30) == -signal.SIGKILL
        probe, _ = await probe_state(url, probe_id)
        assert probe.status == "sending"  # killed after DATA, before recording the server's answer

        handler.on_data = None
        running["service"] = await start_service(config, dovecot)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                probe, events = await probe_state(url, probe_id)
                if probe.status == "sent":
                    break
                await asyncio.sleep(0.2)
        finally:
            running["service"].terminate()
            await running["service"].wait()

    museum_copies = [r for r in handler.received if DESK in r.rcpt_tos]
    assert len(museum_copies) == 1, "the email was sent twice"
    assert probe.status == "sent"
    sent = [e for e in events if e.type == "sent"]
    assert sent and sent[0].data["reconciled"] is True and sent[0].data["confirmed_by"] == "own blind copy"
