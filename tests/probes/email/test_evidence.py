"""The evidence is the message judged, read again by UID or file name, capped with its whole size and hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probes.email.evidence import cap, read_maildir_file, whole_message
from probes.email.message import lossless, original_bytes, parse_message
from probes.email.watcher import FetchedMessage
from tests.conftest import config_from

MULTIPART = (b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=\"B\"\r\n\r\n"
             b"--B\r\nContent-Type: text/plain\r\n\r\nLa r\xc3\xa9ponse.\r\n"
             b"--B\r\nContent-Type: application/pdf\r\n\r\n"
             + b"x" * 5000 + b"\r\n--B--\r\n")


def test_a_message_over_the_cap_keeps_its_headers_and_first_part() -> None:
    kept = cap(MULTIPART, 1000)
    assert kept.startswith(b"From: a@example.org") and b"La r\xc3\xa9ponse." in kept and b"xxxx" not in kept
    assert cap(MULTIPART, len(MULTIPART)) == MULTIPART


def test_a_maildir_message_is_read_again_by_its_file_name_with_its_whole_size_and_hash(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "cur" / "1778.M1P2.host:2,S").write_bytes(MULTIPART)
    raw, size, digest = read_maildir_file(tmp_path, "1778.M1P2.host", 100)
    assert (len(raw), size, digest) == (100, len(MULTIPART), hashlib.sha256(MULTIPART).hexdigest())
    assert read_maildir_file(tmp_path, "1778.M1P", 100) is None  # a prefix of another name is not it


async def test_whole_message_caps_at_the_mailbox_setting_and_records_the_whole(tmp_path: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    big = MULTIPART.replace(b"x" * 5000, b"x" * 200_000)
    (tmp_path / "new" / "key1").write_bytes(big)
    config = config_from(f"""
calendars: {{offices: {{}}}}
commitments: {{}}
mailboxes:
  mystery: {{address: j@probes.example.net, maildir: "{tmp_path}", evidence_max_bytes: 65536}}
sites: []
""")
    fetched = FetchedMessage("mystery", "key1", big[:20_000], datetime.now(UTC), truncated=True)
    kept = await whole_message(config.mailboxes["mystery"], fetched)
    assert kept.size == len(big) and kept.sha256 == hashlib.sha256(big).hexdigest() and kept.truncated
    assert len(kept.raw) <= 65536 and b"La r\xc3\xa9ponse." in kept.raw


@pytest.mark.parametrize("raw", [b"<abc@example.org>", "<réponse@musée.example.org>".encode(),
                                 b"<\xff\xfe@x>", b"<a\\b\x00c@x>", b"<a\\x41@x>"])
def test_header_identifiers_are_kept_losslessly_as_valid_text(raw: bytes) -> None:
    text = lossless(raw.decode("ascii", "surrogateescape"))
    assert text.encode("utf-8") and "\x00" not in text and original_bytes(text) == raw
    parsed = parse_message(b"Message-ID: " + raw + b"\r\n\r\n")
    assert parsed.message_id.encode("utf-8")
