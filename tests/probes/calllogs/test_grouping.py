"""Merging legs into calls while streaming, and the resume points that make re-reads exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from probes.calllogs.grouping import Leg, LegGrouper, merge_legs
from probes.calllogs.records import CallOutcome

T0 = datetime(2026, 6, 16, 9, 30, tzinfo=UTC)


def leg(key: str, line: int, *, after: float = 0, ring: float = 10, duration: float = 10,
        outcome: CallOutcome = CallOutcome.no_answer, dialled: str = "+33199001234") -> Leg:
    return Leg(key, line, T0 + timedelta(seconds=after), ring, duration, outcome, dialled, None, (line,))


def test_it_counts_a_queue_call_answered_by_any_desk_as_answered_at_the_first_answer() -> None:
    record = merge_legs("pbx", "q", [
        leg("q", 1, ring=18, duration=18),
        leg("q", 2, after=2, ring=16, duration=140, outcome=CallOutcome.answered),
        leg("q", 3, after=2, ring=25, duration=90, outcome=CallOutcome.answered),
    ])
    assert record is not None
    assert (record.outcome, record.ring_seconds, record.legs) == (CallOutcome.answered, 18, 3)
    assert record.answered_at == T0 + timedelta(seconds=18)
    assert record.ended_at == T0 + timedelta(seconds=142)


def test_it_reports_no_answer_for_the_caller_when_one_desk_was_busy_and_another_rang_out() -> None:
    record = merge_legs("pbx", "q", [leg("q", 1, outcome=CallOutcome.busy, duration=1), leg("q", 2, duration=40)])
    assert record is not None
    assert (record.outcome, record.ring_seconds) == (CallOutcome.no_answer, 40)


def test_it_reports_busy_only_when_every_desk_was_busy() -> None:
    record = merge_legs("pbx", "q", [leg("q", 1, outcome=CallOutcome.busy), leg("q", 2, outcome=CallOutcome.busy)])
    assert record is not None and record.outcome is CallOutcome.busy


def test_it_makes_no_record_of_a_call_that_never_dialled_a_public_number() -> None:
    assert merge_legs("pbx", "i", [leg("i", 1, dialled="")]) is None


def test_it_holds_a_call_open_until_the_scan_moves_past_its_grace() -> None:
    grouper: LegGrouper[int] = LegGrouper(60, 0)
    assert grouper.add(leg("a", 1), 0, clock=100) == []
    assert grouper.add(leg("b", 2), 1, clock=150) == []
    closed = grouper.add(leg("c", 3), 2, clock=161)
    assert [[x.key for x in g] for g in closed] == [["a"]]


def test_it_resumes_before_the_oldest_open_call_and_skips_calls_already_emitted_after_it() -> None:
    grouper: LegGrouper[int] = LegGrouper(60, 0)
    grouper.add(leg("a", 1), 0, clock=100)
    grouper.advance(1)
    grouper.add(leg("b", 2), 1, clock=100)  # b opens after a...
    grouper.advance(2)
    grouper.add(leg("a", 3), 2, clock=100)  # ...and a has a leg after b's first
    grouper.advance(3)
    grouper.add(leg("b", 4), 3, clock=170)  # a closes; b stays open
    grouper.advance(4)
    position, recent = grouper.cursor()
    assert position == 1  # just before b's first leg
    assert [key for key, _ in recent] == ["a"]  # a's leg at line 3 comes again after that point


def test_it_skips_legs_of_remembered_calls_when_resuming() -> None:
    grouper: LegGrouper[int] = LegGrouper(60, 1, recent=(("a", 100.0),))
    assert grouper.add(leg("a", 3), 2, clock=100) == []
    assert grouper.flush() == []


def test_it_closes_only_calls_older_than_the_grace_when_flushing_up_to_a_clock() -> None:
    grouper: LegGrouper[int] = LegGrouper(60, 0)
    grouper.add(leg("a", 1), 0, clock=100)
    grouper.add(leg("b", 2), 1, clock=150)
    assert [g[0].key for g in grouper.flush(before_clock=200)] == ["a"]
    assert [g[0].key for g in grouper.flush()] == ["b"]


def test_it_keeps_memory_flat_on_a_long_scan() -> None:
    grouper: LegGrouper[int] = LegGrouper(10, 0)
    for n in range(50_000):
        grouper.add(leg(f"k{n}", n), n, clock=float(n))
        grouper.advance(n + 1, float(n))
    assert len(grouper._done) < 10_000
    assert len(grouper.cursor()[1]) <= 21
