"""The spend ledger table: idempotent batch inserts and grouped spend reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sluicegate.store.db import Store
from sluicegate.store.models import LedgerEntry

GroupBy = Literal["tenant", "team", "user", "key", "model", "feature", "day", "deployment", "end_user"]

_GROUP_COLUMNS = {
    "tenant": LedgerEntry.tenant_id,
    "team": LedgerEntry.team_id,
    "user": LedgerEntry.user_id,
    "key": LedgerEntry.key_id,
    "model": LedgerEntry.model,
    "feature": LedgerEntry.feature,
    "day": LedgerEntry.day,
    "deployment": LedgerEntry.deployment,
    "end_user": LedgerEntry.end_user,
}
GROUPS: tuple[str, ...] = tuple(_GROUP_COLUMNS)


@dataclass(frozen=True, slots=True)
class SpendFilter:
    tenant_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    key_id: str | None = None
    model: str | None = None
    feature: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class SpendRow:
    group: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    cost_micros: int
    unpriced_requests: int  # served requests whose price was unknown (not counted as $0 silently)


class SpendLedger:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._insert = sqlite_insert if store.is_sqlite else pg_insert

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inserts the rows; a request id already present is skipped, so replaying a batch is harmless."""
        if not rows:
            return
        statement = self._insert(LedgerEntry).on_conflict_do_nothing(index_elements=["request_id"])
        async with self._store.session() as session:
            await session.execute(statement, list(rows))

    async def report(self, by: str, where: SpendFilter = SpendFilter()) -> list[SpendRow]:
        column = _GROUP_COLUMNS[by]
        unpriced = func.sum(
            ((LedgerEntry.cost_micros.is_(None)) & (LedgerEntry.output_tokens + LedgerEntry.input_tokens > 0)).cast(
                LedgerEntry.status.type
            )
        )
        query = select(
            column.label("grp"),
            func.count(),
            func.coalesce(func.sum(LedgerEntry.input_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.output_tokens), 0),
            func.coalesce(func.sum(LedgerEntry.cost_micros), 0),
            func.coalesce(unpriced, 0),
        )
        for name, value in (
            ("tenant_id", where.tenant_id),
            ("team_id", where.team_id),
            ("user_id", where.user_id),
            ("key_id", where.key_id),
            ("model", where.model),
            ("feature", where.feature),
        ):
            if value is not None:
                query = query.where(getattr(LedgerEntry, name) == value)
        if where.since is not None:
            query = query.where(LedgerEntry.ts >= where.since)
        if where.until is not None:
            query = query.where(LedgerEntry.ts < where.until)
        query = query.group_by(column).order_by(func.coalesce(func.sum(LedgerEntry.cost_micros), 0).desc(), column)
        async with self._store.session() as session:
            result = await session.execute(query)
            return [SpendRow(g, int(n), int(i), int(o), int(c), int(u)) for g, n, i, o, c, u in result.all()]

    async def count(self) -> int:
        async with self._store.session() as session:
            return int((await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one())
