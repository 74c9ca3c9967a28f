"""Pure IMAP parsing and formatting: FETCH answers, INTERNALDATE, UID sets, folder names."""

from __future__ import annotations

from probes.email.imap.parse import mailbox_name, parse_fetch, parse_internaldate, to_message, uid_set


def test_a_fetch_answer_is_split_into_messages_with_literals_quoted_strings_and_nil() -> None:
    lines: list[bytes | bytearray] = [
        (b'1 FETCH (UID 7 INTERNALDATE " 6-Nov-2026 09:05:00 +0100" RFC822.SIZE 40 FLAGS (\\Seen $Fwd) '
         b'BODY[HEADER] {12}'), bytearray(b"Subject: a\r\n"), b' BODY[TEXT]<0> "x (y) \\"z\\""', b")",
        b"2 FETCH (FLAGS (\\Seen) UID 8)",                  # an unsolicited flag update: no body
        b"3 FETCH (UID 9 BODY[HEADER] {4}", bytearray(b"S:\r\n"), b" BODY[TEXT]<0> NIL RFC822.SIZE 4)",
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    first, second, third = parse_fetch(lines)

    assert first["UID"] == b"7" and first["BODY[HEADER]"] == b"Subject: a\r\n"
    assert first["BODY[TEXT]<0>"] == b'x (y) "z"' and "FLAGS" not in first
    assert second == {"UID": b"8"}
    assert third["BODY[TEXT]<0>"] is None
    now = parse_internaldate(b"01-Jan-2026 00:00:00 +0000")
    assert to_message("m", second, now) is None
    fetched = to_message("m", first, now)
    assert fetched is not None and fetched.uid == 7 and fetched.truncated
    assert fetched.received_at.isoformat() == "2026-11-06T08:05:00+00:00"
    whole = to_message("m", third, now)
    assert whole is not None and whole.raw == b"S:\r\n" and not whole.truncated


def test_uid_sets_are_compressed_into_ranges() -> None:
    assert uid_set([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"


def test_folder_names_are_quoted_in_modified_utf7() -> None:
    assert mailbox_name("INBOX") == '"INBOX"'
    assert mailbox_name("Réponses & co") == '"R&AOk-ponses &- co"'
    assert mailbox_name('a"b') == '"a\\"b"'
