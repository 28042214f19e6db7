"""Budgets end to end on a real 3-master Redis Cluster: requests that count against a key's budget (its
tenant's slot) and the global budget and rate limit (the shared slot) at once, 60 of them concurrently,
never spend a micro-dollar over the key's budget, and the key stays refused afterwards."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx

from tests.conftest import MASTER_KEY, Proc, start_gateway
from tests.e2e.test_budget_rebuild import PRICEY, PROMPT, _new_key
from tests.state.own_redis import OwnCluster

BUDGET_MICROS = 50_000  # the key's $0.05 (test_budget_rebuild's)


def _ledger(workdir: Path, key_id: str, rows: int) -> tuple[int, int]:
    deadline = time.monotonic() + 20
    while True:
        with sqlite3.connect(workdir / ".sluicegate" / "sluicegate.db") as db:
            count, total = db.execute(
                "SELECT count(*), coalesce(sum(cost_micros), 0) FROM spend_ledger WHERE key_id = ?", (key_id,)
            ).fetchone()
        if count >= rows or time.monotonic() > deadline:
            return int(count), int(total)
        time.sleep(0.2)


def test_a_key_budget_holds_on_redis_cluster_with_global_limits(simulator: Proc, tmp_path: Path) -> None:
    cluster = OwnCluster(tmp_path).start()
    extra = (
        PRICEY
        + f"""
redis:
  url: {cluster.url}
budgets:
  global: {{amount_usd: "100", period: monthly}}
limits:
  global: {{rpm: 100000}}
"""
    )
    try:
        gw = start_gateway(simulator, tmp_path, "gw-cluster", extra)
        try:
            response = httpx.post(
                f"{gw.url}/admin/keys",
                json={"team": "cluster", "budget_usd": "0.05"},
                headers={"authorization": f"Bearer {MASTER_KEY}"},
                timeout=10,
            )
            assert response.status_code == 201, response.text
            key, key_id = response.json()["key"], response.json()["key_id"]

            async def burst() -> list[tuple[int, str | None]]:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

                    async def one() -> tuple[int, str | None]:
                        async with session.post(
                            f"{gw.url}/v1/chat/completions", json=PROMPT, headers={"authorization": f"Bearer {key}"}
                        ) as reply:
                            body = await reply.json()
                            return reply.status, (body.get("error") or {}).get("code")

                    return await asyncio.gather(*(one() for _ in range(60)))

            outcomes = Counter(asyncio.run(burst()))
            served = outcomes[(200, None)]
            assert set(outcomes) <= {(200, None), (402, "budget_exceeded"), (429, "budget_reserved")}, outcomes
            assert served >= 2 and outcomes[(402, "budget_exceeded")] > 0, outcomes
            rows, spent = _ledger(tmp_path, key_id, 60)
            assert rows == 60  # refused requests have their row too
            assert spent <= BUDGET_MICROS, f"{spent} µ$ spent of a {BUDGET_MICROS} µ$ budget"
            again = httpx.post(
                f"{gw.url}/v1/chat/completions", json=PROMPT, headers={"authorization": f"Bearer {key}"}, timeout=10
            )
            assert again.status_code == 402
            fresh = _new_key(gw)  # other tenants' keys and the global slot still serve
            assert (
                httpx.post(
                    f"{gw.url}/v1/chat/completions",
                    json=PROMPT,
                    headers={"authorization": f"Bearer {fresh}"},
                    timeout=10,
                ).status_code
                == 200
            )
            assert httpx.get(f"{gw.url}/health/ready", timeout=5).json()["status"] == "ready"
        finally:
            gw.stop()
    finally:
        cluster.stop()
