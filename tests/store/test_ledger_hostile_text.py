"""No ledger row is refused for what a client put in it: every text column, hostile strings, both databases.

The records go the whole way a request's record goes: a spooled JSON line, the writer, the table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import String, select

from sluicegate.store.db import Store
from sluicegate.store.models import LedgerEntry
from sluicegate.store.spend import SpendLedger, clean_text
from sluicegate.telemetry.ledger import Ledger
from sluicegate.telemetry.spool import Spool
from tests.ledger.test_spend_report_cli import _row

HOSTILE = {
    "nul": "alice\u0000",
    "controls": "a\x01\x07\x1b[31mred\x7f\x9f",
    "newlines": "line\r\nbreak\ttab",
    "lone_surrogate": "bad\ud800half",
    "over_long": "é" * 5000,
    "four_byte": "🦀" * 300,
    "bidi": "\u202egnp.exe",
    "quotes": "'; DROP TABLE spend_ledger; --",
}
TEXT_COLUMNS = [c.name for c in LedgerEntry.__table__.columns if isinstance(c.type, String) and c.name != "day"]


def test_every_text_column_is_covered() -> None:
    assert {"request_id", "tenant_id", "feature", "end_user", "model", "outcome"} <= set(TEXT_COLUMNS)


def test_clean_text_keeps_what_is_harmless() -> None:
    assert clean_text("alice", 64) == "alice"
    assert clean_text("zoë 🦀", 64) == "zoë 🦀"
    assert clean_text("alice\u0000", 64) == "alice\ufffd"
    assert clean_text("x" * 70, 64) == "x" * 64


async def test_hostile_strings_in_every_text_column_never_cost_a_row(store: Store, tmp_path: Path) -> None:
    spend = SpendLedger(store)
    spool = Spool(tmp_path / "spool")
    spool.open()
    ledger = Ledger(spool, spend, batch_size=16)
    await ledger.start()
    expected_cost = 0
    records: list[dict[str, Any]] = []
    for column in TEXT_COLUMNS:
        for name, value in HOSTILE.items():
            record = _row(f"req_{column}_{name}"[:40], 7)
            record[column] = value if column != "request_id" else f"req_{name}_{value}"
            records.append(record)
            expected_cost += 7
    for record in records:
        assert ledger._append(record) is not None  # spooled, even with a lone surrogate
        ledger._wake.set()
    try:
        for _ in range(400):
            if await spend.count() == len(records) or ledger.rejected:
                break
            await asyncio.sleep(0.05)
        assert ledger.rejected == 0, spool.rejected_path.read_text()
        assert await spend.count() == len(records)
        report = await spend.report("day")
        assert (
            sum(row.cost_micros for row in report) == expected_cost
        )  # every cent the clients were charged is in the report
        async with store.session() as session:
            users = set((await session.execute(select(LedgerEntry.end_user))).scalars())
        assert "alice\ufffd" in users  # recognisably the client's, NUL made visible
    finally:
        await ledger.stop()
        await spend.close()
        spool.close()


@pytest.mark.parametrize("column", ["input_tokens", "status", "cost_micros"])
async def test_out_of_range_numbers_are_clamped_not_refused(store: Store, column: str) -> None:
    spend = SpendLedger(store)
    record = _row(f"req_big_{column}", 5)
    record[column] = 2**70
    try:
        await spend.insert([record])
        assert await spend.count() == 1
    finally:
        await spend.close()
