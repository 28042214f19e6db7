"""Tenants, teams, users and virtual keys: the repository the admin service and the key lookup read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from sluicegate.store.db import Store
from sluicegate.store.models import ApiKey, Base, Team, Tenant, User

E = TypeVar("E", bound=Base)


class Conflict(Exception):
    """The entity already exists."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key with the rows it belongs to, as the auth stage needs them."""

    key: ApiKey
    team: Team
    tenant: Tenant
    user: User | None
    via_previous: bool  # matched the pre-rotation secret


class Directory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, entity: E) -> E:
        try:
            async with self._store.session() as session:
                session.add(entity)
        except IntegrityError:
            raise Conflict(f"{entity.__tablename__[:-1]} already exists") from None
        return entity

    async def get(self, kind: type[E], entity_id: str) -> E | None:
        async with self._store.session() as session:
            return await session.get(kind, entity_id)

    async def list(self, kind: type[E], **filters: Any) -> list[E]:
        query = select(kind)
        for column, value in filters.items():
            if value is not None:
                query = query.where(getattr(kind, column) == value)
        query = query.order_by(kind.created_at)  # type: ignore[attr-defined]
        async with self._store.session() as session:
            return list((await session.scalars(query)).all())

    async def update(self, kind: type[E], entity_id: str, **changes: Any) -> E | None:
        async with self._store.session() as session:
            entity = await session.get(kind, entity_id)
            if entity is None:
                return None
            for column, value in changes.items():
                setattr(entity, column, value)
            return entity

    async def delete(self, kind: type[E], entity_id: str) -> bool:
        try:
            async with self._store.session() as session:
                entity = await session.get(kind, entity_id)
                if entity is None:
                    return False
                await session.delete(entity)
        except IntegrityError:
            raise Conflict(f"{kind.__tablename__[:-1]} '{entity_id}' still has members or keys") from None
        return True

    async def budgeted(self) -> dict[str, Sequence[Any]]:
        """Every tenant, team, user and key with a budget, by kind (for forecasts)."""
        found: dict[str, Sequence[Any]] = {}
        async with self._store.session() as session:
            for kind, table in (("tenant", Tenant), ("team", Team), ("user", User), ("key", ApiKey)):
                query = select(table).where(table.budget_micros.is_not(None))
                if table is ApiKey:
                    query = query.where(ApiKey.revoked_at.is_(None))
                found[kind] = (await session.scalars(query)).all()
        return found

    async def find_key(self, key_hash: str, now: dt.datetime) -> KeyRecord | None:
        """The key whose current secret, or whose previous secret still in its grace period, has this hash."""
        query = select(ApiKey).where(
            or_(
                ApiKey.key_hash == key_hash,
                (ApiKey.previous_hash == key_hash) & (ApiKey.previous_expires_at > now),
            )
        )
        async with self._store.session() as session:
            key = (await session.scalars(query)).first()
            if key is None:
                return None
            team = await session.get(Team, key.team_id)
            tenant = await session.get(Tenant, key.tenant_id)
            user = await session.get(User, key.user_id) if key.user_id else None
        if team is None or tenant is None:
            return None
        return KeyRecord(key, team, tenant, user, via_previous=key.key_hash != key_hash)
