"""The spend ledger table: idempotent batch inserts and grouped spend reports."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Integer, String, func, select, text
from sqlalchemy.engine import make_url

from sluicegate.keys.clock import utc
from sluicegate.store.db import Store, sqlite_pragmas
from sluicegate.store.models import LedgerEntry
from sluicegate.store.rollups import ROLLUP_GROUPS, SpendRollups
from sluicegate.store.sqlite_writer import SqliteWriter

GroupBy = Literal[
    "tenant",
    "team",
    "user",
    "key",
    "model",
    "feature",
    "day",
    "deployment",
    "end_user",
    "tier",
    "task",
    "cache",
    "guardrail",
    "guardrail_categories",
]

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
    # what the optional stages decided: the auto route's tier and task, the response cache, the firewall
    "tier": LedgerEntry.route_tier,
    "task": LedgerEntry.task_type,
    "cache": LedgerEntry.cache_status,
    "guardrail": LedgerEntry.guardrail_action,
    "guardrail_categories": LedgerEntry.guardrail_categories,
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
    saved_micros: int = 0  # provider cost avoided by local answers (the ledger scan reads it; roll-ups keep none)


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
    "rolled_up": False,
}


# Characters a database may refuse or a report should not carry: C0/C1 controls (NUL included: PostgreSQL
# refuses it in text) and lone surrogates (not encodable as UTF-8, so no driver can send them).
_HOSTILE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
UNATTRIBUTED = "(unattributed)"


def clean_text(value: Any, limit: int) -> str:
    """A text value every database takes: controls, NUL and lone surrogates become U+FFFD, and it is cut to
    `limit` characters (the column's length). What the client sent is never a reason to lose the row."""
    text: str = value if type(value) is str else str(value)
    if len(text) <= limit and text.isprintable():  # the common case: one C call, nothing to change
        return text
    return _HOSTILE.sub("\ufffd", text)[:limit]


class SpendLedger:
    """Rows go in as `prepare`d tuples, in column order with the dialect's own time value, so the writer does
    no per-row work at insert time. With SQLite the inserts run on a connection of their own, a few rows per
    turn of the event loop (`sqlite_writer.py` says why); with PostgreSQL each batch is one statement whose
    columns travel as arrays, encoded by asyncpg in C."""

    def __init__(self, store: Store, *, writer_nice: int = 0) -> None:
        self._store = store
        self._writer_nice = writer_nice
        self.rollups = SpendRollups(store)
        self._columns = [c.name for c in LedgerEntry.__table__.columns]
        self._getter = itemgetter(*self._columns)
        names = ", ".join(self._columns)
        if store.is_sqlite:
            source = f"VALUES ({', '.join('?' for _ in self._columns)})"
        else:
            arrays = ", ".join(f"${i + 1}::{_pg_type(c)}[]" for i, c in enumerate(LedgerEntry.__table__.columns))
            source = f"SELECT * FROM unnest({arrays})"
        # A request id already present is skipped (replays are harmless), except a stream's in-flight row,
        # which its later rows (progress, then the final one) replace; nothing ever replaces a final row.
        updates = ", ".join(f"{name} = excluded.{name}" for name in self._columns if name != "request_id")
        self._insert_sql = (
            f"INSERT INTO spend_ledger ({names}) {source} ON CONFLICT (request_id) DO UPDATE SET {updates} "
            "WHERE spend_ledger.outcome = 'in_flight'"
        )
        self._outcome = self._columns.index("outcome")
        self._sqlite: SqliteWriter | None = None
        self._second, self._second_text, self._day = -1, "", ""
        # (position, length) of each text column and (position, bounds) of each integer one, checked on every
        # row so that no value a client chose can make the database refuse it
        columns = list(LedgerEntry.__table__.columns)
        self._texts = [(i, c.type.length or 10_000) for i, c in enumerate(columns) if isinstance(c.type, String)]
        self._ints = [
            (i, _INT64 if isinstance(c.type, BigInteger) else _INT32)
            for i, c in enumerate(columns)
            if isinstance(c.type, Integer)
        ]
        self._nullable = {c.name for c in columns if c.nullable}

    def prepare(self, record: Mapping[str, Any]) -> PreparedRow:
        """The record (the spool's JSON-ready form, or with `ts` as a datetime) as the database takes it."""
        ts = record["ts"]
        when: Any
        if self._store.is_sqlite and not isinstance(ts, dt.datetime):
            when, day = self._sqlite_times(float(ts))
        else:
            moment = ts if isinstance(ts, dt.datetime) else utc(float(ts))
            when, day = (_sqlite_time(moment) if self._store.is_sqlite else moment), moment.date().isoformat()
        row = self._getter({**_DEFAULTS, **record, "ts": when, "day": day})
        for i, limit in self._texts:
            value = row[i]
            if value is not None and (type(value) is not str or len(value) > limit or not value.isprintable()):
                break
        else:
            for i, (low, high) in self._ints:
                value = row[i]
                if value is not None and (type(value) is not int or not low <= value <= high):
                    break
            else:
                clean: tuple[Any, ...] = row
                return clean
        return self._normalised(list(row))

    def _normalised(self, row: list[Any]) -> PreparedRow:
        for i, limit in self._texts:
            if row[i] is not None:
                row[i] = clean_text(row[i], limit)
        for i, (low, high) in self._ints:
            value = row[i]
            if value is not None and not isinstance(value, bool):
                try:
                    row[i] = min(max(int(value), low), high)
                except (TypeError, ValueError, OverflowError):
                    row[i] = None if self._columns[i] in self._nullable else 0
        return tuple(row)

    def unattributed(self, record: Mapping[str, Any]) -> PreparedRow:
        """The row of a record the database refused even normalised: its tokens, cost, time and status, with
        every text it carried left out, so the spend still counts in every report (as `(unattributed)`)."""
        kept = {
            name: record.get(name)
            for name in (
                "request_id",
                "ts",
                "input_tokens",
                "output_tokens",
                "cached_input_tokens",
                "reasoning_tokens",
                "cost_micros",
                "usage_estimated",
                "status",
                "stream",
                "saved_micros",
            )
        }
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "status"):
            if kept[name] is None:
                kept[name] = 0
        record = {
            **dict.fromkeys(self._columns),
            **kept,
            "endpoint": "unknown",
            "model": UNATTRIBUTED,
            "outcome": "unattributed",
            "stream": bool(kept["stream"]),
            "usage_estimated": bool(kept["usage_estimated"]),
            "rolled_up": False,
        }
        if not isinstance(record["ts"], (int, float, dt.datetime)):
            record["ts"] = 0.0
        return self._normalised(list(self.prepare(record)))

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
        if len({row[0] for row in rows}) != len(rows):
            rows = self._latest_per_request(rows)
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

    async def close_in_flight(self, prefix: str, since: float) -> int:
        """Marks the in-flight rows of a process that died (request ids starting with `prefix`, written
        since `since`) as `interrupted`: their usage is the last estimate spooled before it died."""
        since_value: Any = utc(since)
        if self._store.is_sqlite:
            since_value = _sqlite_time(since_value)
        query = text(
            "UPDATE spend_ledger SET outcome = 'interrupted' "
            "WHERE ts >= :since AND outcome = 'in_flight' AND request_id LIKE :pattern"
        )
        async with self._store.engine.begin() as conn:
            result = await conn.execute(query, {"since": since_value, "pattern": prefix + "%"})
        return int(result.rowcount or 0)

    def _latest_per_request(self, rows: Sequence[PreparedRow]) -> list[PreparedRow]:
        """One row per request id (PostgreSQL cannot upsert a row twice in one statement): the final row
        over any in-flight one, else the later."""
        kept: dict[Any, PreparedRow] = {}
        outcome = self._outcome
        for row in rows:
            held = kept.get(row[0])
            if held is None or held[outcome] == "in_flight" or row[outcome] != "in_flight":
                kept[row[0]] = row
        return list(kept.values())

    async def close(self) -> None:
        if self._sqlite is not None:
            writer, self._sqlite = self._sqlite, None
            await writer.close()

    async def report(self, by: str, where: SpendFilter = SpendFilter()) -> list[SpendRow]:
        if by in ROLLUP_GROUPS:
            filters = {
                name: value
                for name, value in (
                    ("tenant_id", where.tenant_id),
                    ("team_id", where.team_id),
                    ("user_id", where.user_id),
                    ("key_id", where.key_id),
                    ("model", where.model),
                    ("feature", where.feature),
                )
                if value is not None
            }
            totals = await self.rollups.report(by, filters, where.since, where.until)
            rows = [SpendRow(group, *values) for group, values in totals.items() if values[0]]
            rows.sort(key=lambda r: (-r.cost_micros, r.group is None, r.group or ""))
            return rows
        return await self.scan(by, where)

    async def scan(self, by: str, where: SpendFilter = SpendFilter()) -> list[SpendRow]:
        """The report from the ledger's rows alone (groups the roll-ups do not keep: deployment, end user, the
        stages' decisions)."""
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
            func.coalesce(func.sum(LedgerEntry.saved_micros), 0),
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
            return [
                SpendRow(g, int(n), int(i), int(o), int(c), int(u), int(v)) for g, n, i, o, c, u, v in result.all()
            ]

    async def count(self) -> int:
        async with self._store.session() as session:
            return int((await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one())
