"""One-off lookup of a message by Message-ID (crash recovery of the sender), read-only like the watcher."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

import aioimaplib  # type: ignore[import-untyped]

from monitor.config.models import ImapConfig
from probes.email.imap.parse import to_message
from probes.email.imap.session import FULL_ITEMS, ImapSession


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
