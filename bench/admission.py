"""Admission + settlement cost per request, with the in-process backend and with Redis.

    python bench/admission.py [--requests 3000] [--runs 3] [--redis redis://127.0.0.1:6379/0]

Each request counts against four scopes (key, user, team, tenant) with RPM/TPM limits and a budget on
two of them, as a virtual key's request does. Measures, per request: the hot-state calls alone
(`admit` + `settle`), and the whole admission and settle stages (prompt counting, planning, headers).
With Redis it also counts round trips at the client (every command sent on a connection) to show that
an admission is one round trip and a settlement is one. Prints a table of medians over --runs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.connection import Connection

from sluicegate.canonical import ChatRequest, Usage
from sluicegate.catalog import ModelCatalog
from sluicegate.config.schema import GatewayConfig
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.settle import SettleStage
from sluicegate.principal import Budget, Limits, Principal, Scope
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import HotState, Settlement
from sluicegate.state.redis import RedisState

SENT = {"commands": 0}


class CountingConnection(Connection):
    """Counts every write to Redis: one per command, or one per pipeline."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        SENT["commands"] += 1
        await super().send_packed_command(command, check_health)


CONFIG = GatewayConfig.model_validate(
    {
        "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": [{"name": "gpt-4o-mini", "deployments": [{"provider": "sim", "model": "gpt-4o-mini"}]}],
    }
)
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in two sentences."},
]


def principal(i: int) -> Principal:
    big = Limits(rpm=10**6, tpm=10**9, budget=Budget(10**12, "monthly"))
    return Principal(
        key_id=f"k{i % 50}",
        tenant_id="acme",
        team_id="t1",
        user_id=f"u{i % 10}",
        scopes=(
            Scope("tenant", "acme", big),
            Scope("team", "t1", Limits(rpm=10**6, tpm=10**9)),
            Scope("user", f"u{i % 10}", Limits(rpm=10**6)),
            Scope("key", f"k{i % 50}", Limits(rpm=10**6, tpm=10**9, budget=Budget(10**12, "daily"))),
        ),
    )


async def one_run(state: HotState, requests: int) -> dict[str, float]:
    catalog = ModelCatalog.from_config(CONFIG, {})
    metrics = LimitMetrics(CollectorRegistry())
    admission = AdmissionStage(state, catalog, CONFIG.budgets, CONFIG.limits, metrics)
    settle = SettleStage(state, admission, metrics)
    state_times: list[float] = []
    stage_times: list[float] = []
    sent_before = SENT["commands"]
    admissions_before = state.round_trips.admissions + state.round_trips.settlements
    for i in range(requests):
        ctx = RequestContext(f"req-{secrets.token_hex(6)}", "chat", "openai", {}, None)
        ctx.request = ChatRequest(model="gpt-4o-mini", messages=list(MESSAGES), max_tokens=256)  # type: ignore[arg-type]
        ctx.principal = principal(i)
        started = time.perf_counter()
        await admission.on_request(ctx)
        middle = time.perf_counter()
        ctx.attempts = 1
        ctx.usage = Usage(input_tokens=ctx.admission.prompt_tokens, output_tokens=100)
        ctx.cost_micros = 100
        before_settle = time.perf_counter()
        await settle.on_finish(ctx)
        done = time.perf_counter()
        stage_times.append(done - started - (before_settle - middle))
        plan = ctx.admission.plan
        t0 = time.perf_counter()
        result = await state.admit(plan.__class__(**{**_fields(plan), "request_id": ctx.request_id + "-raw"}))
        await state.settle(
            Settlement(ctx.request_id + "-raw", plan.tenant, plan.rates, plan.budgets, 100, 100, backend=result.backend)
        )
        state_times.append(time.perf_counter() - t0)
    calls = state.round_trips.admissions + state.round_trips.settlements - admissions_before
    return {
        "state_us": statistics.median(state_times) * 1e6,
        "stages_us": statistics.median(stage_times) * 1e6,
        "round_trips_per_call": (SENT["commands"] - sent_before) / calls if SENT["commands"] > sent_before else 0.0,
    }


def _fields(plan: Any) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in plan.__dataclass_fields__}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    results: dict[str, list[dict[str, float]]] = {"memory": [], "redis": []}
    prefix = "sgbench-" + secrets.token_hex(4)
    pool = aioredis.BlockingConnectionPool.from_url(args.redis, connection_class=CountingConnection, max_connections=4)
    client = aioredis.Redis(connection_pool=pool)
    try:
        redis_state = RedisState(client, prefix=prefix)
        await one_run(redis_state, 50)  # warm-up: loads the scripts (EVALSHA misses once)
        for _ in range(args.runs):
            results["memory"].append(await one_run(MemoryState(), args.requests))
            results["redis"].append(await one_run(redis_state, args.requests))
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
        await client.aclose()

    def median(name: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name])

    print(f"admission + settlement, {args.requests} requests x {args.runs} runs, 4 scopes (2 budgets), medians")
    print(f"{'backend':<8} {'state calls us/req':>20} {'stages us/req':>15} {'round trips/call':>18}")
    for name in ("memory", "redis"):
        trips = "-" if name == "memory" else f"{median(name, 'round_trips_per_call'):.2f}"
        print(f"{name:<8} {median(name, 'state_us'):>20.1f} {median(name, 'stages_us'):>15.1f} {trips:>18}")
    ratio = median("redis", "stages_us") / median("memory", "stages_us")
    print(f"redis / memory (stages): {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
