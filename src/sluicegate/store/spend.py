"""The spend ledger table: idempotent batch inserts and grouped spend reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, func, select

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


def _sqlite_time(value: dt.datetime) -> str:
    """What SQLAlchemy's SQLite DateTime stores, so reads through SQLAlchemy parse it back."""
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    text = value.replace(tzinfo=None).isoformat(" ")
    return text if len(text) > 19 else text + ".000000"  # isoformat drops a zero fraction


def _pg_type(column: Any) -> str:
    kind = column.type
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, Float):
        return "double precision"
    return "text"


class SpendLedger:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._columns = [c.name for c in LedgerEntry.__table__.columns]
        self._ts_index = self._columns.index("ts")
        getter = itemgetter(*self._columns)
        self._values: Callable[[Mapping[str, Any]], list[Any]] = lambda row: list(getter(row))
        names = ", ".join(self._columns)
        if store.is_sqlite:
            source = f"VALUES ({', '.join('?' for _ in self._columns)})"
        else:  # one statement per batch: each column travels as one array, encoded by asyncpg in C
            arrays = ", ".join(f"${i + 1}::{_pg_type(c)}[]" for i, c in enumerate(LedgerEntry.__table__.columns))
            source = f"SELECT * FROM unnest({arrays})"
        self._insert_sql = f"INSERT INTO spend_ledger ({names}) {source} ON CONFLICT (request_id) DO NOTHING"

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inserts the rows; a request id already present is skipped, so replaying a batch is harmless."""
        if not rows:
            return
        # Straight to the driver with positional tuples: SQLAlchemy's per-row parameter processing cost
        # more CPU than the database itself, and this runs on the gateway's event loop.
        if self._store.is_sqlite:
            at = self._ts_index
            values = []
            for row in rows:
                row_values = self._values(row)
                row_values[at] = _sqlite_time(row_values[at])
                values.append(tuple(row_values))
            async with self._store.engine.begin() as conn:
                await conn.exec_driver_sql(self._insert_sql, values)
            return
        columns = tuple(list(column) for column in zip(*(self._values(row) for row in rows), strict=True))
        async with self._store.engine.begin() as conn:
            await conn.exec_driver_sql(self._insert_sql, columns)

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
