"""Every message read from a mailbox lands in one bucket; probes keep a fingerprint of what they sent (issue 10)

Revision ID: i10_message_buckets
Revises: 0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i10_message_buckets'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('mailbox_messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('mailbox', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=255), nullable=False),
    sa.Column('bucket', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('probe_id', sa.String(length=32), nullable=True),
    sa.Column('method', sa.String(length=16), nullable=True),
    sa.Column('auth', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('counts', sa.Boolean(), nullable=False),
    sa.Column('failure', sa.String(length=32), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('raw', sa.LargeBinary(), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_reason', sa.String(length=200), nullable=True),
    sa.Column('decided_probe', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailbox_messages')),
    sa.UniqueConstraint('mailbox', 'digest', name=op.f('uq_mailbox_messages_mailbox_digest'))
    )
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_mailbox_messages_mailbox_bucket_id', ['mailbox', 'bucket', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailbox_messages_probe_id'), ['probe_id'], unique=False)

    op.create_table('probe_fingerprints',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('probe_id', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('hashes', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_probe_fingerprints')),
    sa.UniqueConstraint('probe_id', name=op.f('uq_probe_fingerprints_probe_id'))
    )


def downgrade() -> None:
    op.drop_table('probe_fingerprints')
    with op.batch_alter_table('mailbox_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mailbox_messages_probe_id'))
        batch_op.drop_index('ix_mailbox_messages_mailbox_bucket_id')

    op.drop_table('mailbox_messages')
