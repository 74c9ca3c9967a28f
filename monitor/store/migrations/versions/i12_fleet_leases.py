"""fleet leases: one row per singleton task, its epoch fences the writes of a former holder

Revision ID: i12_fleet_leases
Revises: i10_message_buckets
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i12_fleet_leases"
down_revision: str | None = "i10_message_buckets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fleet_leases",
        sa.Column("task", sa.String(length=128), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("up", sa.Boolean(), nullable=True),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("task", name=op.f("pk_fleet_leases")),
    )


def downgrade() -> None:
    op.drop_table("fleet_leases")
