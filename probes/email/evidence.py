"""The evidence of an answer is the message that was judged: read again where the watcher found it.

The watcher reads a message's header and a 16 KiB prefix of its body.  To
keep the whole message for auditors, `whole_message` reads it again by its
UID (IMAP, only while the folder's UIDVALIDITY is unchanged) or by its file
name (Maildir) — never by a Message-ID, which the sender chose and anyone
can repeat.

What is kept is capped by the mailbox's `evidence_max_bytes` (10 MiB by
default): a message within it is kept whole; beyond it, its header block
and its first part (`cap`), with the whole message's size and SHA-256
recorded beside it, so an auditor can still prove which message it was.
When the message cannot be read again (moved, deleted, a new UIDVALIDITY),
what the watcher read is kept, marked as a prefix.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from monitor.config.models import Mailbox
from probes.email.watcher import FetchedMessage

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_BOUNDARY = re.compile(rb'boundary\s*=\s*"?([^";\r\n]{1,200})"?', re.IGNORECASE)
READ_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Kept:
    raw: bytes        # what is stored as evidence
    size: int         # of the whole message
    sha256: str       # of the whole message

    @property
    def truncated(self) -> bool:
        return len(self.raw) < self.size


def cap(raw: bytes, limit: int) -> bytes:
    """`raw` when it fits in `limit` bytes; else its header block and its first MIME part, within `limit`."""
    if len(raw) <= limit:
        return raw
    end = _HEADER_END.search(raw)
    if end is None:
        return raw[:limit]
    head, body = raw[: end.end()], raw[end.end():]
    boundary = _BOUNDARY.search(head)
    if boundary is not None:
        marker = b"--" + boundary.group(1).strip()
        first = body.find(marker)
        second = body.find(marker, first + len(marker)) if first != -1 else -1
        if second != -1:
            body = body[:second]
    return (head + body)[:limit]


def as_read(fetched: FetchedMessage, limit: int) -> Kept:
    """What the watcher read, when it is the whole message (or all there is to keep)."""
    raw = fetched.raw
    return Kept(cap(raw, limit), len(raw), hashlib.sha256(raw).hexdigest())


async def whole_message(mailbox: Mailbox, fetched: FetchedMessage) -> Kept:
    """The message `fetched` came from, read again where it is (capped); what was read when that fails."""
    limit = mailbox.evidence_max_bytes
    if not fetched.truncated:
        return as_read(fetched, limit)
    found: tuple[bytes, int, str] | None = None
    if fetched.reread is not None:
        found = await fetched.reread(limit + 1)
    elif mailbox.imap is not None and fetched.uidvalidity is not None and isinstance(fetched.uid, int):
        from probes.email.imap.lookup import fetch_by_uid

        found = await fetch_by_uid(mailbox.imap, fetched.uid, fetched.uidvalidity, limit + 1)
    elif mailbox.maildir is not None and isinstance(fetched.uid, str):
        found = await asyncio.to_thread(read_maildir_file, Path(mailbox.maildir), fetched.uid, limit + 1)
    if found is None:
        return as_read(fetched, limit)
    raw, size, digest = found
    return Kept(cap(raw, limit) if size > limit else raw, size, digest)


def read_maildir_file(root: Path, key: str, keep: int) -> tuple[bytes, int, str] | None:
    """(first `keep` bytes, size, SHA-256) of the Maildir message whose unique name is `key`; None if gone."""
    for folder in ("new", "cur"):
        try:
            names = os.listdir(root / folder)
        except OSError:
            continue
        for name in names:
            if name == key or name.startswith(key + ":") or name.startswith(key + ";") or name.startswith(key + "!"):
                try:
                    return _read_hashed(root / folder / name, keep)
                except FileNotFoundError:  # renamed meanwhile by a mail client: keep what the watcher read
                    return None
    return None


def _read_hashed(path: Path, keep: int) -> tuple[bytes, int, str]:
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            digest.update(chunk)
            kept += chunk[: max(0, keep - len(kept))]
            size += len(chunk)
    return bytes(kept), size, digest.hexdigest()
