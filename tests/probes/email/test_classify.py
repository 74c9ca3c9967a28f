"""classify: one test per rule, and the order between rules."""

from __future__ import annotations

import pytest

from probes.email.classify import classify
from probes.email.message import (
    AutoHeaders,
    DeliveryStatus,
    HeuristicBounce,
    ParsedMessage,
    parse_message,
)


def headers(**values: str) -> ParsedMessage:
    return ParsedMessage(from_addr="contact.mvh@example.org", subject="Re: Horaires", headers=AutoHeaders(**values))


def test_a_message_without_machine_marker_is_a_human_reply() -> None:
    result = classify(ParsedMessage(from_addr="contact.mvh@example.org", subject="Re: Horaires"))

    assert (result.kind, result.bulk, result.bounce) == ("human_reply", False, None)


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated", "Auto-Replied; owner-email=\"x@example.org\"",
                                   "auto-notified"])
def test_it_takes_any_auto_submitted_but_no_as_an_auto_reply(value: str) -> None:
    assert classify(headers(auto_submitted=value)).kind == "auto_reply"


def test_auto_submitted_no_is_a_human() -> None:
    assert classify(headers(auto_submitted="no")).kind == "human_reply"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"x_autoreply": "yes"}, "x-autoreply"),
        ({"x_autorespond": "contact.mvh@example.org"}, "x-autorespond"),
        ({"precedence": "auto_reply"}, "precedence: auto_reply"),
        ({"x_auto_response_suppress": "All", "x_ms_exchange_inbox_rules_loop": "contact.mvh@example.org"}, "exchange"),
    ],
)
def test_it_recognises_vendor_auto_reply_headers(fields: dict[str, str], reason: str) -> None:
    result = classify(headers(**fields))

    assert (result.kind, result.bulk) == ("auto_reply", False)
    assert reason in result.reason


@pytest.mark.parametrize("fields", [{"x_auto_response_suppress": "All"},
                                    {"x_ms_exchange_inbox_rules_loop": "contact.mvh@example.org"}])
def test_one_exchange_header_alone_is_not_an_auto_reply(fields: dict[str, str]) -> None:
    # Outlook sets X-Auto-Response-Suppress on ordinary mail; rules-loop is on rule-forwarded mail.
    assert classify(headers(**fields)).kind == "human_reply"


@pytest.mark.parametrize(
    "subject",
    ["Réponse automatique : Horaires", "Reponse automatique: Horaires", "Absence du bureau", "Accusé de réception",
     "Automatic reply: Opening hours", "Auto: Horaires", "Out of Office: Horaires", "AutoReply: Horaires",
     "[Absence] Absente jusqu'au 11 mai"],
)
def test_it_recognises_auto_reply_subjects(subject: str) -> None:
    result = classify(ParsedMessage(from_addr="contact.mvh@example.org", subject=subject))

    assert result.kind == "auto_reply"
    assert result.reason.startswith("subject:")


@pytest.mark.parametrize("subject", ["Re: Horaires d'ouverture — Réf. QP-7K2M9", "Réponse à votre demande",
                                     "Re: autorisation de photographier", "Re: Accès au bureau des réservations"])
def test_it_does_not_take_ordinary_subjects_for_auto_replies(subject: str) -> None:
    assert classify(ParsedMessage(from_addr="contact.mvh@example.org", subject=subject)).kind == "human_reply"


@pytest.mark.parametrize("fields", [{"list_id": "<lettre.example.org>"}, {"list_unsubscribe": "<mailto:u@example.org>"},
                                    {"precedence": "list"}, {"precedence": "bulk"}, {"precedence": "junk"}])
def test_a_newsletter_is_bulk_and_never_a_human_reply(fields: dict[str, str]) -> None:
    result = classify(headers(**fields))

    assert (result.kind, result.bulk) == ("auto_reply", True)


def test_a_vacation_reply_marked_precedence_bulk_is_an_auto_reply_not_mass_mail() -> None:
    result = classify(headers(auto_submitted="auto-replied", precedence="bulk"))

    assert (result.kind, result.bulk) == ("auto_reply", False)


def dsn(*statuses: DeliveryStatus, subject: str = "Undelivered Mail Returned to Sender") -> ParsedMessage:
    return ParsedMessage(
        from_addr="mailer-daemon@example.net",
        subject=subject,
        content_type="multipart/report",
        report_type="delivery-status",
        delivery_status=statuses,
        headers=AutoHeaders(auto_submitted="auto-replied"),
    )


def test_a_failed_dsn_is_a_permanent_bounce_with_its_code_and_recipients() -> None:
    result = classify(dsn(DeliveryStatus("contact@example.org", "contact.old@example.org", "failed", "5.1.1")))

    assert (result.kind, result.bounce, result.status_code) == ("bounce", "permanent", "5.1.1")
    assert result.failed_recipients == ("contact.old@example.org", "contact@example.org")


def test_a_delayed_dsn_is_a_transient_bounce() -> None:
    result = classify(dsn(DeliveryStatus("contact@example.org", "", "delayed", "4.4.7"), subject="Delayed Mail"))

    assert (result.kind, result.bounce, result.status_code) == ("bounce", "transient", "4.4.7")


def test_one_permanent_failure_makes_the_whole_report_permanent() -> None:
    result = classify(dsn(DeliveryStatus("a@example.org", "", "delayed", "4.4.1"),
                          DeliveryStatus("b@example.org", "", "failed", "5.2.2")))

    assert (result.bounce, result.status_code) == ("permanent", "5.2.2")


def test_the_code_comes_from_the_diagnostic_when_status_is_missing() -> None:
    result = classify(dsn(DeliveryStatus("a@example.org", "", "failed", "", "smtp; 550 5.7.1 refused")))

    assert result.status_code == "5.7.1"


def test_a_success_only_dsn_keeps_the_clock_running() -> None:
    result = classify(dsn(DeliveryStatus("a@example.org", "", "delivered", "2.0.0"), subject="Delivered"))

    assert (result.kind, result.bounce) == ("bounce", "transient")


def test_a_dsn_cut_before_its_fields_is_still_a_bounce() -> None:
    cut = ParsedMessage(from_addr="postmaster@example.net", subject="Undeliverable: Horaires",
                        content_type="multipart/report", report_type="delivery-status",
                        body="Remote server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound'")

    result = classify(cut)

    assert (result.kind, result.bounce, result.status_code) == ("bounce", "permanent", "5.1.10")


def test_an_mdn_is_a_read_receipt_even_with_auto_submitted() -> None:
    mdn = ParsedMessage(content_type="multipart/report", report_type="disposition-notification",
                        headers=AutoHeaders(auto_submitted="auto-replied"))

    assert classify(mdn).kind == "read_receipt"


def test_heuristic_failures_make_a_bounce() -> None:
    found = ParsedMessage(from_addr="mailer-daemon@example.net", subject="failure notice", body="550 5.1.1 No such user",
                          heuristic_bounce=HeuristicBounce(permanent=("contact@example.org",)))

    result = classify(found)

    assert (result.kind, result.bounce, result.status_code) == ("bounce", "permanent", "5.1.1")
    assert result.failed_recipients == ("contact@example.org",)


def test_a_heuristic_failure_in_a_delay_warning_stays_transient() -> None:
    warning = ParsedMessage(from_addr="mailer-daemon@example.net", subject="Warning: message delayed 24 hours",
                            heuristic_bounce=HeuristicBounce(permanent=("contact@example.org",)))

    assert classify(warning).bounce == "transient"


def test_a_mail_system_sender_with_a_bounce_subject_is_a_bounce() -> None:
    result = classify(ParsedMessage(from_addr="mailer-daemon@example.net", subject="Returned mail: see transcript"))

    assert (result.kind, result.bounce) == ("bounce", "permanent")


def test_a_person_with_a_bounce_like_subject_is_not_a_bounce() -> None:
    result = classify(ParsedMessage(from_addr="contact.mvh@example.org", subject="Re: courrier non délivré ?"))

    assert result.kind == "human_reply"


def test_a_real_exim_bounce_goes_through_flufl_bounce() -> None:
    raw = (b"From: Mail Delivery System <Mailer-Daemon@relay.example.net>\r\n"
           b"X-Failed-Recipients: contact@example.org\r\nSubject: Mail delivery failed\r\n\r\n"
           b"550 5.1.1 <contact@example.org>: User unknown\r\n")

    result = classify(parse_message(raw))

    assert (result.kind, result.bounce, result.reason) == ("bounce", "permanent", "flufl.bounce detectors")
    assert result.failed_recipients == ("contact@example.org",)
