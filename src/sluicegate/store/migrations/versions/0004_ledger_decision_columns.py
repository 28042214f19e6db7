"""spend ledger: the columns the optional stages fill (requested model, route tier, classifier, guardrails,
cache savings, trace id); all nullable, so existing rows and older spool lines need nothing

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("requested_model", sa.String(length=200)),
    ("route_tier", sa.String(length=32)),
    ("task_type", sa.String(length=32)),
    ("complexity", sa.Float()),
    ("guardrail_action", sa.String(length=16)),
    ("guardrail_categories", sa.String(length=200)),
    ("saved_micros", sa.BigInteger()),
    ("trace_id", sa.String(length=32)),
)


def upgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        for name, kind in _COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("spend_ledger", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
