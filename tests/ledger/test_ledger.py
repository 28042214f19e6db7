"""The spool and the ledger writer: order, batching, outages, restarts, torn lines, one folder per process."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DataError

from sluicegate.canonical import ChatRequest, Usage
from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import Principal
from sluicegate.telemetry.ledger import Ledger, ledger_row
from sluicegate.telemetry.spool import Spool


class FlakyTable:
    """Stands in for the database table: can be made unreachable; keeps rows by request id like the real one."""

    def __init__(self) -> None:
        self.rows: dict[str, Mapping[str, Any]] = {}
        self.order: list[str] = []
        self.down = False
        self.batches = 0
        self.sizes: list[int] = []
        self.refuse: set[str] = set()  # refused with their texts, taken without
        self.refuse_always: set[str] = set()

    def prepare(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return record

    def unattributed(self, record: Mapping[str, Any]) -> Mapping[str, Any]:
        return {**record, "model": "(unattributed)", "end_user": None, "feature": None}

    def as_record(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return dict(row)

    async def insert_prepared(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.down:
            raise ConnectionRefusedError("database down")
        if any(
            row["request_id"] in self.refuse_always
            or (row["request_id"] in self.refuse and row["model"] != "(unattributed)")
            for row in rows
        ):
            raise DataError("INSERT INTO spend_ledger", {}, ValueError("value too long"))
        self.batches += 1
        self.sizes.append(len(rows))
        for row in rows:
            if row["request_id"] not in self.rows:
                self.rows[row["request_id"]] = row
                self.order.append(row["request_id"])


def ctx(n: int) -> RequestContext:
    request = ChatRequest(model="gpt-4o-mini", messages=[], user="end-user-7", params={"metadata": {"feature": "f"}})
    c = RequestContext(f"req_{n:05d}", "chat", "openai", {"x-sluice-feature": "search"}, request)
    c.principal = Principal(key_id="key_1", tenant_id="acme", team_id="search", user_id="alice")
    c.usage = Usage(input_tokens=10, output_tokens=n)
    c.cost_micros = n * 3
    c.finished_at = c.started + 0.01
    return c


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_ledger_row_attribution() -> None:
    row = ledger_row(ctx(3), 1_790_000_000.0)
    assert row["feature"] == "search"  # the header wins over metadata.feature
    assert row["end_user"] == "end-user-7"
    assert (row["tenant_id"], row["team_id"], row["user_id"], row["key_id"]) == ("acme", "search", "alice", "key_1")
    assert row["cost_micros"] == 9 and row["output_tokens"] == 3 and row["latency_ms"] is not None
    keyed = ctx(4)
    keyed.headers = {}
    keyed.request.params = {}  # type: ignore[union-attr]
    keyed.principal = Principal(key_id="key_2", metadata={"feature": "triage"})
    assert ledger_row(keyed, 0.0)["feature"] == "triage"  # the key's own feature, when the request names none
    refused = RequestContext("req_x", "chat", "openai", {}, None)
    refused.status, refused.outcome = 401, "client_error"
    row = ledger_row(refused, 0.0)
    assert row["key_id"] is None and row["status"] == 401 and row["cost_micros"] is None


async def test_rows_reach_the_table_in_order_in_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    ledger = Ledger(spool, table, batch_size=50)  # type: ignore[arg-type]
    await ledger.start()
    for n in range(300):
        await ledger.on_finish(ctx(n))
    await wait_for(lambda: len(table.rows) == 300)
    assert table.order == [f"req_{n:05d}" for n in range(300)]
    assert table.batches < 300
    await ledger.stop()
    spool.close()


async def test_a_stop_soon_after_a_database_blip_still_drains_the_spool(tmp_path: Path) -> None:
    """SIGTERM a few moments after the database came back, before the writer's next retry: the stop drains
    what waits (it used to give up at once while the writer still thought the database away)."""
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    table.down = True
    ledger = Ledger(spool, table, batch_size=40)  # type: ignore[arg-type]
    await ledger.start()
    for n in range(100):
        await ledger.on_finish(ctx(n))
    await wait_for(lambda: not ledger.healthy)
    table.down = False  # back; the writer has not tried again yet
    await ledger.stop(drain_seconds=5.0)
    assert len(table.rows) == 100, "every record waiting in the spool reached the database during the stop"
    spool.close()


async def test_outage_waits_in_the_spool_and_replays_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096)  # small segments: rotation and deletion are exercised
    spool.open()
    table = FlakyTable()
    table.down = True
    ledger = Ledger(spool, table, batch_size=40)  # type: ignore[arg-type]
    await ledger.start()
    for n in range(200):
        await ledger.on_finish(ctx(n))
    await asyncio.sleep(0.3)
    assert not table.rows and not ledger.healthy
    assert len(spool.segments()) > 3
    table.down = False
    await wait_for(lambda: len(table.rows) == 200)
    assert table.order == [f"req_{n:05d}" for n in range(200)]
    await wait_for(lambda: len(spool.segments()) == 1)  # finished segments are deleted
    await ledger.stop()
    spool.close()


async def test_restart_replays_what_the_last_process_left_without_doubling(tmp_path: Path) -> None:
    table = FlakyTable()
    first = Spool(tmp_path)
    first.open()
    ledger = Ledger(first, table, batch_size=10)  # type: ignore[arg-type]
    await ledger.start()
    for n in range(30):
        await ledger.on_finish(ctx(n))
    await wait_for(lambda: len(table.rows) == 30)
    table.down = True
    for n in range(30, 60):
        await ledger.on_finish(ctx(n))
    await ledger.stop(drain_seconds=0.2)  # the process dies with 30 rows unwritten
    first.close()

    table.down = False
    second = Spool(tmp_path)
    second.open()
    assert second.directory == first.directory  # the restarted process adopts the same folder
    replay = Ledger(second, table, batch_size=10)  # type: ignore[arg-type]
    await replay.start()
    await wait_for(lambda: len(table.rows) == 60)
    await asyncio.sleep(0.2)
    assert len(table.order) == 60 and table.order == [f"req_{n:05d}" for n in range(60)]
    await replay.stop()
    second.close()


async def test_torn_last_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    spool.append({"request_id": "a"})
    with (spool.directory / f"{spool.segment:012d}.jsonl").open("ab") as raw:
        raw.write(b'{"request_id": "tor\n')
    spool.append({"request_id": "b"})
    records, _ = spool.read(spool.start(), 100)
    assert [r["request_id"] for r in records] == ["a", "b"]
    spool.close()


def test_two_processes_never_share_a_spool_folder(tmp_path: Path) -> None:
    one, two = Spool(tmp_path), Spool(tmp_path)
    one.open()
    two.open()
    assert one.directory != two.directory
    one.close()
    two.close()


async def test_a_row_the_database_refuses_is_recorded_unattributed_and_the_rest_flow(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    table.refuse = {"req_00007"}
    table.refuse_always = {"req_00011"}
    alerts: list[tuple[str, str, dict[str, Any]]] = []
    ledger = Ledger(spool, table, batch_size=20, alert=lambda *a: alerts.append(a))  # type: ignore[arg-type]
    await ledger.start()
    for n in range(50):
        await ledger.on_finish(ctx(n))
    await wait_for(lambda: len(table.rows) == 49 and ledger.rejected == 2)
    # its spend still counts, without the texts the database would not take
    assert table.rows["req_00007"]["model"] == "(unattributed)" and table.rows["req_00007"]["cost_micros"] == 21
    assert ledger.unattributed == 1 and ledger.healthy
    assert "req_00011" not in table.rows  # refused in every form: kept whole in the rejected file, loudly
    rejected = spool.rejected_path.read_text()
    assert "req_00007" in rejected and "req_00011" in rejected
    assert [a[0] for a in alerts] == ["ledger_row_refused"]  # one alert a minute; the metrics count each
    await ledger.stop()
    spool.close()


def test_a_restart_adopts_what_every_dead_instance_left(tmp_path: Path) -> None:
    first, second = Spool(tmp_path), Spool(tmp_path)
    first.open()
    second.open()
    for n in range(3):
        first.append({"request_id": f"a{n}"})
        second.append({"request_id": f"b{n}"})
    first.close()  # both die before their rows reached the database
    second.close()
    survivor = Spool(tmp_path)
    survivor.open()
    records, _ = survivor.read(survivor.start(), 100)
    assert [r["request_id"] for r in records] == ["a0", "a1", "a2", "b0", "b1", "b2"]
    survivor.close()


def test_hedged_losers_are_on_the_bill() -> None:
    from types import SimpleNamespace

    from sluicegate.pipeline.context import SideAttempt
    from sluicegate.pricing import Price

    priced = SimpleNamespace(name="sim/b", price=Price(input=Decimal("1"), output=Decimal("2")))
    unpriced = SimpleNamespace(name="sim/c", price=None)
    c = ctx(5)  # the answer: 10 in, 5 out, 15 micro-dollars
    c.side_attempts = [SideAttempt(priced, Usage(input_tokens=10, output_tokens=3), estimated=True)]  # type: ignore[arg-type]
    row = ledger_row(c, 0.0)
    assert (row["input_tokens"], row["output_tokens"], row["cost_micros"]) == (20, 8, 15 + 10 + 6)
    c.side_attempts.append(SideAttempt(unpriced, Usage(input_tokens=1), estimated=False))  # type: ignore[arg-type]
    c.bill = None  # computed once per request: this is another request
    assert ledger_row(c, 0.0)["cost_micros"] is None  # one unknown price: unknown, never an undercount


async def test_a_writer_far_behind_reads_the_spool_with_memory_bounded(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=8192)
    spool.open()
    table = FlakyTable()
    table.down = True
    ledger = Ledger(spool, table, batch_size=2)  # type: ignore[arg-type]  # holds at most 80 rows in memory
    await ledger.start()
    for n in range(40):
        await ledger.on_finish(ctx(n))
    await asyncio.sleep(0.05)
    for n in range(40, 400):
        await ledger.on_finish(ctx(n))
        assert len(ledger._memory) <= 80
    table.down = False
    await wait_for(lambda: len(table.rows) == 400)
    for n in range(400, 450):  # caught up again: new rows flow (from memory) after the replayed ones
        await ledger.on_finish(ctx(n))
    await wait_for(lambda: len(table.rows) == 450)
    assert table.order == [f"req_{n:05d}" for n in range(450)]
    await ledger.stop()
    assert not ledger.pending()
    spool.close()


async def test_sqlite_inserts_leave_the_event_loop_a_turn_every_few_rows(tmp_path: Path) -> None:
    """A batch of ledger rows never holds the event loop for long: requests are served between its slices."""
    from sluicegate.store.db import Store
    from sluicegate.store.spend import SpendLedger

    store = Store(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    spend = SpendLedger(store)
    turns = 0
    done = False

    async def other_work() -> None:  # stands in for requests waiting on the loop
        nonlocal turns
        while not done:
            turns += 1
            await asyncio.sleep(0)

    try:
        ticker = asyncio.get_running_loop().create_task(other_work())
        await asyncio.sleep(0)
        await spend.insert([ledger_row(ctx(n), 1_790_000_000.0) for n in range(100)])
        done = True
        await ticker
        assert turns >= 15  # 100 rows in slices of 4 on a quiet loop: the other work ran between them
        assert await spend.count() == 100
    finally:
        await spend.close()
        await store.close()


async def test_sqlite_inserts_wait_for_another_writer_without_blocking_the_loop(tmp_path: Path) -> None:
    import sqlite3

    from sluicegate.store.db import Store
    from sluicegate.store.spend import SpendLedger

    store = Store(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    spend = SpendLedger(store)
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        await spend.insert([ledger_row(ctx(0), 1_790_000_000.0)])
        other.execute("BEGIN IMMEDIATE")  # e.g. the admin API creating a key
        insert = asyncio.get_running_loop().create_task(spend.insert([ledger_row(ctx(1), 1_790_000_001.0)]))
        await asyncio.sleep(0.05)  # the loop is free meanwhile: this sleep returns on time
        assert not insert.done()
        other.execute("COMMIT")
        await asyncio.wait_for(insert, 5)
        assert await spend.count() == 2
    finally:
        other.close()
        await spend.close()
        await store.close()


async def test_the_sqlite_ledger_write_ahead_log_stays_small_under_a_stream_of_rows(tmp_path: Path) -> None:
    """The ledger's connection never checkpoints on commit (that would stall the loop); a worker thread
    does, so the WAL file stays bounded instead of growing with every row (6.4 MB here without it)."""
    from sluicegate.store.db import Store
    from sluicegate.store.spend import SpendLedger

    store = Store(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    spend = SpendLedger(store)
    wal = tmp_path / "ledger.db-wal"
    largest = 0
    try:
        for batch in range(50):
            rows = [ledger_row(ctx(batch * 100 + n), 1_790_000_000.0 + batch) for n in range(100)]
            await spend.insert(rows)
            largest = max(largest, wal.stat().st_size)
        assert await spend.count() == 5000
        assert largest < 2_000_000
    finally:
        await spend.close()
        await store.close()


async def test_a_writer_behind_takes_larger_batches_to_catch_up(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.open()
    table = FlakyTable()
    ledger = Ledger(spool, table, batch_size=10)  # type: ignore[arg-type]
    await ledger.start()
    await asyncio.sleep(0.05)  # caught up: rows now reach the writer in memory
    for n in range(100):  # a burst the writer has no turn during
        await ledger.on_finish(ctx(n))
    await wait_for(lambda: len(table.rows) == 100)
    assert table.sizes[0] == 40 and max(table.sizes) == 40  # four batches at a time while far behind
    assert table.order == [f"req_{n:05d}" for n in range(100)]
    await ledger.stop()
    spool.close()


async def test_a_record_the_table_cannot_take_is_set_aside_and_the_rest_flow(tmp_path: Path) -> None:
    """A spooled line that is not a record (or lacks what the table needs) never stops the writer."""
    from sluicegate.store.db import Store
    from sluicegate.store.spend import SpendLedger

    first = Spool(tmp_path / "spool")
    first.open()
    first.append(ledger_row(ctx(1), 1_790_000_000.0))
    first.append({"request_id": "half-a-record"})  # e.g. written by a version with other columns
    with (first.directory / f"{first.segment:012d}.jsonl").open("ab") as raw:
        raw.write(b"[1, 2, 3]\n")  # valid JSON, not a record
    first.append(ledger_row(ctx(2), 1_790_000_001.0))
    first.close()
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    spend = SpendLedger(store)
    spool = Spool(tmp_path / "spool")
    spool.open()
    ledger = Ledger(spool, spend, batch_size=10)
    await ledger.start()
    try:
        await wait_for(lambda: ledger.rejected == 2)
        await wait_for(lambda: not ledger.pending())
        assert await spend.count() == 2
        rejected = spool.rejected_path.read_text()
        assert "half-a-record" in rejected and '"line":[1,2,3]' in rejected
    finally:
        await ledger.stop()
        spool.close()
        await spend.close()
        await store.close()


async def test_a_spool_line_written_before_the_decision_columns_replays(tmp_path: Path) -> None:
    """An older version's line (no requested_model, route_tier, ...) reaches the table with NULLs."""
    from sqlalchemy import text

    from sluicegate.store.db import Store
    from sluicegate.store.spend import SpendLedger

    first = Spool(tmp_path / "spool")
    first.open()
    current = ledger_row(ctx(1), 1_790_000_000.0)
    older = {k: v for k, v in ledger_row(ctx(2), 1_790_000_001.0).items() if k in _COLUMNS_BEFORE_0004}
    first.append(current)
    first.append(older)
    first.close()
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    await store.migrate()
    spend = SpendLedger(store)
    spool = Spool(tmp_path / "spool")
    spool.open()
    ledger = Ledger(spool, spend, batch_size=10)
    await ledger.start()
    try:
        await wait_for(lambda: not ledger.pending())
        assert ledger.rejected == 0
        async with store.engine.connect() as conn:
            rows = (await conn.execute(text("SELECT request_id, requested_model, model FROM spend_ledger"))).all()
        assert sorted(tuple(r) for r in rows) == [
            ("req_00001", "gpt-4o-mini", "gpt-4o-mini"),
            ("req_00002", None, "gpt-4o-mini"),
        ]
    finally:
        await ledger.stop()
        spool.close()
        await spend.close()
        await store.close()


_COLUMNS_BEFORE_0004 = [
    "request_id",
    "ts",
    "tenant_id",
    "team_id",
    "user_id",
    "key_id",
    "feature",
    "end_user",
    "endpoint",
    "model",
    "deployment",
    "provider",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "reasoning_tokens",
    "cost_micros",
    "latency_ms",
    "ttft_ms",
    "cache_status",
    "outcome",
    "status",
    "stream",
]


def test_the_ledger_keeps_the_model_the_client_asked_for_and_the_stages_decisions() -> None:
    c = ctx(5)
    assert ledger_row(c, 0.0)["requested_model"] == "gpt-4o-mini"
    c.model_changed_from, c.request.model = "gpt-4o-mini", "cheap"  # type: ignore[union-attr]
    c.guardrail_categories = ("pii", "email")
    c.trace_id, c.cache_status, c.saved_micros, c.complexity = "ab" * 16, "hit", 42, 0.5
    row = ledger_row(c, 0.0)
    assert (row["requested_model"], row["model"]) == ("gpt-4o-mini", "cheap")
    assert row["guardrail_categories"] == "email,pii" and row["trace_id"] == "ab" * 16
    assert (row["cache_status"], row["saved_micros"], row["complexity"]) == ("hit", 42, 0.5)
    assert ledger_row(RequestContext("r", "chat", "openai", {}, None), 0.0)["requested_model"] is None


def test_a_spool_folder_names_the_dead_processes_it_was_taken_over_from(tmp_path: Path) -> None:
    first, second = Spool(tmp_path), Spool(tmp_path)
    first.owner = {"prefix": "req_aaaa", "started": 1.0}
    second.owner = {"prefix": "req_bbbb", "started": 2.0}
    first.open()
    second.open()
    first.close()  # (as a kill would: the folder keeps its owner)
    second.close()
    third = Spool(tmp_path)
    third.owner = {"prefix": "req_cccc", "started": 3.0}
    third.open()  # takes instance-0 (first's) and adopts instance-1 (second's)
    assert sorted(o["prefix"] for o in third.dead_owners) == ["req_aaaa", "req_bbbb"]
    third.forget_dead_owners([o for o in third.dead_owners if o["prefix"] == "req_aaaa"])
    third.close()
    fourth = Spool(tmp_path)
    fourth.open()  # what was not closed yet is still known after another restart
    assert sorted(o["prefix"] for o in fourth.dead_owners) == ["req_bbbb", "req_cccc"]
    fourth.close()
