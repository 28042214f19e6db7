"""The ledger under failure: PostgreSQL unreachable mid-run, and a gateway SIGKILLed mid-run and restarted.

Afterwards the ledger holds exactly one row per accepted request, and its cost equals the simulator's usage
x the price table. PostgreSQL sits behind a TCP proxy that the test closes (dropping every connection) and
reopens; the load is bounded and local.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.canonical import Usage
from sluicegate.pricing import PriceTable
from sluicegate.providers.simulator.tcp_proxy import TcpProxy
from tests.conftest import MASTER_KEY, Proc, start_gateway
from tests.store.conftest import POSTGRES_URL, drop_schema, postgres_reachable, unique_schema

PRICE = PriceTable.default().lookup("gpt-4o-mini")


@pytest.fixture
def pg_behind_proxy() -> Iterator[tuple[TcpProxy, str]]:
    if not asyncio.run(postgres_reachable()):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the ledger chaos test did not run")
    proxy = TcpProxy(5432)
    proxy.start()
    schema = unique_schema()
    yield proxy, schema
    proxy.stop()
    asyncio.run(drop_schema(schema))


def gateway_extra(proxy: TcpProxy, schema: str, spool: Path) -> str:
    return f"""
store:
  database_url: postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/test
  db_schema: {schema}
  spool_dir: {spool}
  key_cache_ttl_seconds: 120
  timeout_seconds: 2
"""


def ledger_rows(schema: str) -> list[dict[str, Any]]:
    from sqlalchemy import text

    from sluicegate.store.db import Store

    async def read() -> list[dict[str, Any]]:
        store = Store(POSTGRES_URL, schema=schema)
        try:
            async with store.engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT request_id, key_id, input_tokens, output_tokens, cost_micros FROM spend_ledger")
                )
                return [dict(r._mapping) for r in result]
        finally:
            await store.close()

    return asyncio.run(read())


def wait_for_rows(schema: str, count: int, timeout: float = 40.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = ledger_rows(schema)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


class Load:
    """Sends chat requests (some streamed) and keeps what the gateway accepted: request id -> cost."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.accepted: dict[str, int] = {}
        self.attempted = 0
        self._lock = threading.Lock()

    def one(self, client: httpx.Client, n: int) -> None:
        body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"msg {n}"}]}
        if n % 3 == 0:
            body |= {"stream": True, "stream_options": {"include_usage": True}}
        with self._lock:
            self.attempted += 1
        try:
            response = client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError:
            return
        if response.status_code != 200:
            return
        if body.get("stream"):
            import json

            events = [json.loads(x[6:]) for x in response.text.splitlines() if x.startswith("data: {")]
            usage = events[-1]["usage"]
        else:
            usage = response.json()["usage"]
        assert PRICE is not None
        cost = PRICE.cost_micros(Usage(usage["prompt_tokens"], usage["completion_tokens"]))
        with self._lock:
            self.accepted[response.headers["x-sluice-request-id"]] = cost

    def run(self, count: int, start: int = 0) -> None:
        with httpx.Client(base_url=self.url, headers={"authorization": f"Bearer {self.key}"}, timeout=10) as client:
            for n in range(start, start + count):
                self.one(client, n)


def new_key(gateway: Proc) -> dict[str, Any]:
    response = httpx.post(
        f"{gateway.url}/admin/keys", json={"team": "chaos"}, headers={"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def assert_exact(rows: list[dict[str, Any]], load: Load, key_id: str) -> None:
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids))  # never doubled
    mine = {r["request_id"]: r for r in rows if r["key_id"] == key_id}
    missing = set(load.accepted) - set(mine)
    assert not missing, f"{len(missing)} accepted requests have no ledger row"
    assert sum(mine[i]["cost_micros"] for i in load.accepted) == sum(load.accepted.values())


def test_postgres_outage_mid_run_loses_and_doubles_nothing(
    simulator: Proc, tmp_path: Path, pg_behind_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, schema = pg_behind_proxy
    gateway = start_gateway(simulator, tmp_path, "outage", gateway_extra(proxy, schema, tmp_path / "spool"))
    try:
        key = new_key(gateway)
        load = Load(gateway.url, key["key"])
        load.run(40)
        proxy.close()  # PostgreSQL is gone: every pooled connection dropped, new ones refused
        load.run(40, start=40)
        time.sleep(1.5)  # the writer fails and backs off meanwhile
        assert len(ledger_rows(schema)) <= 40  # (this probe goes straight to PostgreSQL, not through the proxy)
        proxy.open()
        load.run(40, start=80)
        assert len(load.accepted) == 120  # the outage never reached a client
        rows = [r for r in wait_for_rows(schema, 120) if r["key_id"] == key["key_id"]]
        assert len(rows) == 120
        assert_exact(rows, load, key["key_id"])
        assert "ledger database unreachable" in gateway.logs()
    finally:
        gateway.stop()


def test_sigkill_mid_run_then_restart_replays_the_spool_exactly_once(
    simulator: Proc, tmp_path: Path, pg_behind_proxy: tuple[TcpProxy, str]
) -> None:
    proxy, schema = pg_behind_proxy
    extra = gateway_extra(proxy, schema, tmp_path / "spool")
    gateway = start_gateway(simulator, tmp_path, "killed", extra)
    key = new_key(gateway)
    load = Load(gateway.url, key["key"])
    load.run(20)
    proxy.close()  # rows now pile up in the spool only
    workers = [threading.Thread(target=load.run, args=(60, 1000 * (i + 1))) for i in range(3)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 30
    while len(load.accepted) < 80 and time.monotonic() < deadline:
        time.sleep(0.01)
    gateway.process.kill()  # SIGKILL, with requests in flight
    gateway.process.wait()
    for worker in workers:
        worker.join(timeout=30)
    accepted_before_restart = dict(load.accepted)
    assert len(accepted_before_restart) >= 80

    proxy.open()
    restarted = start_gateway(simulator, tmp_path, "killed", extra)
    try:
        rows = wait_for_rows(schema, len(accepted_before_restart))
        time.sleep(1.0)  # any doubling would show up now
        rows = [r for r in ledger_rows(schema) if r["key_id"] == key["key_id"]]
        assert_exact(rows, load, key["key_id"])
        assert len(rows) <= load.attempted  # nothing invented either
    finally:
        restarted.stop()
