"""calls from call logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op



revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('record_key', sa.String(length=128), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('dialled', sa.String(length=32), nullable=False),
    sa.Column('caller_hash', sa.String(length=64), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ring_seconds', sa.Float(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('legs', sa.Integer(), nullable=False),
    sa.Column('opening', sa.String(length=8), nullable=False),
    sa.Column('commitment', sa.String(length=64), nullable=True),
    sa.Column('verdict', sa.String(length=8), nullable=True),
    sa.Column('delay_seconds', sa.Float(), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls')),
    sa.UniqueConstraint('source', 'record_key', name=op.f('uq_calls_source_record_key'))
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_site_started_at', ['site', 'started_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_site_started_at')

    op.drop_table('calls')
