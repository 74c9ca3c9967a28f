"""Plain records the store hands out, so callers never hold live ORM rows."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# probe statuses
PLANNED, CLAIMED, SENDING, SENT, CLOSED, VOID, CANCELLED = (
    "planned", "claimed", "sending", "sent", "closed", "void", "cancelled",
)
IN_FLIGHT = (CLAIMED, SENDING)
OPEN = (SENT,)


_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD)


def new_probe_id(now_ms: int | None = None) -> str:
    """A ULID: 48 bits of milliseconds then 80 random bits, so ids sort by creation time."""
    millis = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    raw = (millis << 80 | int.from_bytes(os.urandom(10))).to_bytes(16)
    # 128 bits as 26 base-32 digits: pad to 130 bits with two leading zero bits.
    return base64.b32encode(b"\0" * 4 + raw)[6:32].decode().translate(_TO_CROCKFORD)


@dataclass(frozen=True)
class NewProbe:
    site: str
    channel: str
    planned_at: datetime
    purpose: str = "open"
    origin: str = "plan"
    plan_key: str | None = None
    id: str = field(default_factory=new_probe_id)


@dataclass(frozen=True)
class ProbeRecord:
    id: str
    site: str
    channel: str
    purpose: str
    origin: str
    status: str
    planned_at: datetime
    sent_at: datetime | None
    timer_started_at: datetime | None
    closed_at: datetime | None
    watch_until: datetime | None
    token: str | None
    message_id: str | None
    void_reason: str | None
    attempts: int
    details: dict[str, Any]

    @classmethod
    def from_row(cls, row: Any) -> ProbeRecord:
        return cls(
            id=row.id, site=row.site, channel=row.channel, purpose=row.purpose, origin=row.origin,
            status=row.status, planned_at=row.planned_at, sent_at=row.sent_at,
            timer_started_at=row.timer_started_at, closed_at=row.closed_at, watch_until=row.watch_until,
            token=row.token, message_id=row.message_id, void_reason=row.void_reason,
            attempts=row.attempts, details=json.loads(row.details or "{}"),
        )

    @property
    def clock_start(self) -> datetime | None:
        """Where commitment clocks start: the kind's own anchor (first ring) or the send instant."""
        return self.timer_started_at or self.sent_at


@dataclass(frozen=True)
class EventRecord:
    seq: int
    probe_id: str | None
    at: datetime
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class VerdictRecord:
    probe_id: str
    commitment: str
    site: str
    channel: str
    verdict: str
    deadline: datetime | None
    started_at: datetime | None
    answered_at: datetime | None
    delay_seconds: float | None
    business_delay_seconds: float | None
    late: bool
    reason: str | None
    decided_at: datetime | None

    def public(self) -> dict[str, Any]:
        """The docs/design.md §5 shape of one verdict."""
        return {
            "verdict": self.verdict,
            "deadline": self.deadline,
            "delay_seconds": self.delay_seconds,
            "business_delay_seconds": self.business_delay_seconds,
            "late": self.late,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class EvidenceItem:
    name: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class StoredEvidence:
    id: int
    probe_id: str
    name: str
    content_type: str
    sha256: str
    size: int
    created_at: datetime


class InvalidCursor(ValueError):
    """A stored cursor whose position cannot be read back; its reader should start again from a safe place."""


@dataclass(frozen=True)
class Cursor:
    name: str
    uidvalidity: int | None = None
    last_uid: int | None = None
    position: dict[str, Any] | None = None


class StoreUnavailable(Exception):
    """The database cannot be reached or used; the monitor's failure, never the service's."""


# buckets of a message read from one of our mailboxes (docs/design.md §2, "No message unexplained")
MATCHED, UNRELATED, HELD, QUARANTINED = "matched", "unrelated", "held", "quarantined"
BUCKETS = (MATCHED, UNRELATED, HELD, QUARANTINED)
ATTACHED, DISMISSED = "attached", "dismissed"


@dataclass(frozen=True)
class MailboxMessage:
    """One message a watcher read from one of our mailboxes, and the one bucket it landed in.

    `summary` holds headers only (never the body).  `raw` is the message as kept for auditors (at most the
    mailbox's `evidence_max_bytes`; `size` and `sha256` are the whole message's); None when not kept (our
    own copies).  `kind`, `counts` and `failure` say what the message is to a probe if it is (or gets)
    attached: an answer of `kind` that counts or not, or the service's `failure` (a permanent bounce).
    """

    mailbox: str
    channel: str
    digest: str                 # SHA-256 of what the watcher read: the same message read twice is recorded once
    location: str               # where it is: "imap:<uidvalidity>:<uid>" or "maildir:<file key>"
    bucket: str                 # one of BUCKETS
    reason: str
    received_at: datetime
    summary: dict[str, Any] = field(default_factory=dict)
    probe_id: str | None = None   # matched: the probe; held: the probe it would answer
    method: str | None = None
    auth: dict[str, Any] | None = None
    kind: str | None = None
    counts: bool = False
    failure: str | None = None
    raw: bytes | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class StoredMessage:
    id: int
    message: MailboxMessage
    recorded_at: datetime
    decision: str | None = None          # attached | dismissed, by an auditor
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    decided_probe: str | None = None     # the probe it was attached to
    kept_bytes: int = 0                  # size of the kept raw message (0: not kept)


@dataclass(frozen=True)
class Fence:
    """A fleet task held at `epoch`: writes made under it commit only while the task's epoch is still that."""

    task: str
    epoch: int


class LeaseLost(StoreUnavailable):
    """A fenced write was refused: another instance has taken the task over since this one held it.

    A `StoreUnavailable`, so background work waits and retries as for an outage (it never skips what it
    was recording); meanwhile the fleet notices the loss and cancels that work, and the new holder,
    resuming from the stored cursors, records it once."""
