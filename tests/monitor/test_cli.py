"""The command line, driven as an operator would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.clock import SystemClock
from monitor.config import load_config
from monitor.runner import Runner
from monitor.store.records import NewProbe
from monitor.store.store import Store
from tests.conftest import PARIS, ROOT, paris_in
from tests.support.integration import free_port


@pytest.fixture
def paris_copy(tmp_path: Path) -> Path:
    """The Paris config pointed at a database in a temp dir."""
    return paris_in(tmp_path)


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_deadline_skips_may_day_and_victory_day(capsys) -> None:
    code, out, _ = run_cli("deadline", "-c", str(PARIS), "--site", "maison-victor-hugo", "--commitment",
                           "email.reply", "--start", "2026-04-30T10:00:00+02:00", capsys=capsys)
    assert code == 0 and out.strip() == "2026-05-12T00:00:00+02:00"


def test_deadline_of_a_call_is_plain_elapsed_time(capsys) -> None:
    code, out, _ = run_cli("deadline", "-c", str(PARIS), "--site", "petit-palais", "--commitment",
                           "phone.answer", "--start", "2026-03-29T01:59:50+01:00", capsys=capsys)
    assert code == 0 and out.strip() == "2026-03-29T03:00:15+02:00"  # 25 s across the DST jump


def test_deadline_names_an_unknown_site(capsys) -> None:
    code, _, err = run_cli("deadline", "-c", str(PARIS), "--site", "louvre", "--commitment", "email.reply",
                           "--start", "2026-04-30T10:00:00+02:00", capsys=capsys)
    assert code == 2 and "no site 'louvre'" in err


def test_deadline_explains_a_bad_instant(capsys) -> None:
    code, _, err = run_cli("deadline", "-c", str(PARIS), "--site", "petit-palais", "--commitment", "email.reply",
                           "--start", "yesterday", capsys=capsys)
    assert code == 2 and "not an ISO 8601 instant" in err


def test_db_upgrade_twice_is_a_no_op_the_second_time(paris_copy: Path, capsys) -> None:
    assert run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)[0] == 0
    db = paris_copy.parent / "q.db"
    before = db.stat().st_size
    code, out, _ = run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)
    assert code == 0 and "schema at revision" in out and db.stat().st_size == before


async def _probe_sent_three_days_ago(config_path: Path) -> str:
    config = load_config(config_path)
    store = Store.open(config.database)
    now = datetime.now(timezone.utc) - timedelta(days=3)
    probe = NewProbe(site="petit-palais", channel="email", planned_at=now, purpose="standard")
    async with store.write() as tx:
        await tx.insert_probes([probe], now)
        await tx.set_probe(probe.id, now, status="sent", sent_at=now)
    await Runner(store, config, {}, SystemClock()).reevaluate(probe.id)
    await store.close()
    return probe.id


def test_status_and_export_show_what_the_store_holds(paris_copy: Path, capsys) -> None:
    assert run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)[0] == 0
    probe_id = asyncio.run(_probe_sent_three_days_ago(paris_copy))

    code, out, _ = run_cli("status", "-c", str(paris_copy), capsys=capsys)
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("petit-palais") and "email.ack" in line)
    assert row.split()[2:5] == ["1", "0", "1"]  # n, met, missed: three days is past one working day

    code, out, err = run_cli("export", "-c", str(paris_copy), capsys=capsys)
    [line] = out.splitlines()
    document = json.loads(line)
    assert code == 0 and "exported 1 probes" in err
    assert {"id", "site", "channel", "status", "planned_at", "sent_at", "events", "verdicts"} <= set(document)
    assert document["id"] == probe_id and document["sent_at"].endswith("Z")
    assert document["verdicts"]["email.ack"]["verdict"] == "missed"
    assert set(document["verdicts"]["email.ack"]) == {
        "verdict", "deadline", "delay_seconds", "business_delay_seconds", "late", "reason"}


def test_export_refuses_a_period_that_ends_before_it_starts(paris_copy: Path, capsys) -> None:
    run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)
    code, _, err = run_cli("export", "-c", str(paris_copy), "--from", "2026-07-01", "--to", "2026-06-01",
                           capsys=capsys)
    assert code == 2 and "--to is before --from" in err


def test_verify_reports_an_intact_chain(paris_copy: Path, capsys) -> None:
    run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)
    code, out, _ = run_cli("verify", "-c", str(paris_copy), capsys=capsys)
    assert code == 0 and "chain intact" in out


def test_run_serves_healthz_and_stops_cleanly_on_sigterm(paris_copy: Path) -> None:
    port = free_port()
    paris_copy = paris_in(paris_copy.parent, port)
    process = subprocess.Popen([sys.executable, "-m", "monitor", "run", "-c", str(paris_copy)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(100):  # up to ~10 s to start
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    body = json.load(response)
                    break
            except OSError:
                time.sleep(0.1)
        assert body is not None and body["status"] == "ok" and body["checks"]["database"]["ok"]
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()  # never leave a hung service behind
            _, err = process.communicate()
    assert process.returncode == 0, err
    assert "stopping" in err


def test_report_writes_an_index_for_the_period(paris_copy: Path, tmp_path: Path, capsys) -> None:
    run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)
    code, out, _ = run_cli("report", "-c", str(paris_copy), "--period", "2026-Q3", "-o", str(tmp_path / "r"),
                           capsys=capsys)
    index = Path(out.strip())
    assert code == 0 and index == tmp_path / "r" / "index.html" and index.is_file()
    assert "Maison de Victor Hugo" in index.read_text(encoding="utf-8")


def test_report_explains_a_period_it_cannot_read(paris_copy: Path, tmp_path: Path, capsys) -> None:
    run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)
    code, _, err = run_cli("report", "-c", str(paris_copy), "--period", "Q3", "-o", str(tmp_path / "r"),
                           capsys=capsys)
    assert code == 2 and "2026-Q3" in err


def test_export_as_csv_streams_rows_a_spreadsheet_opens(paris_copy: Path, capsysbinary) -> None:
    import csv
    import io

    main(["db", "upgrade", "-c", str(paris_copy)])
    probe_id = asyncio.run(_probe_sent_three_days_ago(paris_copy))
    capsysbinary.readouterr()
    assert main(["export", "-c", str(paris_copy), "--format", "csv"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith("\ufeff".encode()) and b"\r\n" in out
    rows = list(csv.DictReader(io.StringIO(out.decode("utf-8-sig"))))
    assert rows and {r["probe_id"] for r in rows} == {probe_id}


def test_verify_names_the_first_edited_event_and_exits_1(paris_copy: Path, capsys) -> None:
    import sqlite3

    run_cli("db", "upgrade", "-c", str(paris_copy), capsys=capsys)
    asyncio.run(_probe_sent_three_days_ago(paris_copy))
    with sqlite3.connect(paris_copy.parent / "q.db") as db:
        db.execute("UPDATE events SET data = replace(data, 'petit-palais', 'louvre') WHERE seq = 1")
    code, _, err = run_cli("verify", "-c", str(paris_copy), capsys=capsys)
    assert code == 1 and "chain BROKEN at event 1" in err and "edited" in err


async def test_probe_sends_one_email_now_and_prints_its_id(tmp_path: Path) -> None:
    from tests.support.smtp import RecordingHandler, smtp_server

    handler = RecordingHandler()
    async with smtp_server(handler) as port:
        config = paris_in(tmp_path)
        text = config.read_text().replace("{host: relay.example.net, port: 25, tls: starttls}",
                                          f"{{host: 127.0.0.1, port: {port}, tls: none}}")
        config.write_text(text)
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "monitor", "probe", "-c", str(config),
                                                       "--site", "petit-palais", "--channel", "email"],
                                      cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    probe_id = out.stdout.strip()
    assert len(probe_id) == 26
    [received] = handler.received
    assert "accueil.petit-palais@example.org" in received.rcpt_tos


def test_probe_through_a_dead_trunk_prints_the_id_and_says_void(paris_copy: Path, capsys) -> None:
    text = paris_copy.read_text().replace("sip:trunk.example.net:5060;transport=udp",
                                          f"sip:127.0.0.1:{free_port()};transport=tcp")
    paris_copy.write_text(text)
    code, out, err = run_cli("probe", "-c", str(paris_copy), "--site", "petit-palais", "--channel", "phone",
                             capsys=capsys)
    assert code == 1 and len(out.strip()) == 26 and "void: sip_failed" in err


ROTATION = """
database: sqlite+aiosqlite:///{db}
calendars: {{offices: {{}}}}
commitments:
  email.reply: {{channel: email, within: {{working_days: 5}}}}
mailboxes:
  jeanne: {{address: "Jeanne Martin <jeanne.martin@probes.example.net>", maildir: /tmp/unused}}
  paul:
    address: "Paul Durand <paul.durand@probes.example.net>"
    maildir: /tmp/unused
    signature: "Paul Durand\\n06 99 00 12 34"
    client: {{header: X-Mailer, value: "Apple Mail (2.3774.500.171.1.1)"}}
sites:
  - {{id: mvh, name: Maison de Victor Hugo, calendar: offices,
      email: {{address: contact.mvh@example.org, per_month: 0, mailboxes: {{jeanne: 1, paul: 1}}}}}}
"""


def test_probes_sample_prints_what_the_next_probes_will_say_as_they_will_say_it(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rotation.yaml"
    path.write_text(ROTATION.format(db=tmp_path / "q.db"), encoding="utf-8")
    assert run_cli("db", "upgrade", "-c", str(path), capsys=capsys)[0] == 0
    planned = asyncio.run(_plan_one(path))
    code, out, _ = run_cli("probes", "sample", "-c", str(path), "--site", "mvh", "-n", "6", capsys=capsys)
    samples = out.split("=== ")[1:]
    assert code == 0 and len(samples) == 6 and samples[0].startswith(f"probe {planned}")
    assert all("To: contact.mvh@example.org" in s and "Maison de Victor Hugo" in s for s in samples)
    assert all("Réf." not in s and "QP-" not in s for s in samples)  # token: off
    personas = {s.split("mailbox ")[1].split("]")[0] for s in samples}
    assert personas <= {"jeanne", "paul"}
    assert all(("X-Mailer: Apple Mail" in s and "06 99 00 12 34" in s) or "User-Agent:" in s for s in samples)
    again = run_cli("probes", "sample", "-c", str(path), "--site", "mvh", "-n", "1", capsys=capsys)[1]
    assert summary_of(again.split("=== ")[1]) == summary_of(samples[0])  # the same probe always reads the same


def summary_of(sample: str) -> list[str]:
    return [line for line in sample.splitlines() if line.startswith(("[template", "Subject:", "From:"))]


def test_probes_sample_names_an_unknown_site(tmp_path: Path, capsys) -> None:
    path = tmp_path / "rotation.yaml"
    path.write_text(ROTATION.format(db=tmp_path / "q.db"), encoding="utf-8")
    code, _, err = run_cli("probes", "sample", "-c", str(path), "--site", "nowhere", capsys=capsys)
    assert code == 2 and "nowhere" in err


async def _plan_one(config_path: Path) -> str:
    config = load_config(config_path)
    store = Store.open(config.database)
    probe = NewProbe(site="mvh", channel="email", planned_at=datetime.now(timezone.utc) + timedelta(days=2),
                     purpose="standard")
    async with store.write() as tx:
        await tx.insert_probes([probe], probe.planned_at)
    await store.close()
    return probe.id
