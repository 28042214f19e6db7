"""A stream's in-flight row and its final row, on both databases: the final row always wins, whatever the
order or the batch they arrive in, and replays change nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from sluicegate.store.db import Store
from sluicegate.store.models import LedgerEntry
from sluicegate.store.spend import SpendLedger
from tests.ledger.test_spend_report_cli import _row


def _in_flight(request_id: str, output: int) -> dict[str, Any]:
    row = _row(request_id, 10 + output)
    row.update(outcome="in_flight", output_tokens=output, usage_estimated=True, stream=True)
    return row


def _final(request_id: str) -> dict[str, Any]:
    row = _row(request_id, 99)
    row.update(output_tokens=50, stream=True)
    return row


async def _read(store: Store) -> dict[str, tuple[str, int, int | None, bool]]:
    async with store.session() as session:
        result = await session.execute(
            select(
                LedgerEntry.request_id,
                LedgerEntry.outcome,
                LedgerEntry.output_tokens,
                LedgerEntry.cost_micros,
                LedgerEntry.usage_estimated,
            )
        )
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in result}


async def test_the_final_row_replaces_the_in_flight_one_and_nothing_replaces_it(store: Store) -> None:
    spend = SpendLedger(store)
    try:
        await spend.insert([_in_flight("req_a", 0), _in_flight("req_b", 0)])
        await spend.insert([_in_flight("req_a", 7)])  # progress: the estimate so far
        assert (await _read(store))["req_a"] == ("in_flight", 7, 17, True)
        await spend.insert([_final("req_a")])
        await spend.insert([_in_flight("req_a", 9), _final("req_a")])  # a replay changes nothing
        # one batch holding a stream's rows in both orders (PostgreSQL cannot touch a row twice in a statement)
        await spend.insert([_in_flight("req_c", 0), _in_flight("req_c", 3), _final("req_c")])
        await spend.insert([_final("req_d"), _in_flight("req_d", 4)])
        rows = await _read(store)
        assert rows["req_a"] == ("ok", 50, 99, False)
        assert rows["req_b"] == ("in_flight", 0, 10, True)  # a stream whose process died: its estimate stays
        assert rows["req_c"] == rows["req_d"] == ("ok", 50, 99, False)
        assert await spend.count() == 4
    finally:
        await spend.close()


async def test_the_streams_of_a_dead_process_are_closed_by_its_request_id_prefix(store: Store) -> None:
    spend = SpendLedger(store)
    try:
        dead, alive = _in_flight("req_deadbeef0001000000000001", 5), _in_flight("req_a11ve0000001000000000001", 5)
        finished = _final("req_deadbeef0001000000000002")
        await spend.insert([dead, alive, finished])
        assert await spend.close_in_flight("req_deadbeef0001", since=1_789_999_000.0) == 1
        rows = await _read(store)
        assert rows[dead["request_id"]] == ("interrupted", 5, 15, True)  # its last estimate, now final
        assert rows[alive["request_id"]][0] == "in_flight"  # another (live) instance's stream is left alone
        assert rows[finished["request_id"]][0] == "ok"
        assert await spend.close_in_flight("req_deadbeef0001", since=1_790_000_001.0) == 0  # older rows: no
    finally:
        await spend.close()
