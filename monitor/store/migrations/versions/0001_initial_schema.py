"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    chain_head = op.create_table('chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chain_head'))
    )
    # The head row exists from the start so that appends can always lock it (a lock on a
    # missing row locks nothing, and two first appends would both write event 1).
    op.bulk_insert(chain_head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table('events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('probe_id', sa.String(length=32), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_probe_id'), ['probe_id'], unique=False)

    op.create_table('evidence',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('probe_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evidence'))
    )
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_probe_id'), ['probe_id'], unique=False)

    op.create_table('plans',
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('per_month', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site', 'channel', 'purpose', 'month', name=op.f('pk_plans'))
    )
    op.create_table('probes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('plan_key', sa.String(length=160), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('planned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('timer_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('watch_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('token', sa.String(length=32), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('void_reason', sa.String(length=200), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_probes')),
    sa.UniqueConstraint('plan_key', name=op.f('uq_probes_plan_key'))
    )
    with op.batch_alter_table('probes', schema=None) as batch_op:
        batch_op.create_index('ix_probes_message_id', ['message_id'], unique=False)
        batch_op.create_index('ix_probes_planned_at_id', ['planned_at', 'id'], unique=False)
        batch_op.create_index('ix_probes_site_channel_planned_at', ['site', 'channel', 'planned_at'], unique=False)
        batch_op.create_index('ix_probes_status_planned_at', ['status', 'planned_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_probes_token'), ['token'], unique=False)

    op.create_table('watcher_cursors',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
    sa.Column('last_uid', sa.BigInteger(), nullable=True),
    sa.Column('position', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_watcher_cursors'))
    )
    op.create_table('verdicts',
    sa.Column('probe_id', sa.String(length=32), nullable=False),
    sa.Column('commitment', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('verdict', sa.String(length=8), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delay_seconds', sa.Float(), nullable=True),
    sa.Column('business_delay_seconds', sa.Float(), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['probe_id'], ['probes.id'], name=op.f('fk_verdicts_probe_id_probes')),
    sa.PrimaryKeyConstraint('probe_id', 'commitment', name=op.f('pk_verdicts'))
    )
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.create_index('ix_verdicts_site_commitment_started_at', ['site', 'commitment', 'started_at'], unique=False)
        batch_op.create_index('ix_verdicts_verdict_deadline', ['verdict', 'deadline'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('verdicts', schema=None) as batch_op:
        batch_op.drop_index('ix_verdicts_verdict_deadline')
        batch_op.drop_index('ix_verdicts_site_commitment_started_at')

    op.drop_table('verdicts')
    op.drop_table('watcher_cursors')
    with op.batch_alter_table('probes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_probes_token'))
        batch_op.drop_index('ix_probes_status_planned_at')
        batch_op.drop_index('ix_probes_site_channel_planned_at')
        batch_op.drop_index('ix_probes_planned_at_id')
        batch_op.drop_index('ix_probes_message_id')

    op.drop_table('probes')
    op.drop_table('plans')
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_probe_id'))

    op.drop_table('evidence')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_probe_id'))

    op.drop_table('events')
    op.drop_table('chain_head')
