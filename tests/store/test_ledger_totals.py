"""What the ledger says a budget scope spent in a period (what the hot counters are rebuilt from): the
database's rows plus spooled rows not in it yet, each row once, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from sluicegate.state.model import BudgetScope
from sluicegate.state.periods import period_bounds
from sluicegate.store.db import Store
from sluicegate.store.spend import SpendLedger
from sluicegate.store.totals import LedgerTotals
from tests.store.test_store_contract import row

UTC = ZoneInfo("UTC")
NOW = dt.datetime(2026, 9, 21, 12, 0, tzinfo=dt.UTC).timestamp()
LAST_MONTH = dt.datetime(2026, 8, 31, 23, 59, tzinfo=dt.UTC).timestamp()


def scope(name: str, period: str = "monthly") -> BudgetScope:
    period_id, end = period_bounds(period, NOW, UTC)  # type: ignore[arg-type]
    return BudgetScope(name, period_id, 1_000_000, 1_000_000, end)


def spool_line(request_id: str, ts: float, **fields: object) -> bytes:
    record = row(request_id, **fields)
    record["ts"] = ts
    return orjson.dumps(record) + b"\n"


async def test_database_rows_and_spooled_rows_are_each_counted_once(store: Store, tmp_path: Path) -> None:
    ledger = SpendLedger(store)
    at = dt.datetime.fromtimestamp(NOW, dt.UTC)
    await ledger.insert(
        [
            row("db1", ts=at, cost_micros=100),
            row("db2", ts=at, cost_micros=200, key_id="key_b"),
            row("db3", ts=at, cost_micros=None),  # unpriced
            row("old", ts=dt.datetime.fromtimestamp(LAST_MONTH, dt.UTC), cost_micros=5000),
        ]
    )
    folder = tmp_path / "spool" / "instance-0"
    folder.mkdir(parents=True)
    (folder / "000000000001.jsonl").write_bytes(
        spool_line("db1", NOW, cost_micros=100)  # already written: not counted twice
        + spool_line("sp1", NOW, cost_micros=40)
        + spool_line("sp2", LAST_MONTH, cost_micros=7000)  # another period
        + b'{"request_id": "torn'  # a line still being written
    )
    other = tmp_path / "spool" / "instance-1"  # a second instance on this host
    other.mkdir()
    (other / "000000000003.jsonl").write_bytes(spool_line("sp3", NOW, cost_micros=3, team_id="other"))
    (other / "rejected.log").write_bytes(
        orjson.dumps({"reason": "DataError", "record": orjson.loads(spool_line("rej", NOW, cost_micros=9))}) + b"\n"
    )
    totals = LedgerTotals(store, tmp_path / "spool", UTC)

    assert await totals.spent(scope("key:key_a")) == 100 + 40 + 3 + 9
    assert await totals.spent(scope("key:key_b")) == 200
    assert await totals.spent(scope("team:search")) == 100 + 200 + 40 + 9
    assert await totals.spent(scope("tenant:acme")) == 100 + 200 + 40 + 3 + 9
    assert await totals.spent(scope("global")) == 100 + 200 + 40 + 3 + 9
    assert await totals.spent(scope("key:key_a", "total")) == 100 + 40 + 3 + 9 + 5000 + 7000
    assert await totals.spent(scope("key:nobody")) == 0
    assert await totals.spent(scope("session:s1")) == 0  # not in the ledger: starts again at zero
