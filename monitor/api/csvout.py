"""Probe history as CSV that opens as-is in a spreadsheet; shared by the API and `qualimon export --format csv`.

Shape: one row per probe × commitment (the tidy layout a pivot table or an
auditor's filter wants, with fixed columns whatever the config).  Rows of a
`quality` commitment also fill `quality_score`, `criteria` (each criterion as
it stands, `name=met`, `name=not_met`; `(alice)` after one an auditor decided,
`?` after one the machine is unsure of) and `decided_by` (the auditors).  A probe
without verdicts yet (planned, cancelled) still gets one row, its
commitment columns empty.  Columns: see `COLUMNS`.

Encoding: UTF-8 with a byte-order mark (Excel then reads accents right),
RFC 4180 quoting (a field with a comma, a quote or a line break is quoted,
quotes doubled), CRLF between records.  Instants are ISO 8601 UTC with `Z`,
delays are seconds, booleans `true`/`false`, absent values empty.

Free-text cells (subject, reasons) that start with `=`, `+`, `-`, `@`, tab
or carriage return get a leading `'`, so a spreadsheet shows them as text
instead of evaluating them as a formula (CSV injection): a reason can quote
a remote server's words.

Input: export documents (`monitor.history.probe_document`), or the lighter
`monitor.api.queries.csv_document` (no events, the subject given) that
`export_csv` and the API read: two tables instead of three.

Memory is constant: documents come from an async iterator (a page at a
time), rows are encoded in chunks and handed on at once.  `progress` is
called after each chunk with the number of probes written so far.

For `qualimon export --format csv`:

    count = await export_csv(store, sys.stdout.buffer, start, end, site=args.site, progress=bar.update_to)
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from monitor.config.models import Config
    from monitor.store.store import Store

BOM = "\ufeff"
COLUMNS = ("probe_id", "site", "channel", "purpose", "origin", "status", "planned_at", "sent_at",
           "probe_reason", "subject", "commitment", "verdict", "deadline", "delay_seconds",
           "business_delay_seconds", "late", "verdict_reason", "quality_score", "criteria", "decided_by")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PROBES_PER_CHUNK = 200

Progress = Callable[[int], None]


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def text_cell(value: str | None) -> str:
    text = cell(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def subject_of(document: dict[str, Any]) -> str | None:
    """The subject we sent (email probes only): given as `subject`, or found in the send events."""
    if "subject" in document:
        return document["subject"]
    for event in document.get("events", ()):
        subject = event.get("data", {}).get("subject")
        if isinstance(subject, str):
            return subject
    return None


def document_rows(document: dict[str, Any]) -> Iterator[list[str]]:
    probe = [document["id"], document["site"], document["channel"], document["purpose"], document["origin"],
             document["status"], cell(document["planned_at"]), cell(document["sent_at"]),
             text_cell(document.get("reason")), text_cell(subject_of(document))]
    verdicts = document.get("verdicts") or {}
    if not verdicts:
        yield probe + [""] * 10
        return
    for commitment, v in verdicts.items():
        score, criteria, deciders = v.get("quality") or ("", "", "")
        yield probe + [commitment, v["verdict"], cell(v["deadline"]), cell(v["delay_seconds"]),
                       cell(v["business_delay_seconds"]), cell(v["late"]), text_cell(v["reason"]), score,
                       criteria, text_cell(deciders)]


async def csv_chunks(documents: AsyncIterable[dict[str, Any]], *,
                     progress: Progress | None = None) -> AsyncIterator[bytes]:
    """The CSV file as byte chunks: BOM and header first, then a chunk per `PROBES_PER_CHUNK` probes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    buffer.write(BOM)
    writer.writerow(COLUMNS)
    count = 0
    async for document in documents:
        writer.writerows(document_rows(document))
        count += 1
        if count % PROBES_PER_CHUNK == 0:
            yield _drain(buffer)
            if progress is not None:
                progress(count)
    yield _drain(buffer)
    if progress is not None:
        progress(count)


COMPLIANCE_COLUMNS = ("site", "commitment", "n", "met", "missed", "pending", "void", "ratio", "ci_low", "ci_high",
                      "target", "status", "needed")


def compliance_csv(rows: Iterable[dict[str, Any]]) -> bytes:
    """Compliance rows (`Compliance.public()`) as one CSV file, same encoding as the probe history."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    buffer.write(BOM)
    writer.writerow(COMPLIANCE_COLUMNS)
    writer.writerows([text_cell(row[c]) if c in ("site", "commitment") else cell(row[c]) for c in COMPLIANCE_COLUMNS]
                     for row in rows)
    return buffer.getvalue().encode("utf-8")


def _drain(buffer: io.StringIO) -> bytes:
    data = buffer.getvalue().encode("utf-8")
    buffer.seek(0)
    buffer.truncate()
    return data


async def write_csv(documents: AsyncIterable[dict[str, Any]], out: BinaryIO, *,
                    progress: Progress | None = None) -> int:
    """Write the CSV to a binary file (the CLI passes `sys.stdout.buffer`); returns the number of probes."""
    written = 0

    def counted(n: int) -> None:
        nonlocal written
        written = n
        if progress is not None:
            progress(n)

    async for chunk in csv_chunks(documents, progress=counted):
        out.write(chunk)
    return written


async def export_csv(store: Store, out: BinaryIO, start: datetime | None = None, end: datetime | None = None, *,
                     site: str | None = None, progress: Progress | None = None, config: Config | None = None) -> int:
    """Probes planned in [start, end) (one site or all) as CSV into `out`; returns how many probes.
    With `config`, quality rows show their criteria."""
    from monitor.api.queries import ProbeFilter, iter_csv_documents

    documents = iter_csv_documents(store, ProbeFilter(site=site, start=start, end=end), config=config)
    return await write_csv(documents, out, progress=progress)
