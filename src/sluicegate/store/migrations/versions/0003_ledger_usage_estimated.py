"""spend ledger: usage_estimated marks rows whose tokens the gateway counted (no usage from the provider)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage_estimated", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        batch_op.drop_column("usage_estimated")
