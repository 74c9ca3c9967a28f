"""One-off reads of our mailbox, read-only like the watcher: a message by Message-ID (crash recovery of the
sender: our own blind copy), and a message by UID (the evidence of an answer: the very message judged)."""

from __future__ import annotations

import hashlib
import ssl
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

import aioimaplib  # type: ignore[import-untyped]

from monitor.config.models import ImapConfig
from probes.email.imap.parse import to_message
from probes.email.imap.session import FULL_ITEMS, ImapSession

CHUNK = 1024 * 1024


async def find_by_message_id(config: ImapConfig, message_id: str, *,
                             ssl_context: ssl.SSLContext | None = None) -> tuple[datetime, bytes] | None:
    """(INTERNALDATE, whole message) of the newest message in the folder with this Message-ID, or None.

    Read-only like the watcher (EXAMINE, BODY.PEEK).  Used after a crash to find
    the blind copy of a probe we may or may not have sent.  Connection errors
    propagate (the caller cannot conclude "not sent" from an unreachable server).
    """
    wanted = _bare_message_id(message_id)
    if not wanted:
        return None
    session = await ImapSession.open(config, ssl_context=ssl_context)
    try:
        await session.examine(config.folder)
        # HEADER search is a substring match: confirm each candidate, newest first.
        for uid in reversed(await session.search("HEADER", "Message-ID", aioimaplib.quoted(wanted))):
            for items in await session.fetch([uid], FULL_ITEMS):
                found = to_message("lookup", items, datetime.now(UTC))
                if found is not None and _bare_message_id(_header(found.raw, "Message-ID")) == wanted:
                    return found.received_at, found.raw
        return None
    finally:
        session.abort()


def _bare_message_id(value: str | None) -> str:
    return (value or "").strip().strip("<>").strip().lower()


def _header(raw: bytes, name: str) -> str | None:
    parsed = BytesHeaderParser(policy=compat32).parsebytes(raw)
    value = parsed.get(name)
    return str(value) if value is not None else None


async def fetch_by_uid(config: ImapConfig, uid: int, uidvalidity: int, keep: int, *,
                       ssl_context: ssl.SSLContext | None = None) -> tuple[bytes, int, str] | None:
    """(first `keep` bytes, whole size, SHA-256 of the whole) of message `uid`; None when the folder's
    UIDVALIDITY changed (the UID may name another message now) or the message is gone.

    A message larger than `keep` is read in 1 MiB slices so that its hash covers every byte while
    only `keep` of them are held.  Connection errors propagate (the watcher retries later)."""
    session = await ImapSession.open(config, ssl_context=ssl_context)
    try:
        folder = await session.examine(config.folder)
        if folder.uidvalidity != uidvalidity:
            return None
        return await read_whole(session, uid, keep)
    finally:
        session.abort()


async def read_whole(session: ImapSession, uid: int, keep: int) -> tuple[bytes, int, str] | None:
    """(first `keep` bytes, size, SHA-256) of message `uid` in the folder `session` has open; None if gone."""
    digest = hashlib.sha256()
    kept = bytearray()
    size: int | None = None
    offset = 0
    while size is None or offset < size:
        found = await session.fetch([uid], f"(UID RFC822.SIZE BODY.PEEK[]<{offset}.{CHUNK}>)")
        items = next((i for i in found if _number(i.get("UID")) == uid), None)
        if items is None:
            return None
        size = int(items.get("RFC822.SIZE") or 0)
        chunk = bytes(items.get(f"BODY[]<{offset}>") or b"")
        if not chunk:
            break
        digest.update(chunk)
        kept += chunk[: max(0, keep - len(kept))]
        offset += len(chunk)
    return bytes(kept), offset, digest.hexdigest()


def _number(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]  # bytes, str or int from the parser
    except (TypeError, ValueError):
        return None
