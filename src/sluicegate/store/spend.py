"""The spend ledger table: idempotent batch inserts and grouped spend reports."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, func, select
from sqlalchemy.engine import make_url

from sluicegate.keys.clock import utc
from sluicegate.store.db import Store, sqlite_pragmas
from sluicegate.store.models import LedgerEntry
from sluicegate.store.sqlite_writer import SqliteWriter

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


PreparedRow = tuple[Any, ...]
# Columns that records spooled by an earlier version lack, with the value such a record stands for.
_DEFAULTS: dict[str, Any] = {
    "usage_estimated": False,
    "requested_model": None,
    "route_tier": None,
    "task_type": None,
    "complexity": None,
    "guardrail_action": None,
    "guardrail_categories": None,
    "saved_micros": None,
    "trace_id": None,
}


class SpendLedger:
    """Rows go in as `prepare`d tuples, in column order with the dialect's own time value, so the writer does
    no per-row work at insert time. With SQLite the inserts run on a connection of their own, a few rows per
    turn of the event loop (`sqlite_writer.py` says why); with PostgreSQL each batch is one statement whose
    columns travel as arrays, encoded by asyncpg in C."""

    def __init__(self, store: Store, *, writer_nice: int = 0) -> None:
        self._store = store
        self._writer_nice = writer_nice
        self._columns = [c.name for c in LedgerEntry.__table__.columns]
        self._getter = itemgetter(*self._columns)
        names = ", ".join(self._columns)
        if store.is_sqlite:
            source = f"VALUES ({', '.join('?' for _ in self._columns)})"
        else:
            arrays = ", ".join(f"${i + 1}::{_pg_type(c)}[]" for i, c in enumerate(LedgerEntry.__table__.columns))
            source = f"SELECT * FROM unnest({arrays})"
        self._insert_sql = f"INSERT INTO spend_ledger ({names}) {source} ON CONFLICT (request_id) DO NOTHING"
        self._sqlite: SqliteWriter | None = None
        self._second, self._second_text, self._day = -1, "", ""

    def prepare(self, record: Mapping[str, Any]) -> PreparedRow:
        """The record (the spool's JSON-ready form, or with `ts` as a datetime) as the database takes it."""
        ts = record["ts"]
        when: Any
        if self._store.is_sqlite and not isinstance(ts, dt.datetime):
            when, day = self._sqlite_times(float(ts))
        else:
            moment = ts if isinstance(ts, dt.datetime) else utc(float(ts))
            when, day = (_sqlite_time(moment) if self._store.is_sqlite else moment), moment.date().isoformat()
        return tuple(self._getter({**_DEFAULTS, **record, "ts": when, "day": day}))

    def _sqlite_times(self, ts: float) -> tuple[str, str]:
        """`_sqlite_time` and the day of a Unix time; the date-and-second part is cached, since each second
        sees many rows (this runs once per request)."""
        fraction_of_second, whole = math.modf(ts)  # rounded as datetime.fromtimestamp rounds
        second, fraction = int(whole), round(fraction_of_second * 1_000_000)
        if fraction >= 1_000_000:
            second, fraction = second + 1, fraction - 1_000_000
        elif fraction < 0:
            second, fraction = second - 1, fraction + 1_000_000
        if second != self._second:
            moment = utc(second)
            self._second, self._second_text = second, moment.isoformat(" ")[:19]
            self._day = moment.date().isoformat()
        return f"{self._second_text}.{fraction:06d}", self._day

    async def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inserts the rows; a request id already present is skipped, so replaying a batch is harmless."""
        await self.insert_prepared([self.prepare(row) for row in rows])

    async def insert_prepared(self, rows: Sequence[PreparedRow]) -> None:
        if not rows:
            return
        if self._store.is_sqlite:
            if self._sqlite is None:
                self._sqlite = SqliteWriter(
                    make_url(self._store.url).database or "",
                    self._insert_sql,
                    sqlite_pragmas,
                    timeout=self._store.timeout,
                    checkpoint_nice=self._writer_nice,
                )
            await self._sqlite.insert(rows)
            return
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with self._store.engine.begin() as conn:
            await conn.exec_driver_sql(self._insert_sql, tuple(columns))

    async def close(self) -> None:
        if self._sqlite is not None:
            writer, self._sqlite = self._sqlite, None
            await writer.close()

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
