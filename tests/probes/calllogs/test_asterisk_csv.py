"""Asterisk Master.csv: layouts, outcomes, queue legs, DST days, corrupt rows, cursors and idempotent re-reads."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from probes.calllogs.asterisk_csv import MasterCsvOptions, iter_master_csv, read_master_csv, split_line, split_lines
from probes.calllogs.filelines import RawLine
from probes.calllogs.records import CallOutcome, CallRecord, FileCursor, RejectedRow, RejectReason

from .cdr_data import DATA


def by_key(records: list[CallRecord]) -> dict[str, CallRecord]:
    return {r.record_key: r for r in records}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def linked() -> dict[str, CallRecord]:
    records, rejected, _ = read_master_csv(DATA / "master_linkedid.csv", "pbx")
    assert rejected == []
    return by_key(records)


def test_it_reads_an_answered_call_with_its_ring_time_from_duration_minus_billsec(linked) -> None:
    call = linked["1781597100.1"]
    assert (call.source, call.dialled, call.outcome, call.ring_seconds, call.legs) == (
        "pbx", "+33199001234", CallOutcome.answered, 12, 1)
    assert call.started_at == utc("2026-06-16 08:05:00")  # 10:05 Paris summer time
    assert call.answered_at == utc("2026-06-16 08:05:12")
    assert call.ended_at == utc("2026-06-16 08:06:47")


def test_it_maps_every_asterisk_disposition_to_an_outcome(linked) -> None:
    outcomes = {key: r.outcome for key, r in linked.items()}
    assert outcomes["1781599200.3"] is CallOutcome.no_answer
    assert outcomes["1781600400.4"] is CallOutcome.busy
    assert outcomes["1781613000.8"] is CallOutcome.failed
    assert outcomes["1781614800.9"] is CallOutcome.failed  # CONGESTION


def test_it_normalises_the_dialled_number_whatever_the_pbx_wrote(linked) -> None:
    assert linked["1781599200.3"].dialled == "+33199001235"  # 0033…
    assert linked["1781600400.4"].dialled == "+33199001235"  # 33… from the trunk
    assert linked["1781614800.9"].dialled == "+33199001235"  # 01.99.00.12.35


def test_it_merges_queue_legs_sharing_a_linkedid_into_one_answered_call(linked) -> None:
    call = linked["1781602200.5"]
    assert (call.outcome, call.ring_seconds, call.legs) == (CallOutcome.answered, 18, 3)
    assert call.ended_at == utc("2026-06-16 09:32:20")


def test_it_merges_legs_even_when_another_call_ended_between_them(linked) -> None:
    assert linked["1781602205.13"].legs == 1
    assert linked["1781602200.5"].legs == 3


def test_it_counts_a_queue_call_nobody_answered_as_ringing_until_the_caller_hung_up(linked) -> None:
    call = linked["1781604000.6"]
    assert (call.outcome, call.ring_seconds, call.legs, call.answered_at) == (CallOutcome.no_answer, 45, 2, None)


def test_it_leaves_internal_extension_calls_out_of_the_records_without_rejecting_them() -> None:
    batches = list(iter_master_csv(DATA / "master_linkedid.csv", "pbx"))
    assert sum(b.skipped for b in batches) == 1
    assert sum(len(b.records) for b in batches) == 11
    assert sum(b.rows for b in batches) == 15
    assert "1781618400.11" not in {r.record_key for b in batches for r in b.records}


def test_it_groups_legs_by_uniqueid_when_the_log_has_no_linkedid() -> None:
    records, rejected, _ = read_master_csv(DATA / "master_no_linkedid.csv", "pbx")
    calls = by_key(records)
    assert rejected == [] and len(calls) == 4
    assert (calls["1781595000.23"].legs, calls["1781595000.23"].outcome) == (2, CallOutcome.answered)
    assert calls["1781594400.22"].outcome is CallOutcome.no_answer


def test_it_keys_calls_by_a_hash_without_personal_data_when_no_identifier_is_logged() -> None:
    records, rejected, _ = read_master_csv(DATA / "master_bare.csv", "pbx")
    assert rejected == [] and len(records) == 3
    assert all(r.record_key.startswith("h:") for r in records)
    assert len({r.record_key for r in records}) == 3
    assert [r.outcome for r in records] == [CallOutcome.answered, CallOutcome.no_answer, CallOutcome.busy]


def test_it_checks_every_row_width_against_the_declared_cdr_conf_flags() -> None:
    strict = MasterCsvOptions(loguniqueid=True, loguserfield=True, newcdrcolumns=True)
    records, rejected, _ = read_master_csv(DATA / "master_no_linkedid.csv", "pbx", options=strict)
    assert records == [] and {r.reason for r in rejected} == {RejectReason.columns}


def test_it_reads_stamps_as_utc_when_the_pbx_logs_gmt() -> None:
    records, _, _ = read_master_csv(DATA / "master_bare.csv", "pbx", options=MasterCsvOptions(usegmtime=True))
    assert records[0].started_at == utc("2026-06-16 10:00:00")


def test_it_reads_a_call_across_the_spring_change_with_its_real_length() -> None:
    calls = by_key(read_master_csv(DATA / "master_dst.csv", "pbx")[0])
    call = calls["1774745990.41"]
    assert (call.started_at, call.ended_at) == (utc("2026-03-29 00:59:50"), utc("2026-03-29 01:00:10"))


def test_it_reads_calls_in_the_repeated_autumn_hour_consistently_with_their_durations() -> None:
    calls = by_key(read_master_csv(DATA / "master_dst.csv", "pbx")[0])
    crossing = calls["1792889990.42"]  # 02:59:50 summer time → 02:00:10 winter time
    assert (crossing.started_at, crossing.ended_at) == (utc("2026-10-25 00:59:50"), utc("2026-10-25 01:00:10"))
    long_call = calls["1792887000.43"]  # 55 minutes across the change
    assert long_call.ended_at - long_call.started_at == timedelta(minutes=55)
    inside = calls["1792888200.44"]  # wholly in the repeated hour: the earlier (summer-time) reading
    assert inside.started_at == utc("2026-10-25 00:30:00")


def test_it_counts_the_five_percent_corrupt_rows_by_reason_and_keeps_the_rest() -> None:
    records, rejected, cursor = read_master_csv(DATA / "master_corrupt.csv", "pbx")
    assert len(records) == 95
    assert Counter(r.reason for r in rejected) == Counter({
        RejectReason.columns: 1, RejectReason.timestamp: 1, RejectReason.duration: 1,
        RejectReason.encoding: 1, RejectReason.number: 1})
    assert sorted(r.line_no for r in rejected) == [10, 30, 50, 70, 90]
    assert cursor.line_no == 100


def test_it_keeps_caller_numbers_out_of_rejected_row_excerpts() -> None:
    _, rejected, _ = read_master_csv(DATA / "master_corrupt.csv", "pbx")
    assert not any("019900" in r.excerpt or "+3319900" in r.excerpt for r in rejected)


def test_it_drops_callers_without_a_key_and_pseudonymises_them_with_one(linked) -> None:
    assert all(r.caller_hash is None for r in linked.values())
    keyed = by_key(read_master_csv(DATA / "master_linkedid.csv", "pbx", caller_key=b"k")[0])
    assert keyed["1781597100.1"].caller_hash and "9001" not in keyed["1781597100.1"].caller_hash


def test_it_yields_nothing_when_reading_again_from_the_returned_cursor() -> None:
    first, _, cursor = read_master_csv(DATA / "master_corrupt.csv", "pbx")
    again, rejected, after = read_master_csv(DATA / "master_corrupt.csv", "pbx", cursor=cursor)
    assert (again, rejected) == ([], [])
    assert (after.offset, after.line_no) == (cursor.offset, cursor.line_no)


def test_it_yields_the_same_record_keys_when_reading_the_file_again_from_scratch() -> None:
    first = read_master_csv(DATA / "master_linkedid.csv", "pbx")[0]
    second = read_master_csv(DATA / "master_linkedid.csv", "pbx")[0]
    assert sorted(r.record_key for r in first) == sorted(r.record_key for r in second)
    assert set(first) == set(second)


def test_it_streams_in_batches_whose_cursors_each_resume_exactly(tmp_path: Path) -> None:
    everything = by_key(read_master_csv(DATA / "master_linkedid.csv", "pbx")[0])
    for batch_rows in (1, 2, 3, 5, 7):
        seen: dict[str, CallRecord] = {}
        for batch in iter_master_csv(DATA / "master_linkedid.csv", "pbx", batch_rows=batch_rows):
            # Resuming from any batch's cursor must yield exactly the calls not yet yielded.
            rest = read_master_csv(DATA / "master_linkedid.csv", "pbx", cursor=batch.cursor)[0]
            seen.update(by_key(list(batch.records)))
            assert set(by_key(rest)) == set(everything) - set(seen), batch_rows
        assert seen == everything


def test_it_picks_up_only_new_calls_when_the_log_grows(tmp_path: Path) -> None:
    lines = (DATA / "master_linkedid.csv").read_bytes().splitlines(keepends=True)
    log = tmp_path / "Master.csv"
    log.write_bytes(b"".join(lines[:4]))
    first, _, cursor = read_master_csv(log, "pbx")
    with open(log, "ab") as handle:
        handle.write(b"".join(lines[4:]))
    second, _, cursor = read_master_csv(log, "pbx", cursor=cursor)
    assert len(first) == 4 and len(second) == 7
    assert set(by_key(first + second)) == set(by_key(read_master_csv(DATA / "master_linkedid.csv", "pbx")[0]))
    assert read_master_csv(log, "pbx", cursor=cursor)[0] == []


def test_it_leaves_a_half_written_last_line_for_the_next_poll(tmp_path: Path) -> None:
    data = (DATA / "master_no_linkedid.csv").read_bytes()
    log = tmp_path / "Master.csv"
    log.write_bytes(data[:-30])
    now = datetime(2026, 6, 17, tzinfo=UTC)
    first, rejected, cursor = read_master_csv(log, "pbx", now=now)
    assert rejected == [] and len(first) == 3
    log.write_bytes(data)
    second, rejected, _ = read_master_csv(log, "pbx", now=now, cursor=cursor)
    assert rejected == [] and [r.record_key for r in second] == ["1781595600.24"]


def test_it_keeps_a_call_open_while_a_live_log_may_still_get_its_other_legs(tmp_path: Path) -> None:
    lines = (DATA / "master_linkedid.csv").read_bytes().splitlines(keepends=True)
    log = tmp_path / "Master.csv"
    log.write_bytes(b"".join(lines[:6]))  # the queue call has two of its three legs so far
    just_after = datetime(2026, 6, 16, 9, 31, tzinfo=UTC)
    first, _, cursor = read_master_csv(log, "pbx", now=just_after)
    assert "1781602200.5" not in by_key(first)
    with open(log, "ab") as handle:
        handle.write(b"".join(lines[6:]))
    second, _, _ = read_master_csv(log, "pbx", now=datetime(2026, 6, 17, tzinfo=UTC), cursor=cursor)
    assert by_key(second)["1781602200.5"].legs == 3
    assert not set(by_key(first)) & set(by_key(second))


def test_it_starts_again_from_the_top_when_the_log_was_rotated(tmp_path: Path) -> None:
    log = tmp_path / "Master.csv"
    shutil.copy(DATA / "master_linkedid.csv", log)
    _, _, cursor = read_master_csv(log, "pbx")
    shutil.copy(DATA / "master_no_linkedid.csv", log)  # logrotate put a fresh file in place
    batches = list(iter_master_csv(log, "pbx", cursor=cursor))
    assert batches[0].restarted
    assert len([r for b in batches for r in b.records]) == 4


def test_it_persists_and_restores_a_cursor_as_json() -> None:
    _, _, cursor = read_master_csv(DATA / "master_linkedid.csv", "pbx")
    assert FileCursor.from_json(cursor.to_json()) == cursor


def _lines() -> list[bytes]:
    return (DATA / "master_linkedid.csv").read_bytes().splitlines(keepends=True)


def test_it_rejects_a_field_too_large_for_the_csv_module_and_reads_on(tmp_path: Path) -> None:
    lines = _lines()
    log = tmp_path / "Master.csv"
    log.write_bytes(lines[0] + b'"","' + b"x" * 200_000 + b'","0199001234"\n' + b"".join(lines[1:]))
    records, rejected, cursor = read_master_csv(log, "pbx")
    assert [(r.line_no, r.reason) for r in rejected] == [(2, RejectReason.field_too_large)]
    assert len(records) == 11 and cursor.line_no == len(lines) + 1
    assert len(rejected[0].excerpt) <= 160


def test_it_rejects_a_bare_carriage_return_inside_a_field_and_reads_on(tmp_path: Path) -> None:
    lines = _lines()
    log = tmp_path / "Master.csv"
    log.write_bytes(lines[0] + lines[1].replace(b",91,60,", b",9\r1,60,") + b"".join(lines[2:]))
    records, rejected, _ = read_master_csv(log, "pbx")
    assert [(r.line_no, r.reason) for r in rejected] == [(2, RejectReason.columns)]


def test_it_rejects_a_hole_of_nul_bytes_left_by_a_crash_and_keeps_the_call_written_after_it(tmp_path: Path) -> None:
    lines = _lines()
    log = tmp_path / "Master.csv"
    # A crash lost the end of the file: the file system kept its length as NUL bytes, and the PBX appended
    # its next line after them (so the hole and that line are one physical line).
    log.write_bytes(lines[0] + b"\0" * 300_000 + b"".join(lines[1:]))
    records, rejected, _ = read_master_csv(log, "pbx")
    assert [(r.line_no, r.reason) for r in rejected] == [(2, RejectReason.nul_bytes)]
    assert "\0" not in rejected[0].excerpt and len(rejected[0].excerpt) <= 160
    assert set(by_key(records)) == set(by_key(read_master_csv(DATA / "master_linkedid.csv", "pbx")[0]))


def test_it_rejects_a_row_with_a_nul_byte_inside_a_field(tmp_path: Path) -> None:
    lines = _lines()
    log = tmp_path / "Master.csv"
    log.write_bytes(b"".join(lines[:2]) + lines[2].replace(b"PJSIP", b"PJ\0SIP", 1) + b"".join(lines[3:]))
    records, rejected, _ = read_master_csv(log, "pbx")
    assert [(r.line_no, r.reason) for r in rejected] == [(3, RejectReason.nul_bytes)]
    assert not any("\0" in r.record_key for r in records)


PIECES = [b'"', b",", b'""', b"a", b"0199001234", b"\r", b"\0", b"\xff", b" ", b'"x,y"', b"\xc3\xa9"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join), min_size=1, max_size=12))
@example([b'a","a', b"b,c"])  # even quotes, yet the line ends inside a quoted field: one reader would join them
def test_splitting_lines_together_gives_what_splitting_each_alone_gives(datas: list[bytes]) -> None:
    lines = [RawLine(n + 1, 0, 0, n + 1, data) for n, data in enumerate(datas)]
    assert split_lines(lines) == [split_line(line) for line in lines]


def test_splitting_lines_together_copes_with_a_field_too_large_among_them() -> None:
    datas = [b'"a","b"', b'"' + b"x" * 200_000 + b'"', b'"c"']
    lines = [RawLine(n + 1, 0, 0, n + 1, data) for n, data in enumerate(datas)]
    assert split_lines(lines) == [split_line(line) for line in lines]
    assert isinstance(split_lines(lines)[1], RejectedRow) and split_lines(lines)[2] == ('"c"', ["c"])


def test_it_rejects_a_call_key_longer_than_the_store_keeps(tmp_path: Path) -> None:
    lines = _lines()
    log = tmp_path / "Master.csv"
    log.write_bytes(lines[0] + lines[1].replace(b'"1781598000.2"', b'"' + b"9" * 129 + b'"') + b"".join(lines[2:]))
    records, rejected, _ = read_master_csv(log, "pbx")
    assert [(r.line_no, r.reason) for r in rejected] == [(2, RejectReason.field_too_large)]
    assert len(records) == 10


def test_the_longest_key_kept_is_the_store_column_length() -> None:
    from monitor.store.schema import Call
    from probes.calllogs.records import MAX_KEY_LENGTH

    assert Call.__table__.c.record_key.type.length == MAX_KEY_LENGTH
