"""Stored Responses API answers on SQLite and PostgreSQL: per tenant, expiring, deletable, overwritten by id."""

from __future__ import annotations

import datetime as dt

from sluicegate.store.db import Store
from sluicegate.store.responses import ResponseStore

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
ITEMS = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]


async def test_kept_per_tenant_until_it_expires(store: Store) -> None:
    await store.migrate()
    responses = ResponseStore(store, ttl_seconds=3600)
    answer = {"id": "resp_1", "object": "response", "output": [{"type": "message", "content": []}]}
    await responses.put("acme", answer, [*ITEMS, *answer["output"]], ITEMS, NOW)
    kept = await responses.get("acme", "resp_1", NOW + dt.timedelta(minutes=59))
    assert kept is not None and kept.response == answer and kept.input_items == ITEMS and len(kept.items) == 2
    assert await responses.get("other", "resp_1", NOW) is None  # another tenant's
    assert await responses.get("acme", "resp_1", NOW + dt.timedelta(minutes=61)) is None  # expired
    assert not await responses.delete("other", "resp_1")
    assert await responses.delete("acme", "resp_1")
    assert await responses.get("acme", "resp_1", NOW) is None
    assert not await responses.delete("acme", "resp_1")
