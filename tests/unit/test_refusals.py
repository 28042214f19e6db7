"""Requests refused before authentication: no ledger row, and access lines at a bounded rate per address."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.record import Record
from sluicegate.principal import Principal
from sluicegate.telemetry.ledger import Ledger
from sluicegate.telemetry.metrics import GatewayMetrics
from sluicegate.telemetry.refusals import AnonymousRefusals
from sluicegate.telemetry.spool import Spool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def write(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)


def refused(address: str, status: int = 401) -> RequestContext:
    ctx = RequestContext("req_1", "chat", "openai", {"x-sluice-user": "u" * 200}, None, address)
    ctx.status, ctx.outcome, ctx.finished_at = status, "client_error", ctx.started
    return ctx


async def test_each_address_gets_one_line_a_window_then_one_summary() -> None:
    clock, lines, metrics = Clock(), Lines(), GatewayMetrics([])
    record = Record(metrics, lines, AnonymousRefusals(60, 1000, clock))  # type: ignore[arg-type]
    for _ in range(500):
        await record.on_finish(refused("10.0.0.1"))
    await record.on_finish(refused("10.0.0.2", 400))
    assert [e.get("status") for e in lines.entries] == [401, 400]  # the first of each address, as usual
    clock.now += 61
    await record.on_finish(refused("10.0.0.1"))  # a new window: its summaries first, then its first line
    summary, fresh = lines.entries[2:]
    assert summary == {
        "request_id": None,
        "event": "anonymous_refusals",
        "address": "10.0.0.1",
        "refused": 499,
        "statuses": {"401": 499},
        "window_seconds": 60,
    }
    assert fresh["status"] == 401
    assert b'status="401"} 501.0' in metrics.render()  # every one of them counted


async def test_addresses_beyond_the_bound_share_one_summary() -> None:
    lines = Lines()
    record = Record(GatewayMetrics([]), lines, AnonymousRefusals(60, 10, Clock()))  # type: ignore[arg-type]
    for n in range(5000):
        await record.on_finish(refused(f"10.1.{n // 256}.{n % 256}"))
    record.flush()
    assert len(lines.entries) == 11
    assert lines.entries[-1]["address"] == "other" and lines.entries[-1]["refused"] == 4990


async def test_authenticated_refusals_keep_their_line_and_their_ledger_row(tmp_path: Path) -> None:
    lines = Lines()
    record = Record(GatewayMetrics([]), lines, AnonymousRefusals(60, 10, Clock()))  # type: ignore[arg-type]
    spool = Spool(tmp_path)
    spool.open()
    ledger = Ledger(spool, table=None)  # type: ignore[arg-type]  # never started: only the spool is written
    anonymous = refused("10.0.0.1")
    for _ in range(100):
        await ledger.on_finish(anonymous)
    assert spool.caught_up(spool.start())  # nothing spooled
    for _ in range(3):
        known = refused("10.0.0.1", 429)
        known.principal = Principal(key_id="key_1")
        await ledger.on_finish(known)
        await record.on_finish(known)
    own = refused("", 200)  # the gateway's own call (the model host's): no principal, but a row
    own.status = 200
    await ledger.on_finish(own)
    records, _ = spool.read(spool.start(), 10)
    assert [r["status"] for r in records] == [429, 429, 429, 200]
    assert len(lines.entries) == 3
    spool.close()
