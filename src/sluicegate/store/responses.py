"""Stored Responses API answers: put after the client has its answer, read for `previous_response_id` and
`GET /v1/responses/{id}`, per tenant, gone once expired (expired rows are swept as new ones are written)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, select

from sluicegate.store.db import Store
from sluicegate.store.models import StoredResponse


@dataclass(frozen=True, slots=True)
class Kept:
    response: dict[str, Any]
    items: list[dict[str, Any]]  # the conversation up to and including this answer
    input_items: list[dict[str, Any]]


class ResponseStore:
    def __init__(self, store: Store, ttl_seconds: float) -> None:
        self._store = store
        self._ttl = dt.timedelta(seconds=ttl_seconds)
        self._writes = 0

    async def put(
        self,
        tenant: str,
        response: dict[str, Any],
        items: list[dict[str, Any]],
        input_items: list[dict[str, Any]],
        now: dt.datetime,
    ) -> None:
        row = StoredResponse(
            tenant_id=tenant,
            id=response["id"],
            created_at=now,
            expires_at=now + self._ttl,
            response=orjson.dumps(response).decode(),
            items=orjson.dumps(items).decode(),
            input_items=orjson.dumps(input_items).decode(),
        )
        async with self._store.session() as session:
            await session.merge(row)
            self._writes += 1
            if self._writes % 100 == 1:  # now and then, not per request
                await session.execute(delete(StoredResponse).where(StoredResponse.expires_at < now))

    async def get(self, tenant: str, response_id: str, now: dt.datetime) -> Kept | None:
        async with self._store.session() as session:
            row = await session.scalar(
                select(StoredResponse).where(
                    StoredResponse.tenant_id == tenant,
                    StoredResponse.id == response_id,
                    StoredResponse.expires_at >= now,
                )
            )
        if row is None:
            return None
        return Kept(orjson.loads(row.response), orjson.loads(row.items), orjson.loads(row.input_items))

    async def delete(self, tenant: str, response_id: str) -> bool:
        async with self._store.session() as session:
            result = await session.execute(
                delete(StoredResponse).where(StoredResponse.tenant_id == tenant, StoredResponse.id == response_id)
            )
        return bool(getattr(result, "rowcount", 0))
