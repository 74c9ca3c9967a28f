"""Site mapping and the phone verdicts of real incoming calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.calendar import BusinessCalendar
from monitor.config.models import CalendarConfig, Commitment
from probes.calllogs.asterisk_csv import read_master_csv
from probes.calllogs.records import CallOutcome, CallRecord
from probes.calllogs.verdict import judge_call, map_to_site, sites_by_number

from .cdr_data import DATA

COMMITMENTS = {
    "phone.answer": Commitment.model_validate({"channel": "phone", "within": {"rings": 5}, "during": "open"}),
    "phone.out_of_hours": Commitment.model_validate({"channel": "phone", "within": {"rings": 5}, "during": "closed"}),
}
NUMBERS = sites_by_number([("maison-victor-hugo", "+33199001234"), ("petit-palais", "+33199001235")])
T0 = datetime(2026, 6, 16, 8, 5, tzinfo=UTC)


def call(outcome: CallOutcome, ring: float, dialled: str = "+33199001234") -> CallRecord:
    answered = T0 + timedelta(seconds=ring) if outcome is CallOutcome.answered else None
    return CallRecord("pbx", "k", dialled, None, T0, answered, T0 + timedelta(seconds=ring + 60), ring, outcome)


def always_open(site: str, instant: datetime) -> bool:
    return True


def verdict_of(record: CallRecord, is_open=always_open) -> tuple:
    (judged,) = judge_call(record, "maison-victor-hugo", is_open, COMMITMENTS)
    return judged.commitment, judged.verdict, judged.reason, judged.rings, judged.late


def test_it_maps_a_call_to_the_site_whose_number_was_dialled() -> None:
    assert map_to_site(call(CallOutcome.answered, 5), NUMBERS) == "maison-victor-hugo"
    assert map_to_site(call(CallOutcome.answered, 5, "+33199001299"), NUMBERS) is None


def test_it_refuses_one_number_for_two_sites() -> None:
    with pytest.raises(ValueError, match="both"):
        sites_by_number([("a", "+33199001234"), ("b", "+33199001234")])


@pytest.mark.parametrize(("outcome", "ring", "expected"), [
    (CallOutcome.answered, 12, ("phone.answer", "met", None, 3, False)),
    (CallOutcome.answered, 25, ("phone.answer", "met", None, 5, False)),
    (CallOutcome.answered, 31, ("phone.answer", "missed", None, 7, True)),
    (CallOutcome.answered, 0, ("phone.answer", "met", None, 1, False)),
    (CallOutcome.busy, 2, ("phone.answer", "missed", "busy", 1, False)),
    (CallOutcome.rejected, 1, ("phone.answer", "missed", "rejected", 1, False)),
    (CallOutcome.no_answer, 40, ("phone.answer", "missed", "no_answer", 8, False)),
    (CallOutcome.no_answer, 25, ("phone.answer", "missed", "no_answer", 5, False)),
    (CallOutcome.no_answer, 8, ("phone.answer", "void", "abandoned", 2, False)),
    (CallOutcome.failed, 0, ("phone.answer", "void", "failed", 0, False)),
])
def test_it_judges_a_call_during_opening_hours_like_a_mystery_call(outcome, ring, expected) -> None:
    assert verdict_of(call(outcome, ring)) == expected


def test_it_judges_a_call_outside_opening_hours_against_the_out_of_hours_commitment() -> None:
    closed = verdict_of(call(CallOutcome.answered, 2), is_open=lambda site, instant: False)
    assert closed == ("phone.out_of_hours", "met", None, 1, False)


def test_it_records_the_real_delay_of_a_late_answer() -> None:
    (judged,) = judge_call(call(CallOutcome.answered, 31), "maison-victor-hugo", always_open, COMMITMENTS)
    assert (judged.delay_seconds, judged.ring_seconds) == (31, 31)


def test_it_skips_commitments_not_measured_in_plain_time() -> None:
    email_like = {"x": Commitment.model_validate({"channel": "email", "within": {"working_days": 1}})}
    assert judge_call(call(CallOutcome.answered, 2), "s", always_open, email_like) == ()


def test_it_judges_the_fixture_calls_with_the_museum_calendar_for_opening_hours() -> None:
    museum = BusinessCalendar(CalendarConfig(opening_hours={"tue-sun": ("10:00-18:00",)}), "Europe/Paris")
    records, _, _ = read_master_csv(DATA / "master_linkedid.csv", "pbx")
    verdicts = {}
    for record in records:
        site = map_to_site(record, NUMBERS)
        assert site is not None
        (judged,) = judge_call(record, site, lambda _site, instant: museum.is_open(instant), COMMITMENTS)
        verdicts[record.record_key] = (judged.commitment, judged.verdict, judged.reason)
    assert verdicts == {
        "1781597100.1": ("phone.answer", "met", None),
        "1781598000.2": ("phone.answer", "missed", None),
        "1781599200.3": ("phone.answer", "missed", "no_answer"),
        "1781600400.4": ("phone.answer", "missed", "busy"),
        "1781602200.5": ("phone.answer", "met", None),
        "1781602205.13": ("phone.answer", "met", None),
        "1781604000.6": ("phone.answer", "missed", "no_answer"),
        "1781611200.7": ("phone.answer", "void", "abandoned"),
        "1781613000.8": ("phone.answer", "void", "failed"),
        "1781614800.9": ("phone.answer", "void", "failed"),
        "1781631000.10": ("phone.out_of_hours", "met", None),
    }
