"""CSV export: opens in a spreadsheet (BOM, CRLF, RFC 4180 quoting), streams in constant memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

from monitor.api.csvout import BOM, COLUMNS, csv_chunks, write_csv
from tests.monitor.api.conftest import TRICKY_SUBJECT


def document(i: int, *, subject: str = "Horaires", reason: str | None = None,
             verdicts: dict[str, Any] | None = None) -> dict[str, Any]:
    if verdicts is None:
        verdicts = {"email.ack": {"verdict": "met", "deadline": "2026-06-02T08:31:00Z", "delay_seconds": 30.0,
                                  "business_delay_seconds": 30.0, "late": False, "reason": None},
                    "email.reply": {"verdict": "missed", "deadline": "2026-06-09T22:00:00Z",
                                    "delay_seconds": 605000.25, "business_delay_seconds": 432000.0, "late": True,
                                    "reason": reason}}
    return {"id": f"P{i:06d}", "site": "petit-palais", "channel": "email", "purpose": "standard",
            "origin": "plan", "status": "closed", "planned_at": "2026-06-02T08:30:00Z",
            "sent_at": "2026-06-02T08:30:00Z", "reason": None,
            "events": [{"seq": 1, "at": "2026-06-02T08:30:00Z", "type": "send_started",
                        "data": {"subject": subject}}],
            "verdicts": verdicts}


async def documents(n: int, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    for i in range(n):
        yield document(i, **kwargs)


async def export(n: int, **kwargs: Any) -> bytes:
    out = io.BytesIO()
    await write_csv(documents(n, **kwargs), out)
    return out.getvalue()


def parse(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8")
    assert text.startswith(BOM)
    return list(csv.reader(io.StringIO(text[len(BOM):], newline="")))


async def test_it_starts_with_a_bom_and_the_header() -> None:
    data = await export(0)
    assert data.startswith(b"\xef\xbb\xbf")
    assert parse(data) == [list(COLUMNS)]


async def test_a_subject_with_quotes_commas_and_a_newline_survives_a_round_trip() -> None:
    data = await export(1, subject=TRICKY_SUBJECT)
    rows = parse(data)
    assert [row[COLUMNS.index("subject")] for row in rows[1:]] == [TRICKY_SUBJECT, TRICKY_SUBJECT]
    assert '"Horaires ""groupes"", tarifs\nréduits' in data.decode()


async def test_records_end_with_crlf_as_rfc_4180_asks() -> None:
    text = (await export(2)).decode()
    assert text.count("\r\n") == 5 and text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "")


async def test_it_writes_one_row_per_probe_and_commitment_with_plain_values() -> None:
    header, ack, reply = parse(await export(1))
    row = dict(zip(header, reply))
    assert dict(zip(header, ack))["commitment"] == "email.ack"
    assert row["commitment"] == "email.reply" and row["verdict"] == "missed"
    assert (row["delay_seconds"], row["business_delay_seconds"], row["late"]) == ("605000.25", "432000", "true")
    assert row["verdict_reason"] == "" and row["probe_reason"] == ""


async def test_a_probe_without_verdicts_still_has_its_row() -> None:
    _, row = parse(await export(1, verdicts={}))
    assert row[:3] == ["P000000", "petit-palais", "email"] and row[COLUMNS.index("commitment"):] == [""] * 10


async def test_a_text_cell_that_would_run_as_a_formula_is_shown_as_text() -> None:
    rows = parse(await export(1, subject="=HYPERLINK(\"http://example.com\")", reason="-1+1"))
    assert rows[1][COLUMNS.index("subject")] == "'=HYPERLINK(\"http://example.com\")"
    assert rows[2][COLUMNS.index("verdict_reason")] == "'-1+1"


async def test_it_streams_in_chunks_and_reports_progress() -> None:
    seen: list[int] = []
    chunks = [chunk async for chunk in csv_chunks(documents(450), progress=seen.append)]
    assert len(chunks) == 3 and seen == [200, 400, 450]
    assert len(parse(b"".join(chunks))) == 1 + 900


async def test_write_csv_returns_the_number_of_probes() -> None:
    out = io.BytesIO()
    assert await write_csv(documents(7), out) == 7


async def test_memory_stays_flat_whatever_the_number_of_probes() -> None:
    async def peak(n: int) -> int:
        tracemalloc.start()
        async for _ in csv_chunks(documents(n)):
            pass
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    small, large = await peak(2_000), await peak(20_000)
    assert large < small * 1.5 and large < 2_000_000


# ------------------------------------------------------------------ over HTTP


async def test_format_csv_streams_the_probe_list_as_a_download(api, history):
    response = await api.get("/api/v1/probes", params={"format": "csv", "site": "petit-palais"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8; header=present"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = parse(await response.read())
    assert {(r[0], r[COLUMNS.index("commitment")]) for r in rows[1:]} == {
        (history["email"], "email.ack"), (history["email"], "email.reply"), (history["call"], "phone.answer")}
    subject = {r[COLUMNS.index("subject")] for r in rows[1:] if r[0] == history["email"]}
    assert subject == {TRICKY_SUBJECT}


async def test_accept_text_csv_gives_csv_unless_json_is_preferred(api, history):
    as_csv = await api.get("/api/v1/probes", headers={"Accept": "text/csv"})
    assert as_csv.headers["Content-Type"].startswith("text/csv")
    as_json = await api.get("/api/v1/probes", headers={"Accept": "application/json, text/csv;q=0.5"})
    assert as_json.headers["Content-Type"].startswith("application/json")
    forced = await api.get("/api/v1/probes", params={"format": "json"}, headers={"Accept": "text/csv"})
    assert forced.headers["Content-Type"].startswith("application/json")


async def test_csv_ignores_the_page_limit_and_starts_after_the_cursor(api, history):
    first = await api.json("/api/v1/probes", params={"limit": 1})
    response = await api.get("/api/v1/probes", params={"format": "csv", "limit": 1, "cursor": first["next_cursor"]})
    ids = {row[0] for row in parse(await response.read())[1:]}
    assert ids == {history["email"], history["planned"]}


async def test_the_cli_export_the_api_and_the_full_documents_give_the_same_csv(api, store, history):
    from monitor.api.csvout import export_csv
    from monitor.history import iter_documents

    cli = io.BytesIO()
    assert await export_csv(store, cli) == 3
    from_documents = io.BytesIO()
    await write_csv(iter_documents(store), from_documents)
    over_http = await (await api.get("/api/v1/probes", params={"format": "csv"})).read()
    assert cli.getvalue() == from_documents.getvalue() == over_http


async def test_the_cli_export_takes_a_period_and_a_site(store, history):
    from datetime import datetime, timezone

    from monitor.api.csvout import export_csv

    out = io.BytesIO()
    count = await export_csv(store, out, datetime(2026, 6, 3, tzinfo=timezone.utc), None, site="maison-victor-hugo")
    assert count == 1 and parse(out.getvalue())[1][0] == history["planned"]
