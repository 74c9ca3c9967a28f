"""Operator CSV exports read through a column mapping."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from probes.calllogs.generic_csv import GenericCsvMapping, MappingError, read_generic_csv
from probes.calllogs.records import CallOutcome, RejectReason

from .cdr_data import DATA


@pytest.fixture
def mapping() -> GenericCsvMapping:
    with open(DATA / "operator_export.mapping.yaml", encoding="utf-8") as handle:
        return GenericCsvMapping.model_validate(yaml.safe_load(handle))


def test_it_reads_a_french_windows_export_through_its_mapping(mapping: GenericCsvMapping) -> None:
    records, rejected, _ = read_generic_csv(DATA / "operator_export.csv", "operator", mapping)
    assert [(r.dialled, r.outcome, r.ring_seconds) for r in records] == [
        ("+33199001234", CallOutcome.answered, 12),
        ("+33199001234", CallOutcome.answered, 31),
        ("+33199001235", CallOutcome.no_answer, 40),
        ("+33199001235", CallOutcome.busy, 2),
        ("+33199001234", CallOutcome.rejected, 5),
        ("+33199001234", CallOutcome.failed, 0),
        ("+33199001234", CallOutcome.answered, 3),
    ]
    first = records[0]
    assert first.started_at == datetime(2026, 6, 16, 8, 5, tzinfo=UTC)  # date + time columns, Paris time
    assert first.answered_at == datetime(2026, 6, 16, 8, 5, 12, tzinfo=UTC)
    assert first.ended_at == datetime(2026, 6, 16, 8, 6, 47, tzinfo=UTC)  # 12 s + 00:01:35


def test_it_rejects_a_status_nobody_mapped_and_keeps_the_other_rows(mapping: GenericCsvMapping) -> None:
    _, rejected, cursor = read_generic_csv(DATA / "operator_export.csv", "operator", mapping)
    assert [(r.line_no, r.reason) for r in rejected] == [(10, RejectReason.outcome)]
    assert "Transféré" in rejected[0].excerpt and "<num>" in rejected[0].excerpt
    assert cursor.line_no == 10  # a quoted comment spans two physical lines


def test_it_yields_nothing_new_when_the_same_export_is_imported_again(mapping: GenericCsvMapping) -> None:
    first, _, cursor = read_generic_csv(DATA / "operator_export.csv", "operator", mapping)
    assert read_generic_csv(DATA / "operator_export.csv", "operator", mapping, cursor=cursor)[0] == []
    again = read_generic_csv(DATA / "operator_export.csv", "operator", mapping)[0]
    assert [r.record_key for r in again] == [r.record_key for r in first]
    assert len({r.record_key for r in first}) == len(first)


def test_it_keys_rows_by_the_exports_own_call_id_when_mapped(tmp_path: Path) -> None:
    export = tmp_path / "calls.csv"
    export.write_text("id,when,to,waited,talked\nA-1,2026-06-16T10:00:00+02:00,0199001234,7,60\n")
    mapping = GenericCsvMapping(id="id", start="when", dialled="to", ring_seconds="waited", talk_seconds="talked")
    records, _, _ = read_generic_csv(export, "op", mapping)
    assert [(r.record_key, r.outcome, r.started_at.hour) for r in records] == [("A-1", CallOutcome.answered, 8)]


def test_it_derives_the_ring_time_from_the_answer_stamp_or_from_duration_minus_talk(tmp_path: Path) -> None:
    export = tmp_path / "calls.csv"
    export.write_text("start,answer,total,talk,to\n"
                      "2026-06-16 10:00:00,2026-06-16 10:00:09,70,61,0199001234\n"
                      "2026-06-16 11:00:00,,30,0,0199001234\n")
    by_answer = GenericCsvMapping(start="start", answer="answer", duration="total", dialled="to")
    by_talk = GenericCsvMapping(start="start", duration="total", talk_seconds="talk", dialled="to")
    for mapping in (by_answer, by_talk):
        records, rejected, _ = read_generic_csv(export, "op", mapping)
        assert rejected == []
        assert [(r.outcome, r.ring_seconds) for r in records] == [
            (CallOutcome.answered, 9), (CallOutcome.no_answer, 30)]


def test_it_rejects_broken_rows_each_with_its_reason(tmp_path: Path) -> None:
    export = tmp_path / "calls.csv"
    export.write_bytes(
        b"start,to,waited,talked\n"
        b"2026-06-16 10:00:00,0199001234,5,10\n"
        b"2026-06-16 10:00:00,0199001234,5\n"
        b"16/06/2026,0199001234,5,10\n"
        b"2026-06-16 10:00:00,0199001234,-5,10\n"
        b"2026-06-16 10:00:00,,5,10\n"
        b"2026-06-16 10:00:00,0199001234,\xff,10\n"
        b"\n"
    )
    mapping = GenericCsvMapping(start="start", dialled="to", ring_seconds="waited", talk_seconds="talked")
    records, rejected, _ = read_generic_csv(export, "op", mapping)
    assert len(records) == 1
    assert Counter(r.reason for r in rejected) == Counter({
        RejectReason.columns: 1, RejectReason.timestamp: 1, RejectReason.duration: 1,
        RejectReason.number: 1, RejectReason.encoding: 1})


def test_it_refuses_a_file_whose_header_lacks_a_mapped_column(tmp_path: Path, mapping: GenericCsvMapping) -> None:
    export = tmp_path / "calls.csv"
    export.write_text("Date;Heure;Numéro\n16/06/2026;10:00:00;0199001234\n", encoding="cp1252")
    with pytest.raises(MappingError, match="Attente"):
        read_generic_csv(export, "op", mapping)


def test_it_reads_an_empty_export_as_no_calls(tmp_path: Path, mapping: GenericCsvMapping) -> None:
    export = tmp_path / "calls.csv"
    export.write_bytes(b"")
    assert read_generic_csv(export, "op", mapping)[:2] == ([], [])


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "Extra inputs are not permitted"),
    ({"ring_seconds": None}, "cannot tell the ring time"),
    ({"outcomes": {}}, "maps none of its values"),
    ({"delimiter": ";;"}, "at most 1 character"),
    ({"encoding": "klingon"}, "unknown encoding"),
    ({"timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ({"outcomes": {"Répondu": "picked_up"}}, "answered"),
])
def test_it_rejects_mappings_that_cannot_work(mapping: GenericCsvMapping, change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GenericCsvMapping.model_validate(mapping.model_dump() | change)


def test_it_is_frozen(mapping: GenericCsvMapping) -> None:
    with pytest.raises(ValidationError):
        mapping.delimiter = ","  # type: ignore[misc]


def test_it_rejects_fields_too_large_and_nul_bytes_each_with_its_reason_and_reads_on(tmp_path: Path) -> None:
    export = tmp_path / "calls.csv"
    export.write_bytes(
        b"id,start,to,waited,talked\n"
        b"A-1,2026-06-16 10:00:00,0199001234,5,10\n"
        b"A-2,2026-06-16 10:01:00,0199001234," + b"9" * 200_000 + b",10\n"
        b"A-\x003,2026-06-16 10:02:00,0199001234,5,10\n"
        + b"\0" * 1000 + b"A-4,2026-06-16 10:03:00,0199001234,5,10\n"
        b"A-5,2026-06-16 10:04:00,0199001234,\"5\r\",10\n"
        b"A-6,2026-06-16 10:05:00,0199\r001234,5,10\n"
    )
    mapping = GenericCsvMapping(id="id", start="start", dialled="to", ring_seconds="waited", talk_seconds="talked")
    records, rejected, cursor = read_generic_csv(export, "op", mapping)
    # A NUL may sit anywhere in an unquoted export (here "A-" NUL "3,…" would read as a valid call "3"): the
    # whole line goes, unlike Master.csv where quoting tells a crash hole from a damaged field.
    assert [r.record_key for r in records] == ["A-1", "A-5"]
    assert [(r.line_no, r.reason) for r in rejected] == [
        (3, RejectReason.field_too_large), (4, RejectReason.nul_bytes), (5, RejectReason.nul_bytes),
        (7, RejectReason.columns)]
    assert cursor.line_no == 7
