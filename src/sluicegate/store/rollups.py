"""Spend roll-ups: hourly and daily totals by tenant, team, key, user, feature and model, kept current from
the ledger, and the reports that read them.

A background task takes ledger rows not yet rolled up (`rolled_up` false, never an in-flight row), adds
them to their hour's and day's buckets and marks them rolled up, in one transaction and in SQL (no per-row
work on the event loop), so each row counts exactly once whatever crashes or how many instances run it.
A report reads whole days and hours from the roll-ups and the rest (the partial hours at the ends of its
range, and the rows not rolled up yet) from the ledger: the answer is exact, and a year of traffic costs a
few hundred roll-up rows per entity.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, false, func, select, text, true
from sqlalchemy.sql.elements import ColumnElement

from sluicegate.store.db import Store
from sluicegate.store.models import LedgerEntry, SpendRollup

log = logging.getLogger("sluicegate.rollups")

DIMENSIONS = ("tenant_id", "team_id", "key_id", "user_id", "feature", "model")
MEASURES = ("requests", "input_tokens", "output_tokens", "cost_micros", "unpriced_requests")
# report groups the roll-ups can answer, with the roll-up column they group on ("day" is the bucket's date)
ROLLUP_GROUPS = {
    "tenant": "tenant_id",
    "team": "team_id",
    "user": "user_id",
    "key": "key_id",
    "model": "model",
    "feature": "feature",
    "day": "day",
}


def hour_bucket(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H")


def _as_utc(ts: Any) -> dt.datetime:
    # SQLite through a plain select of a DateTime column in a text() query gives text
    moment: dt.datetime = dt.datetime.fromisoformat(ts) if isinstance(ts, str) else ts
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


class SpendRollups:
    def __init__(self, store: Store, *, batch_size: int = 2000) -> None:
        self._store = store
        self._batch_size = batch_size
        self._task: asyncio.Task[None] | None = None
        self.rolled = 0

    # -- maintenance ----------------------------------------------------------------------------------

    async def roll(self) -> int:
        """Adds one batch of ledger rows (the oldest not rolled up) to the roll-ups and marks them, in one
        transaction, all in SQL: the event loop does no per-row work. Returns how many (0: caught up).

        The batch is every unrolled final row up to the `batch_size`-th by (ts, request_id), read in one
        snapshot (SQLite's, or PostgreSQL's REPEATABLE READ): two instances rolling at once both try to
        mark the same rows, and the later one fails (a snapshot or serialization error) and retries."""
        sqlite = self._store.is_sqlite
        false_, true_ = ("0", "1") if sqlite else ("false", "true")
        unrolled = f"rolled_up = {false_} AND outcome <> 'in_flight'"  # the partial index's own predicate
        async with self._store.engine.connect() as conn:
            if not sqlite:
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                boundary = (
                    await conn.execute(
                        text(
                            f"SELECT ts, request_id FROM spend_ledger WHERE {unrolled} "
                            "ORDER BY ts, request_id LIMIT 1 OFFSET :skip"
                        ),
                        {"skip": self._batch_size - 1},
                    )
                ).first()
                params: dict[str, Any] = {}
                batch = unrolled
                if boundary is not None:
                    batch += " AND (ts < :last_ts OR (ts = :last_ts AND request_id <= :last_id))"
                    params = {"last_ts": boundary[0], "last_id": boundary[1]}
                for grain in ("hour", "day"):
                    await conn.execute(text(self._rollup_sql(grain, batch)), params)
                result = await conn.execute(text(f"UPDATE spend_ledger SET rolled_up = {true_} WHERE {batch}"), params)
        rolled = int(result.rowcount or 0)
        self.rolled += rolled
        return rolled

    def _rollup_sql(self, grain: str, batch: str) -> str:
        if self._store.is_sqlite:  # ts is SQLAlchemy's text form, "YYYY-MM-DD HH:MM:SS.ffffff", in UTC
            bucket = "substr(ts, 1, 10) || 'T' || substr(ts, 12, 2)" if grain == "hour" else "substr(ts, 1, 10)"
        else:
            pattern = 'YYYY-MM-DD"T"HH24' if grain == "hour" else "YYYY-MM-DD"
            bucket = f"to_char(ts AT TIME ZONE 'UTC', '{pattern}')"
        dimensions = ", ".join(f"COALESCE({name}, '')" if name != "model" else name for name in DIMENSIONS)
        updates = ", ".join(f"{name} = spend_rollups.{name} + excluded.{name}" for name in MEASURES)
        return (
            f"INSERT INTO spend_rollups (grain, bucket, {', '.join(DIMENSIONS)}, {', '.join(MEASURES)}) "
            f"SELECT '{grain}', {bucket}, {dimensions}, COUNT(*), COALESCE(SUM(input_tokens), 0), "
            "COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_micros), 0), "
            "SUM(CASE WHEN cost_micros IS NULL AND input_tokens + output_tokens > 0 THEN 1 ELSE 0 END) "
            f"FROM spend_ledger WHERE {batch} GROUP BY 2, 3, 4, 5, 6, 7, 8 "
            f"ON CONFLICT (grain, bucket, {', '.join(DIMENSIONS)}) DO UPDATE SET {updates}"
        )

    async def catch_up(self) -> int:
        total = 0
        while True:
            done = await self.roll()
            total += done
            if done < self._batch_size:
                return total
            await asyncio.sleep(0.05)  # a backlog (the first start after the upgrade): requests go between batches

    async def _run(self, interval: float) -> None:
        failing = False
        while True:
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the rows wait in the ledger, reports stay exact
                if not failing:
                    log.warning("spend roll-up failed (%s); retrying", type(exc).__name__)
                failing = True
            else:
                failing = False
            await asyncio.sleep(interval)

    def start(self, interval: float = 10.0) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- reports ----------------------------------------------------------------------------------------

    async def report(
        self,
        by: str,
        filters: dict[str, str],
        since: dt.datetime | None,
        until: dt.datetime | None,
    ) -> dict[str | None, list[int]]:
        """Group -> [requests, input_tokens, output_tokens, cost_micros, unpriced_requests] over [since,
        until): roll-ups for the whole hours and days, the ledger for the rest."""
        totals: dict[str | None, list[int]] = {}

        def add(group: Any, values: Sequence[Any]) -> None:
            key = None if group in (None, "") else str(group)
            held = totals.setdefault(key, [0, 0, 0, 0, 0])
            for i, value in enumerate(values):
                held[i] += int(value or 0)

        since = _as_utc(since) if since is not None else None
        until = _as_utc(until) if until is not None else None
        first_hour = _ceil_hour(since) if since is not None else None
        end_hour = _floor_hour(until) if until is not None else None
        async with self._store.engine.connect() as conn:
            if first_hour is not None and end_hour is not None and first_hour >= end_hour:
                edges: list[tuple[dt.datetime | None, dt.datetime | None]] = [(since, until)]  # the ledger alone
            else:
                edges = []
                if since is not None and first_hour is not None and since < first_hour:
                    edges.append((since, first_hour))
                if until is not None and end_hour is not None and end_hour < until:
                    edges.append((end_hour, until))
                for grain, low, high in _rollup_spans(first_hour, end_hour):
                    for group, *values in (await conn.execute(self._rollup_query(by, filters, grain, low, high))).all():
                        add(group, values)
            for edge_low, edge_high in edges:
                query = self._ledger_query(by, filters, edge_low, edge_high, LedgerEntry.rolled_up == true())
                for group, *values in (await conn.execute(query)).all():
                    add(group, values)
            unrolled = self._ledger_query(by, filters, since, until, LedgerEntry.rolled_up == false())
            for group, *values in (await conn.execute(unrolled)).all():
                add(group, values)
        return totals

    def _rollup_query(self, by: str, filters: dict[str, str], grain: str, low: str | None, high: str | None) -> Any:
        c = SpendRollup.__table__.c
        column = func.substr(c.bucket, 1, 10) if by == "day" else c[ROLLUP_GROUPS[by]]
        query = select(column, *(func.sum(c[name]) for name in MEASURES)).where(c.grain == grain)
        if low is not None:
            query = query.where(c.bucket >= low)
        if high is not None:
            query = query.where(c.bucket < high)
        for name, value in filters.items():
            query = query.where(c[name] == value)
        return query.group_by(column)

    def _ledger_query(
        self,
        by: str,
        filters: dict[str, str],
        low: dt.datetime | None,
        high: dt.datetime | None,
        which: ColumnElement[bool],
    ) -> Any:
        column = LedgerEntry.day if by == "day" else getattr(LedgerEntry, ROLLUP_GROUPS[by])
        query = select(column, *_ledger_measures()).where(which)
        if low is not None:
            query = query.where(LedgerEntry.ts >= low)
        if high is not None:
            query = query.where(LedgerEntry.ts < high)
        for name, value in filters.items():
            query = query.where(getattr(LedgerEntry, name) == value)
        return query.group_by(column)


def _ledger_measures() -> list[Any]:
    unpriced = and_(LedgerEntry.cost_micros.is_(None), LedgerEntry.output_tokens + LedgerEntry.input_tokens > 0)
    return [
        func.count(),
        func.sum(LedgerEntry.input_tokens),
        func.sum(LedgerEntry.output_tokens),
        func.sum(LedgerEntry.cost_micros),
        func.sum(unpriced.cast(LedgerEntry.status.type)),
    ]


def _floor_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: dt.datetime) -> dt.datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + dt.timedelta(hours=1)


def _rollup_spans(first: dt.datetime | None, end: dt.datetime | None) -> list[tuple[str, str | None, str | None]]:
    """(grain, lowest bucket, bucket past the end) covering the whole hours [first, end): whole days from the
    daily roll-ups, the hours at either side from the hourly ones. None: unbounded."""
    first_day = None if first is None else _ceil_day(first)
    end_day = None if end is None else end.replace(hour=0)
    if first_day is not None and end_day is not None and first_day >= end_day:
        return [("hour", hour_bucket(first) if first else None, hour_bucket(end) if end else None)]
    day_from = first_day.strftime("%Y-%m-%d") if first_day else None
    day_to = end_day.strftime("%Y-%m-%d") if end_day else None
    spans: list[tuple[str, str | None, str | None]] = [("day", day_from, day_to)]
    if first is not None and first_day is not None and first < first_day:
        spans.append(("hour", hour_bucket(first), hour_bucket(first_day)))
    if end is not None and end_day is not None and end_day < end:
        spans.append(("hour", hour_bucket(end_day), hour_bucket(end)))
    return spans


def _ceil_day(moment: dt.datetime) -> dt.datetime:
    floor = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + dt.timedelta(days=1)
