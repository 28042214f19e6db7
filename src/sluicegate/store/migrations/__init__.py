"""Alembic migrations of the durable store, applied at start or by `sluicegate db upgrade`."""
