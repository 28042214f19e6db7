"""Durable records: tenants, teams, users, virtual keys and the spend ledger, in SQLite or PostgreSQL."""

from sluicegate.store.db import Store, normalise_url

__all__ = ["Store", "normalise_url"]
