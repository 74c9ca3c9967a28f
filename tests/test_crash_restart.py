"""SIGKILL in the middle of dispatching, then restart: no probe is lost, none is sent twice."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from monitor.store import migrate
from monitor.store.records import NewProbe
from monitor.store.store import Store
from tests.support.integration import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "support" / "crashy_service.py"
PROBES = 40

CONFIG = """
database: sqlite+aiosqlite:///{db}
http: {{listen: "127.0.0.1:{port}"}}
calendars:
  offices: {{}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  mystery: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: {tmp}/Maildir}}
runner: {{timeout_seconds: 1, claim_grace_seconds: 0, dispatch_interval_seconds: 0.05, max_concurrency: 3}}
sites:
  - {{id: petit-palais, name: Petit Palais, calendar: offices, email: {{address: info.pp@example.org, per_month: 0}}}}
"""


def start(config: Path, record: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, str(SCRIPT), str(config), str(record)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready", "the service did not start"
    return process


def sent_lines(record: Path) -> list[str]:
    return record.read_text().split() if record.exists() else []


async def plan_probes(url: str) -> list[str]:
    await asyncio.to_thread(migrate.upgrade, url)
    store = Store.open(url)
    now = datetime.now(timezone.utc)
    probes = [NewProbe(site="petit-palais", channel="email", planned_at=now, purpose="standard")
              for _ in range(PROBES)]
    async with store.write() as tx:
        await tx.insert_probes(probes, now)
    await store.close()
    return [p.id for p in probes]


async def statuses(url: str) -> Counter[str]:
    store = Store.open(url)
    try:
        return Counter(p.status for p in await store.probes_where())
    finally:
        await store.close()


async def interruptions(url: str) -> Counter[str]:
    """How the restarts recovered: claims released, sends found delivered by reconciliation."""
    store = Store.open(url)
    try:
        events = await store.events_since(0, limit=100_000)
    finally:
        await store.close()
    found = Counter(e.type for e in events if e.type == "released")
    found["reconciled"] = sum(1 for e in events if e.type == "sent" and e.data.get("reconciled"))
    return found


async def test_killing_the_service_mid_dispatch_neither_loses_nor_doubles_a_probe(tmp_path: Path) -> None:
    db, record = tmp_path / "crash.db", tmp_path / "sent.log"
    config = tmp_path / "crash.yaml"
    config.write_text(CONFIG.format(db=db, port=free_port(), tmp=tmp_path))
    url = f"sqlite+aiosqlite:///{db}"
    ids = await plan_probes(url)
    rng = random.Random(11)
    kills_mid_plan = 0
    for _ in range(12):  # bounded: kill at random moments while the plan drains
        process = start(config, record)
        time.sleep(rng.uniform(0.05, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills_mid_plan += 0 < len(sent_lines(record)) < PROBES
        if len(sent_lines(record)) >= PROBES:
            break
    process = start(config, record)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (await statuses(url))["sent"] == PROBES:
                break
            await asyncio.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)
    counts = Counter(sent_lines(record))
    assert kills_mid_plan >= 1, "no kill landed while probes were being dispatched"
    interrupted = await interruptions(url)
    print(f"kills mid-plan: {kills_mid_plan}, recoveries: {interrupted}")
    assert sorted(counts) == sorted(ids), "a probe was lost"
    assert max(counts.values()) == 1, f"sent twice: {[k for k, v in counts.items() if v > 1]}"
    assert await statuses(url) == Counter({"sent": PROBES})
    assert process.returncode == 0 or process.returncode == -signal.SIGTERM
