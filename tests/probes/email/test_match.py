"""match_message: the order of the rules, windows, ambiguity and what must never match."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from probes.email.match import Match, ProbeRef, match_message, normalize_subject
from probes.email.message import AutoHeaders, DeliveryStatus, Disposition, ParsedMessage

SENT = datetime(2026, 5, 5, 8, 15, tzinfo=UTC)
MVH = ProbeRef("mvh", "QP-7K2M9", "<probe-mvh@probes.example.net>", "Contact.MVH@example.org",
               "Horaires d'ouverture — Réf. QP-7K2M9", SENT, SENT + timedelta(days=14))
OTHER = ProbeRef("carnavalet", "QP-R4TWX", "probe-carnavalet@probes.example.net", "accueil.carnavalet@example.org",
                 "Visite de groupe — Réf. QP-R4TWX", SENT, SENT + timedelta(days=14))
PROBES = (MVH, OTHER)
LATER = SENT + timedelta(days=1)


def reply(**fields: object) -> ParsedMessage:
    base = {"from_addr": "contact.mvh@example.org", "subject": "Re: Horaires d'ouverture", "date": LATER}
    return ParsedMessage(**{**base, **fields})  # type: ignore[arg-type]


def test_in_reply_to_wins_over_a_token_of_another_probe() -> None:
    found = match_message(reply(in_reply_to=("probe-mvh@probes.example.net",), subject="Re: QP-R4TWX"), PROBES)

    assert found == Match("mvh", "message_id")


def test_references_are_read_newest_first() -> None:
    message = reply(references=("probe-carnavalet@probes.example.net", "probe-mvh@probes.example.net"))

    assert match_message(message, PROBES) == Match("mvh", "message_id")


def test_a_token_in_the_subject_wins_over_one_in_the_body() -> None:
    message = reply(subject="RE: Visite — Réf. QP-R4TWX", body="> Réf. QP-7K2M9")

    assert match_message(message, PROBES) == Match("carnavalet", "token")


def test_a_colleague_quoting_the_token_matches_by_token() -> None:
    message = reply(from_addr="m.lefevre@example.org", subject="Votre demande", body="> réf. qp-7k2m9")

    assert match_message(message, PROBES) == Match("mvh", "token")


def test_a_token_of_no_candidate_is_ignored() -> None:
    assert match_message(reply(subject="Re: QP-ZZZZZ", from_addr="x@example.net"), PROBES) is None


def test_a_plus_address_matches() -> None:
    message = reply(from_addr="x@example.net", subject="Hello", to=("jeanne.martin+qp-r4twx@probes.example.net",))

    assert match_message(message, PROBES) == Match("carnavalet", "plus_address")


def test_same_correspondent_and_subject_inside_the_window_matches() -> None:
    assert match_message(reply(subject="TR: RE : Horaires d’ouverture"), PROBES) == Match("mvh", "correspondent")


def test_same_correspondent_with_another_subject_does_not_match() -> None:
    assert match_message(reply(subject="Re: Nouvelle exposition"), PROBES) is None


def test_another_correspondent_with_the_same_subject_does_not_match() -> None:
    assert match_message(reply(from_addr="someone@example.net"), PROBES) is None


def test_outside_the_window_the_correspondent_rule_does_not_apply() -> None:
    assert match_message(reply(date=SENT + timedelta(days=15)), PROBES) is None
    assert match_message(reply(date=SENT - timedelta(hours=1)), PROBES) is None


def test_a_date_header_slightly_before_sending_is_clock_skew() -> None:
    assert match_message(reply(date=SENT - timedelta(minutes=2)), PROBES) == Match("mvh", "correspondent")


def test_the_arrival_time_is_preferred_to_the_date_header() -> None:
    message = reply(date=SENT + timedelta(days=30))

    assert match_message(message, PROBES, received_at=LATER) == Match("mvh", "correspondent")
    assert match_message(reply(), PROBES, received_at=SENT - timedelta(minutes=2)) is None


def test_without_any_time_the_correspondent_rule_does_not_apply() -> None:
    assert match_message(reply(date=None), PROBES) is None


def test_ambiguous_correspondent_goes_to_the_latest_probe_sent_before_the_message() -> None:
    older = replace(MVH, probe_id="mvh-old", token="QP-JX3PA", message_id="<old@x>", sent_at=SENT - timedelta(days=10))
    newer = replace(MVH, probe_id="mvh-new", token="QP-HHHHH", message_id="<new@x>", sent_at=SENT + timedelta(days=3))
    candidates = (older, MVH, newer)

    assert match_message(reply(date=SENT + timedelta(days=1)), candidates) == Match("mvh", "correspondent")
    assert match_message(reply(date=SENT + timedelta(days=4)), candidates) == Match("mvh-new", "correspondent")
    assert match_message(reply(date=SENT - timedelta(days=1)), candidates) == Match("mvh-old", "correspondent")


def test_a_newsletter_from_the_site_with_the_same_subject_matches_nothing() -> None:
    newsletter = reply(headers=AutoHeaders(list_unsubscribe="<mailto:u@example.org>"))

    assert match_message(newsletter, PROBES) is None


def test_a_bounce_matches_through_its_embedded_original() -> None:
    bounce = ParsedMessage(from_addr="mailer-daemon@example.net", subject="Undelivered Mail",
                           report_type="delivery-status", date=LATER,
                           original=ParsedMessage(message_id="probe-carnavalet@probes.example.net"))

    assert match_message(bounce, PROBES) == Match("carnavalet", "message_id")


def test_a_bounce_matches_through_the_original_pasted_in_its_text() -> None:
    bounce = ParsedMessage(from_addr="mailer-daemon@example.net", subject="failure notice", date=LATER,
                           body="--- Below this line is a copy of the message.\nMessage-ID: <probe-mvh@probes.example.net>")

    assert match_message(bounce, PROBES) == Match("mvh", "message_id")


def test_a_bounce_without_original_matches_its_failed_recipient() -> None:
    bounce = ParsedMessage(from_addr="mailer-daemon@example.net", subject="Delivery Status Notification (Failure)",
                           report_type="delivery-status", date=LATER,
                           delivery_status=(DeliveryStatus("contact.mvh@example.org", "", "failed", "5.1.1"),))

    assert match_message(bounce, PROBES) == Match("mvh", "correspondent")


def test_a_read_receipt_matches_its_original_message_id() -> None:
    receipt = ParsedMessage(report_type="disposition-notification",
                            disposition=Disposition(original_message_id="probe-mvh@probes.example.net"))

    assert match_message(receipt, PROBES) == Match("mvh", "message_id")


def test_no_candidates_no_match() -> None:
    assert match_message(reply(in_reply_to=("probe-mvh@probes.example.net",)), ()) is None


def test_an_empty_message_matches_nothing() -> None:
    assert match_message(ParsedMessage(), PROBES) is None


def test_subject_normalisation_removes_prefixes_tokens_accents_and_punctuation() -> None:
    expected = "horaires d ouverture"

    assert normalize_subject("Horaires d'ouverture — Réf. QP-7K2M9") == expected
    assert normalize_subject("[EXT] RE: TR : Réponse automatique : HORAIRES D’OUVERTURE") == expected
    assert normalize_subject("AW: Fwd: Horaires  d'ouverture (Réf : QP-7K2M9)") == expected
    assert normalize_subject("Re: Reference") == "reference"


def test_a_probe_with_naive_instants_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(MVH, sent_at=datetime(2026, 5, 5, 10, 0))


def test_a_copy_of_our_own_probe_in_the_mailbox_matches_nothing() -> None:
    copy = reply(message_id="probe-mvh@probes.example.net", from_addr="jeanne.martin@probes.example.net",
                 subject=MVH.subject, to=("contact.mvh@example.org",))

    assert match_message(copy, PROBES) is None
