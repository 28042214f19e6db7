"""Alembic environment: runs on the connection the store hands over (see `Store.migrate`)."""

from __future__ import annotations

from alembic import context

from sluicegate.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `sluicegate db upgrade` or Store.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
