"""Find a whole message in our own mailbox by its Message-ID (IMAP or Maildir).

Two uses: every mystery email is also sent to the mystery mailbox itself
(`bcc_self`), so after a crash between "about to send" and "sent", finding
that copy tells the runner the email left (and when it arrived) and the probe
is recorded as sent instead of being sent a second time; and the watcher
reads only a bounded prefix of each message, so a matched answer is fetched
whole for the auditors' evidence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from monitor.config.models import Mailbox
from probes.email.message import normalize_message_id, parse_message

HEADER_BYTES = 32 * 1024


@dataclass(frozen=True)
class FoundMessage:
    received_at: datetime
    raw: bytes


async def find_message(mailbox: Mailbox, message_id: str) -> FoundMessage | None:
    if mailbox.maildir:
        return find_in_maildir(Path(mailbox.maildir), message_id)
    if mailbox.imap is not None:
        from probes.email.imap.lookup import find_by_message_id

        found = await find_by_message_id(mailbox.imap, message_id)
        return FoundMessage(*found) if found else None
    return None


def find_in_maildir(root: Path, message_id: str) -> FoundMessage | None:
    wanted = normalize_message_id(message_id)
    for folder in ("new", "cur"):
        try:
            entries = list(os.scandir(root / folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                with open(entry.path, "rb") as handle:
                    head = handle.read(HEADER_BYTES)
                if wanted.encode() not in head.lower() and wanted.encode() not in head:
                    continue
                if normalize_message_id(parse_message(head).message_id) == wanted:
                    received = datetime.fromtimestamp(entry.stat().st_mtime, UTC)
                    return FoundMessage(received, Path(entry.path).read_bytes())
            except FileNotFoundError:  # a mail client moved it from new/ to cur/ meanwhile
                continue
    return None
