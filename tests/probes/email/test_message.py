"""parse_message: what it extracts, and that it survives broken input."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from probes.email.message import (
    decode_header_value,
    decode_text,
    html_to_text,
    normalize_message_id,
    parse_message,
)


def message(*headers: str, body: str = "Bonjour", raw_body: bytes | None = None) -> bytes:
    head = "".join(f"{header}\r\n" for header in headers).encode("utf-8", "surrogateescape")
    return head + b"\r\n" + (raw_body if raw_body is not None else body.encode())


def test_it_reads_identifiers_addresses_and_date() -> None:
    parsed = parse_message(message(
        "From: =?utf-8?Q?Mus=C3=A9e_Carnavalet?= <Accueil.Carnavalet@Example.ORG>",
        "To: Jeanne Martin <jeanne.martin@probes.example.net>, other@example.net",
        "Cc: copie@example.org",
        "Reply-To: reponses@example.org",
        "Delivered-To: jeanne.martin+qp-7k2m9@probes.example.net",
        "Message-ID: <abc@example.org>",
        "In-Reply-To: <probe-1@probes.example.net>",
        "References: <old@example.org>\r\n <probe-1@probes.example.net>",
        "Date: Tue, 05 May 2026 14:21:05 +0200",
    ))

    assert parsed.from_addr == "accueil.carnavalet@example.org"
    assert parsed.from_name == "Musée Carnavalet"
    assert parsed.to == ("jeanne.martin@probes.example.net", "other@example.net")
    assert parsed.cc == ("copie@example.org",)
    assert parsed.reply_to == ("reponses@example.org",)
    assert parsed.delivered_to == ("jeanne.martin+qp-7k2m9@probes.example.net",)
    assert parsed.message_id == "abc@example.org"
    assert parsed.in_reply_to == ("probe-1@probes.example.net",)
    assert parsed.references == ("old@example.org", "probe-1@probes.example.net")
    assert parsed.date == datetime(2026, 5, 5, 12, 21, 5, tzinfo=UTC)


def test_it_decodes_encoded_words_in_any_charset() -> None:
    assert decode_header_value("=?UTF-8?B?UsOpZi4=?= QP") == "Réf. QP"
    assert decode_header_value("=?iso-8859-1?q?R=E9f=2E_QP?=") == "Réf. QP"
    assert decode_header_value("=?windows-1252?Q?d=92une_=97?=") == "d’une —"
    assert decode_header_value("=?utf-8*fr?Q?caf=C3=A9?=") == "café"


def test_it_joins_a_character_split_across_two_encoded_words() -> None:
    assert decode_header_value("=?utf-8?B?UsM=?=\r\n =?utf-8?B?qWYu?=") == "Réf."


def test_it_keeps_the_space_between_an_encoded_word_and_plain_text() -> None:
    assert decode_header_value("RE: =?utf-8?Q?caf=C3=A9?= du jour") == "RE: café du jour"


def test_it_replaces_what_an_unknown_charset_cannot_say() -> None:
    assert decode_header_value("=?x-unknown?Q?caf=E9?=") == "caf\ufffd"
    assert decode_text(b"caf\xe9", "base64") == "caf\ufffd"  # not a text encoding: refused


def test_it_reads_latin1_labelled_text_as_windows_1252() -> None:
    # Outlook labels windows-1252 text ISO-8859-1; 0x92 is its apostrophe.
    assert decode_text(b"l\x92accueil", "iso-8859-1") == "l’accueil"


def test_it_reads_a_raw_8bit_latin1_subject() -> None:
    parsed = parse_message(b"Subject: Re: Acc\xe8s en fauteuil\r\n\r\nx")

    assert parsed.subject == "Re: Accès en fauteuil"


def test_it_reads_a_raw_8bit_utf8_subject() -> None:
    parsed = parse_message("Subject: Re: Accès — Réf.\r\n\r\nx".encode())

    assert parsed.subject == "Re: Accès — Réf."


def test_it_removes_control_characters_from_the_subject() -> None:
    parsed = parse_message(message("Subject: =?utf-8?Q?a=0Ab=09c=00d?="))

    assert parsed.subject == "a b c d"


def test_it_prefers_the_plain_part_to_the_html_part() -> None:
    raw = message(
        'Content-Type: multipart/alternative; boundary="b"',
        raw_body=b"--b\r\nContent-Type: text/plain\r\n\r\nplain text\r\n--b\r\n"
        b"Content-Type: text/html\r\n\r\n<p>html text</p>\r\n--b--\r\n",
    )

    assert parse_message(raw).body.strip() == "plain text"


def test_it_falls_back_to_html_without_tags_scripts_or_entities() -> None:
    html = "<html><head><title>t</title><style>p{}</style></head><body><p>R&eacute;f.&nbsp;QP</p><script>x()</script></body>"

    assert html_to_text(html) == "Réf. QP"


def test_it_decodes_base64_and_quoted_printable_bodies() -> None:
    b64 = parse_message(message("Content-Transfer-Encoding: base64", "Content-Type: text/plain; charset=utf-8",
                                body="UsOpZi4gUVAtN0syTTk="))
    qp = parse_message(message("Content-Transfer-Encoding: quoted-printable", "Content-Type: text/plain; charset=utf-8",
                               body="R=C3=A9f. QP-7K=\r\n2M9"))

    assert b64.body == "Réf. QP-7K2M9"
    assert qp.body == "Réf. QP-7K2M9"


def test_it_bounds_the_body() -> None:
    parsed = parse_message(message(body="x" * 100_000), body_limit=100)

    assert parsed.body == "x" * 100


def test_it_skips_attachments() -> None:
    raw = message(
        'Content-Type: multipart/mixed; boundary="b"',
        raw_body=b"--b\r\nContent-Type: text/plain\r\n\r\nvisible\r\n--b\r\n"
        b"Content-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nhidden\r\n--b--\r\n",
    )

    assert parse_message(raw).body.strip() == "visible"


def test_it_reads_a_multipart_whose_boundary_never_closes() -> None:
    raw = message(
        'Content-Type: multipart/alternative; boundary="b"',
        raw_body=b"--b\r\nContent-Type: text/plain\r\n\r\nRef QP-7K2M9\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>cut he",
    )

    assert "QP-7K2M9" in parse_message(raw).body


def test_it_reads_the_fields_of_a_delivery_status_report() -> None:
    raw = message(
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
        raw_body=b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; Contact@Example.org\r\nOriginal-Recipient: rfc822;contact@example.org\r\n"
        b"Action: failed\r\nStatus: 5.1.1 (bad mailbox)\r\nDiagnostic-Code: smtp; 550 5.1.1 unknown\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <probe@probes.example.net>\r\n"
        b"Subject: =?utf-8?Q?R=C3=A9f=2E_QP-7K2M9?=\r\n\r\n--b--\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.report_type == "delivery-status"
    (status,) = parsed.delivery_status
    assert (status.final_recipient, status.original_recipient, status.action, status.status) == (
        "contact@example.org", "contact@example.org", "failed", "5.1.1")
    assert parsed.original is not None
    assert (parsed.original.message_id, parsed.original.subject) == ("probe@probes.example.net", "Réf. QP-7K2M9")


def test_it_reads_the_fields_of_a_disposition_notification() -> None:
    raw = message(
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"',
        raw_body=b"--b\r\nContent-Type: text/plain\r\n\r\nread\r\n--b\r\n"
        b"Content-Type: message/disposition-notification\r\n\r\nFinal-Recipient: rfc822;contact@example.org\r\n"
        b"Original-Message-ID: <probe@probes.example.net>\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n"
        b"\r\n--b--\r\n",
    )

    parsed = parse_message(raw)

    assert parsed.report_type == "disposition-notification"
    assert parsed.disposition is not None
    assert parsed.disposition.original_message_id == "probe@probes.example.net"
    assert parsed.disposition.disposition.endswith("displayed")


def test_it_runs_bounce_detectors_only_on_mail_system_messages() -> None:
    person = parse_message(message("From: a@example.org", body="The following addresses had permanent fatal errors"))
    daemon = parse_message(message("From: MAILER-DAEMON@example.org", "X-Failed-Recipients: x@example.org"))

    assert person.heuristic_bounce is None
    assert daemon.heuristic_bounce is not None
    assert daemon.heuristic_bounce.permanent == ("x@example.org",)


def test_it_normalises_message_ids() -> None:
    assert normalize_message_id(" <a@b> ") == "a@b"
    assert parse_message(message("In-Reply-To: bare@example.org")).in_reply_to == ("bare@example.org",)


def test_a_date_without_zone_is_utc_and_a_bad_date_is_none() -> None:
    assert parse_message(message("Date: Tue, 05 May 2026 10:00:00 -0000")).date == datetime(
        2026, 5, 5, 10, tzinfo=UTC)
    assert parse_message(message("Date: mardi dernier")).date is None
    assert parse_message(message("Date: Tue, 05 May 99999 10:00:00 +0200")).date is None


def test_it_returns_empty_fields_for_garbage() -> None:
    parsed = parse_message(bytes(range(256)) * 4)

    assert (parsed.message_id, parsed.subject, parsed.from_addr, parsed.to, parsed.date) == ("", "", "", (), None)


def test_it_accepts_empty_input_and_non_bytes() -> None:
    empty = parse_message(b"")

    assert (empty.subject, empty.from_addr, empty.body, empty.original) == ("", "", "", None)
    assert parse_message(bytearray(b"Subject: x\r\n\r\n")).subject == "x"  # type: ignore[arg-type]


def test_it_survives_deeply_nested_multiparts() -> None:
    depth = 2000
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    parsed = parse_message(b"Subject: deep\r\n" + head + b"Content-Type: text/plain\r\n\r\ninner\r\n")

    assert parsed.subject == "deep"


def test_it_is_frozen() -> None:
    parsed = parse_message(message("Subject: x"))

    try:
        parsed.subject = "y"  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("ParsedMessage must be immutable")


def test_hostile_html_is_stripped_in_linear_time() -> None:
    # html.parser needs minutes for this; a generous bound only guards against going back.
    raw = b"Content-Type: text/html\r\n\r\n" + b'<a b="' * 40_000 + b"<script>" * 20_000

    started = time.perf_counter()
    parse_message(raw)

    assert time.perf_counter() - started < 5
