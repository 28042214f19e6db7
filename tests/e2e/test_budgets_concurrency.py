"""The promise that makes teams buy a gateway: under 1,000 concurrent requests from many keys of one team,
through two gateway processes sharing Redis and PostgreSQL, streaming and not, with random output lengths,
the ledger's total for the team never exceeds the team's budget by a single micro-dollar, and nearly all of
the budget is used (the reservations are not so conservative that they refuse good traffic)."""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
import redis

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, start_gateway, start_process
from tests.store.conftest import POSTGRES_URL, drop_schema, postgres_reachable, unique_schema

BUDGET_MICROS = 3_000_000  # $3
REQUESTS = 1000
KEYS = 20
SIMULATOR = f"""
seed: 23
api_key: {UPSTREAM_KEY}
default:
  ttft_ms: 0
  latency_ms: 0
  tokens_per_second: 0
  output_tokens: {{min: 5, max: 150}}
"""
# gpt-4 is counted exactly (cl100k, as the simulator counts); priced $30 / $300 per million tokens here.
EXTRA = """
  - name: gpt-4
    deployments:
      - provider: sim
        model: gpt-4
        max_output_tokens: 150
        price: {{input: 30, output: 300}}
store:
  database_url: {database}
  db_schema: {schema}
  spool_dir: {spool}
  key_cache_ttl_seconds: 120
redis:
  url: redis://127.0.0.1:6379/0
limits:
  key_prefix: {prefix}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Proc], str]]:
    if not asyncio.run(postgres_reachable()):
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the budget concurrency test did not run")
    workdir = tmp_path_factory.mktemp("budget-concurrency")
    (workdir / "sim.yaml").write_text(SIMULATOR)
    port = free_port()
    schema = unique_schema()
    prefix = "sgtest-bc-" + secrets.token_hex(4)
    procs: list[Proc] = []
    try:
        procs.append(
            start_process(
                ["simulator", "--port", str(port), "--config", str(workdir / "sim.yaml")],
                port,
                workdir,
                "simulator",
                ready_path="/_sim/stats",
            )
        )
        for name in ("gw-a", "gw-b"):
            folder = workdir / name
            folder.mkdir()
            extra = EXTRA.format(database=POSTGRES_URL, schema=schema, spool=folder / "spool", prefix=prefix)
            procs.append(start_gateway(procs[0], folder, name, extra))
        yield procs[1:], schema
    finally:
        for proc in reversed(procs):
            proc.stop()
        asyncio.run(drop_schema(schema))
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in client.scan_iter(match=f"{prefix}:*"):
            client.delete(key)
        client.close()


def ledger_total(schema: str, team: str) -> tuple[int, int]:
    from sqlalchemy import text

    from sluicegate.store.db import Store

    async def read() -> tuple[int, int]:
        store = Store(POSTGRES_URL, schema=schema)
        try:
            async with store.engine.connect() as conn:
                row = (
                    await conn.execute(
                        text("SELECT count(*), coalesce(sum(cost_micros), 0) FROM spend_ledger WHERE team_id = :t"),
                        {"t": team},
                    )
                ).one()
                return int(row[0]), int(row[1])
        finally:
            await store.close()

    return asyncio.run(read())


async def _one(session: aiohttp.ClientSession, url: str, key: str, rng: random.Random) -> tuple[int, str | None]:
    body: dict[str, Any] = {
        "model": "gpt-4",
        "messages": [{"role": "user", "content": f"Write about rivers, variant {rng.randint(0, 10**6)}."}],
    }
    if rng.random() < 0.5:
        body["max_tokens"] = rng.choice([20, 80, 1000])
    stream = rng.random() < 0.5
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    headers = {"authorization": f"Bearer {key}"}
    async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as response:
        raw = await response.read()
    if response.status != 200:
        return response.status, orjson.loads(raw)["error"]["code"]
    if stream:
        assert raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
    return 200, None


@pytest.mark.timeout(300)  # ~15 s alone; generous for a loaded 2-core machine
def test_team_budget_holds_under_1000_concurrent_requests_on_two_instances(
    cluster: tuple[list[Proc], str],
) -> None:
    gateways, schema = cluster
    master = {"authorization": f"Bearer {MASTER_KEY}"}
    admin = httpx.Client(base_url=gateways[0].url, headers=master, timeout=20)
    team = "team-surge"
    created = admin.post("/admin/teams", json={"id": team, "budget_usd": "3", "budget_period": "monthly"})
    assert created.status_code == 201, created.text
    keys = []
    for _ in range(KEYS):
        response = admin.post("/admin/keys", json={"team": team})
        assert response.status_code == 201, response.text
        keys.append(response.json()["key"])

    async def run() -> list[tuple[int, str | None]]:
        rng = random.Random(31)
        # aiohttp rather than httpx here: httpx's pool scans every waiting request on each release, which
        # made the client, not the gateways, the bottleneck of 1,000 concurrent requests.
        connector = aiohttp.TCPConnector(limit=200)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            jobs = [
                _one(session, gateways[i % 2].url, keys[rng.randrange(KEYS)], random.Random(rng.random()))
                for i in range(REQUESTS)
            ]
            return await asyncio.gather(*jobs)

    started = time.monotonic()
    results = asyncio.run(run())
    load_seconds = time.monotonic() - started
    outcomes = Counter(results)
    assert set(outcomes) <= {(200, None), (402, "budget_exceeded")}, outcomes
    assert outcomes[(402, "budget_exceeded")] > 0, "the budget was never reached: the test proves nothing"

    deadline = time.monotonic() + 60
    rows, total = ledger_total(schema, team)
    while rows < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.5)
        rows, total = ledger_total(schema, team)
    assert rows == REQUESTS, f"{rows} ledger rows for {REQUESTS} requests"
    assert total <= BUDGET_MICROS, f"the ledger shows {total} micro-dollars against a budget of {BUDGET_MICROS}"
    assert total >= 0.95 * BUDGET_MICROS, f"only {total} of {BUDGET_MICROS} used: reservations too conservative"
    print(f"\n{outcomes} ledger {total} of {BUDGET_MICROS}; load {load_seconds:.1f}s")
