"""Database tables (SQLAlchemy 2 declarative models), the same on SQLite and PostgreSQL.

- `probes`: one row per planned or one-off probe; its `status` moves
  planned → claimed → sending → sent → closed (or void / cancelled).
- `events`: the append-only log.  Each row carries the SHA-256 of the previous
  row (`prev_hash`) and its own (`hash`), one chain per store; `chain_head`
  holds the tip so that appends serialise on one row lock.
- `verdicts`: derived from events (recomputable), one row per probe × commitment.
- `evidence`: raw messages and SIP transcripts, with their SHA-256.
- `watcher_cursors`: where each mailbox / call-log reader stopped.
- `plans`: the `per_month` each site/channel/month was planned with, which
  makes re-planning idempotent.
- `mailbox_messages`: every message read from our mailboxes, in exactly one
  bucket (matched, unrelated, held, quarantined) with its reason, a
  headers-only summary and, for auditors, the message kept (capped); an
  auditor's attach or dismiss is recorded here and as an event.
- `probe_fingerprints`: the hashed word shingles of what each probe sent
  (never the text), to recognise an answer that quotes it.
- `calls`: the sites' real calls read from call logs (CDR), judged like
  mystery calls; not part of the event chain (they are copies of the PBX's
  own records, re-readable at any time).
- `fleet_leases`: one row per singleton task of a fleet (planner, sweeper,
  refresh, a mailbox, a call log): its epoch, bumped by each new holder, that
  fences the writes of an old one; who holds it; the status its holder
  reports (`monitor/fleet`).

Instants are stored as UTC; `UTCDateTime` gives them back timezone-aware on
both backends (SQLite has no time zones).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC instant")
        value = value.astimezone(timezone.utc)
        # SQLite keeps text; drop the offset there so that string comparison orders correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Probe(Base):
    __tablename__ = "probes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16), default="open")
    origin: Mapped[str] = mapped_column(String(16), default="plan")
    plan_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    planned_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    timer_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    watch_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Short tokens recur over years; they only need to be unique among probes still watched,
    # which the email probe checks when it draws one.
    token: Mapped[str | None] = mapped_column(String(32), index=True)
    message_id: Mapped[str | None] = mapped_column(String(255))
    void_reason: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_probes_status_planned_at", "status", "planned_at"),
        Index("ix_probes_site_channel_planned_at", "site", "channel", "planned_at"),
        Index("ix_probes_planned_at_id", "planned_at", "id"),
        Index("ix_probes_message_id", "message_id"),
    )


class Event(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    probe_id: Mapped[str | None] = mapped_column(String(32), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ChainHead(Base):
    __tablename__ = "chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class Verdict(Base):
    __tablename__ = "verdicts"

    probe_id: Mapped[str] = mapped_column(String(32), ForeignKey("probes.id"), primary_key=True)
    commitment: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    verdict: Mapped[str] = mapped_column(String(8))
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delay_seconds: Mapped[float | None] = mapped_column(Float)
    business_delay_seconds: Mapped[float | None] = mapped_column(Float)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_verdicts_site_commitment_started_at", "site", "commitment", "started_at"),
        Index("ix_verdicts_verdict_deadline", "verdict", "deadline"),
        # Compliance of a period: a range on started_at, counted by (site, commitment, verdict) from the index.
        Index("ix_verdicts_started_at_site_commitment_verdict", "started_at", "site", "commitment", "verdict"),
    )


class Evidence(Base):
    __tablename__ = "evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    probe_id: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WatcherCursor(Base):
    __tablename__ = "watcher_cursors"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int | None] = mapped_column(BigInteger)
    position: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Call(Base):
    """A call from a site's call log (CDR), with its verdict; (source, record_key) makes imports idempotent."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    record_key: Mapped[str] = mapped_column(String(128))
    site: Mapped[str] = mapped_column(String(64))
    dialled: Mapped[str] = mapped_column(String(32))
    caller_hash: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ring_seconds: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    legs: Mapped[int] = mapped_column(Integer, default=1)
    opening: Mapped[str] = mapped_column(String(8))
    commitment: Mapped[str | None] = mapped_column(String(64))
    verdict: Mapped[str | None] = mapped_column(String(8))
    delay_seconds: Mapped[float | None] = mapped_column(Float)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(32))
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("source", "record_key"),
        Index("ix_calls_site_started_at", "site", "started_at"),
    )


class Plan(Base):
    __tablename__ = "plans"

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    per_month: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MailboxMessageRow(Base):
    """A message read from one of our mailboxes; (mailbox, digest) makes re-reading it a no-op."""

    __tablename__ = "mailbox_messages"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(255))
    bucket: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200))
    probe_id: Mapped[str | None] = mapped_column(String(32), index=True)
    method: Mapped[str | None] = mapped_column(String(16))
    auth: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(16))
    counts: Mapped[bool] = mapped_column(Boolean, default=False)
    failure: Mapped[str | None] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text, default="{}")
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decision: Mapped[str | None] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(String(200))
    decided_probe: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("mailbox", "digest"),
        Index("ix_mailbox_messages_mailbox_bucket_id", "mailbox", "bucket", "id"),
    )


class ProbeFingerprint(Base):
    """Hashes of the word shingles of what a probe sent; `id` grows, so a reader can follow new ones."""

    __tablename__ = "probe_fingerprints"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    probe_id: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class FleetLease(Base):
    """A singleton task of a fleet: each takeover bumps `epoch`, and the holder's writes check it (fencing)."""

    __tablename__ = "fleet_leases"

    task: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What the holder last reported of its work (a mailbox up or down, and since when); null until it does.
    up: Mapped[bool | None] = mapped_column(Boolean)
    since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(String(200))
