"""What the ledger says a budget scope spent in a period: the database's rows plus the spool's rows that
are not in it yet. The hot counters are rebuilt from this after a start or a loss of the hot state."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import func, select

from sluicegate.keys.clock import utc
from sluicegate.state.model import BudgetScope
from sluicegate.state.periods import period_start
from sluicegate.store.db import Store
from sluicegate.store.models import LedgerEntry

_COLUMNS = {"key": "key_id", "user": "user_id", "team": "team_id", "tenant": "tenant_id"}
_CHUNK = 500  # request ids per "which of these are in the database" query


class LedgerTotals:
    """A `SpendSource` over the store and the spool folder of every instance on this host.

    Rows are attributed to a period by their time (the moment the answer was ready). A session budget has no
    column in the ledger, so it starts again at zero after a loss of the hot state."""

    def __init__(self, store: Store, spool_root: str | Path, zone: ZoneInfo) -> None:
        self._store = store
        self._spool_root = Path(spool_root)
        self._zone = zone

    async def spent(self, scope: BudgetScope) -> int:
        kind, _, ident = scope.name.partition(":")
        column = _COLUMNS.get(kind)
        if column is None and kind != "global":
            return 0
        start = period_start(scope.period_id, self._zone)
        end = scope.expires_at
        query = select(func.coalesce(func.sum(LedgerEntry.cost_micros), 0))
        if column is not None:
            query = query.where(getattr(LedgerEntry, column) == ident)
        if start is not None:
            query = query.where(LedgerEntry.ts >= utc(start))
        if end is not None:
            query = query.where(LedgerEntry.ts < utc(end))
        spooled = await asyncio.to_thread(self._spooled, column, ident, start, end)
        async with self._store.session() as session:
            total = int((await session.execute(query)).scalar_one() or 0)
            ids = list(spooled)
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i : i + _CHUNK]
                found = await session.execute(select(LedgerEntry.request_id).where(LedgerEntry.request_id.in_(chunk)))
                for (request_id,) in found.all():
                    spooled.pop(request_id, None)
        return total + sum(spooled.values())

    def _spooled(self, column: str | None, ident: str, start: float | None, end: float | None) -> dict[str, int]:
        """request id -> cost of the spooled rows of the scope in the period (the database may have some)."""
        found: dict[str, int] = {}
        for record in self._records():
            if column is not None and record.get(column) != ident:
                continue
            ts = record.get("ts")
            if not isinstance(ts, int | float) or (start is not None and ts < start) or (end is not None and ts >= end):
                continue
            cost = record.get("cost_micros")
            request_id = record.get("request_id")
            if isinstance(cost, int) and isinstance(request_id, str):
                found[request_id] = cost
        return found

    def _records(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self._spool_root.glob("instance-*/*")):
            if path.suffix not in (".jsonl", ".log"):
                continue
            try:
                data = path.read_bytes()
            except OSError:  # released by its writer meanwhile: its rows are in the database
                continue
            for line in data.split(b"\n"):
                if not line:
                    continue
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:  # a torn last line, still being written
                    continue
                if isinstance(record, dict) and isinstance(record.get("record"), dict):
                    record = record["record"]  # a row the database refused, kept in rejected.log
                if isinstance(record, dict):
                    yield record
