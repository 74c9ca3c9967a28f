"""Find the blind copy of a probe in our own mailbox: proof that our server accepted it.

Every mystery email is also sent to the mystery mailbox itself (`bcc_self`).
After a crash between "about to send" and "sent", finding that copy by its
Message-ID tells the runner the email left (and when it arrived), so the
probe is recorded as sent instead of being sent a second time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from monitor.config.models import Mailbox
from probes.email.message import normalize_message_id, parse_message

HEADER_BYTES = 32 * 1024


@dataclass(frozen=True)
class OwnCopy:
    received_at: datetime
    raw: bytes


async def find_own_copy(mailbox: Mailbox, message_id: str) -> OwnCopy | None:
    if mailbox.maildir:
        return find_in_maildir(Path(mailbox.maildir), message_id)
    if mailbox.imap is not None:
        from probes.email.imap_watch import find_by_message_id

        found = await find_by_message_id(mailbox.imap, message_id)
        return OwnCopy(*found) if found else None
    return None


def find_in_maildir(root: Path, message_id: str) -> OwnCopy | None:
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
                    received = datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc)
                    return OwnCopy(received, Path(entry.path).read_bytes())
            except FileNotFoundError:  # a mail client moved it from new/ to cur/ meanwhile
                continue
    return None
