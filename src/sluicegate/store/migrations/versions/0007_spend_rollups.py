"""spend_rollups and spend_ledger.rolled_up: hourly and daily spend aggregates kept current from the ledger

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rolled_up", sa.Boolean(), nullable=False, server_default=sa.false()))
    unrolled = sa.text("rolled_up = false") if op.get_bind().dialect.name != "sqlite" else sa.text("rolled_up = 0")
    op.create_index(
        "ix_spend_ledger_unrolled", "spend_ledger", ["ts"], sqlite_where=unrolled, postgresql_where=unrolled
    )
    op.create_table(
        "spend_rollups",
        sa.Column("grain", sa.String(4), primary_key=True),
        sa.Column("bucket", sa.String(13), primary_key=True),
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("feature", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("unpriced_requests", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("spend_rollups")
    op.drop_index("ix_spend_ledger_unrolled", "spend_ledger")
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        batch_op.drop_column("rolled_up")
