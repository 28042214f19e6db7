"""audit_log and audit_checkpoints: the tamper-evident audit trail, one hash chain per gateway instance

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("ts_micros", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_ts_micros", "audit_log", ["ts_micros"])
    op.create_index("ix_audit_log_kind", "audit_log", ["kind"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("instance", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(8), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("ts_micros", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_index("ix_audit_log_kind", "audit_log")
    op.drop_index("ix_audit_log_ts_micros", "audit_log")
    op.drop_table("audit_log")
