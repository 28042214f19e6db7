"""The ledger through a real gateway: hostile client text on PostgreSQL, and the refusal while the spool
cannot record."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway
from tests.store.conftest import POSTGRES_URL, drop_schema, postgres_reachable, unique_schema

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def pg_schema() -> Iterator[str]:
    if not asyncio.run(postgres_reachable()):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the PostgreSQL ledger test did not run")
    schema = unique_schema()
    yield schema
    asyncio.run(drop_schema(schema))


def pg_row(schema: str, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    from sqlalchemy import text

    from sluicegate.store.db import Store

    async def read() -> dict[str, Any] | None:
        store = Store(POSTGRES_URL, schema=schema)
        try:
            async with store.engine.connect() as conn:
                result = await conn.execute(
                    text("SELECT * FROM spend_ledger WHERE request_id = :id"), {"id": request_id}
                )
                row = result.first()
                return dict(row._mapping) if row is not None else None
        finally:
            await store.close()

    deadline = time.monotonic() + timeout
    while (row := asyncio.run(read())) is None:
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.1)
    return row


def test_a_nul_byte_in_client_text_cannot_hide_spend_on_postgres(
    simulator: Proc, tmp_path: Path, pg_schema: str
) -> None:
    extra = f"""
store:
  database_url: {POSTGRES_URL}
  db_schema: {pg_schema}
  spool_dir: {tmp_path / "spool"}
"""
    gateway = start_gateway(simulator, tmp_path, "hostile", extra)
    try:
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            headers=AUTH,
            json={
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "hi"}],
                "user": "alice\u0000",
                "metadata": {"feature": "search\u0000\u001b[2J"},
            },
        )
        assert response.status_code == 200
        row = pg_row(pg_schema, response.headers["x-sluice-request-id"])
        assert row["end_user"] == "alice\ufffd" and row["feature"] == "search\ufffd\ufffd[2J"
        assert row["cost_micros"] == round(float(response.headers["x-sluice-cost-usd"]) * 1_000_000)
        assert not (tmp_path / "spool" / "instance-0" / "rejected.log").exists()
    finally:
        gateway.stop()


def test_a_spool_disk_under_its_reserve_refuses_new_requests_in_the_clients_format(
    simulator: Proc, tmp_path: Path
) -> None:
    gateway = start_gateway(simulator, tmp_path, "reserve", "store:\n  spool_reserve_bytes: 1000000000000000\n")
    try:
        deadline = time.monotonic() + 5
        while True:  # the writer looks at the disk within a second of starting
            openai_style = httpx.post(
                f"{gateway.url}/v1/chat/completions",
                headers=AUTH,
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            )
            if openai_style.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert openai_style.status_code == 503
        assert openai_style.json()["error"]["code"] == "ledger_unavailable"
        assert openai_style.headers["retry-after"]
        anthropic_style = httpx.post(
            f"{gateway.url}/v1/messages",
            headers=AUTH,
            json={"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert anthropic_style.status_code == 503
        assert anthropic_style.json()["type"] == "error"
        assert anthropic_style.json()["error"]["type"] == "overloaded_error"  # Anthropic's retryable 503
        assert "ledger" in anthropic_style.json()["error"]["message"]
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert "sluicegate_ledger_accepting 0.0" in metrics
        assert "sluicegate_ledger_spool_pressure 1.0" in metrics
        assert "ledger spool under pressure" in gateway.logs()
    finally:
        gateway.stop()
