"""Admission + settlement cost per request, with the in-process backend and with Redis.

    python bench/admission.py [--requests 3000] [--runs 3] [--redis redis://127.0.0.1:6379/0]

Each request is a virtual key's in the configuration users run: the key has a budget and RPM, TPM and
concurrency limits, its team a budget and RPM/TPM limits, its user and tenant none (four scopes, 50 keys,
10 users), on a priced model counted with o200k. Measures CPU time per request (the process's, so
preemption by other work on the machine is not counted): the hot-state calls alone (`admit` + `settle`),
and the whole admission and settle stages (prompt counting, planning, headers).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from redis.asyncio.connection import Connection

from sluicegate.canonical import ChatRequest, Usage
from sluicegate.catalog import ModelCatalog
from sluicegate.config.schema import GatewayConfig
from sluicegate.events import EventBus
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.settle import SettleStage
from sluicegate.principal import Budget, Limits, Principal, Scope
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import HotState, Settlement
from sluicegate.state.overrides import OverrideBook
from sluicegate.state.rebuild import BudgetRebuild, NothingSpent
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
        "budgets": {"alerts": [0.5, 0.8, 1.0]},
    }
)
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in two sentences."},
]


def _principals() -> list[Principal]:
    team = Limits(rpm=10**7, tpm=2 * 10**9, budget=Budget(10**12, "monthly"))
    return [
        Principal(
            key_id=f"k{i}",
            tenant_id="acme",
            team_id="t1",
            user_id=f"u{i % 10}",
            scopes=(
                Scope("tenant", "acme", Limits()),
                Scope("team", "t1", team),
                Scope("user", f"u{i % 10}", Limits()),
                Scope(
                    "key",
                    f"k{i}",
                    Limits(rpm=10**7, tpm=2 * 10**9, max_concurrency=10_000, budget=Budget(10**12, "daily")),
                ),
            ),
        )
        for i in range(50)
    ]


PRINCIPALS = _principals()  # as the auth cache holds them: one object per key, reused by its requests


def principal(i: int) -> Principal:
    return PRINCIPALS[i % len(PRINCIPALS)]


async def one_run(state: HotState, requests: int, clock: Callable[[], float] = time.process_time) -> dict[str, float]:
    """Median seconds per request by `clock`: CPU time for the memory backend; wall time with Redis, whose
    round trips are the cost and use no CPU of this process."""
    catalog = ModelCatalog.from_config(CONFIG, {})
    metrics = LimitMetrics(CollectorRegistry())
    admission = AdmissionStage(state, catalog, CONFIG.budgets, CONFIG.limits, metrics, overrides=OverrideBook(state))
    settle = SettleStage(state, admission, metrics, EventBus(), tuple(CONFIG.budgets.alerts))
    state_times: list[float] = []
    stage_times: list[float] = []
    sent_before = SENT["commands"]
    admissions_before = state.round_trips.admissions + state.round_trips.settlements
    for i in range(requests):
        ctx = RequestContext(f"req-{secrets.token_hex(6)}", "chat", "openai", {}, None)
        ctx.request = ChatRequest(model="gpt-4o-mini", messages=list(MESSAGES), max_tokens=256)  # type: ignore[arg-type]
        ctx.principal = principal(i)
        started = clock()
        await admission.on_request(ctx)
        middle = clock()
        ctx.attempts = 1
        ctx.usage = Usage(input_tokens=ctx.admission.prompt_tokens, output_tokens=100)
        ctx.cost_micros = 100
        before_settle = clock()
        await settle.on_finish(ctx)
        done = clock()
        stage_times.append(done - started - (before_settle - middle))
        plan = ctx.admission.plan
        raw = plan.__class__(**{**_fields(plan), "request_id": ctx.request_id + "-raw"})
        t0 = clock()
        result = await state.admit(raw)
        await state.settle(
            Settlement(ctx.request_id + "-raw", plan.tenant, plan.rates, plan.budgets, 100, 100, backend=result.backend)
        )
        state_times.append(clock() - t0)
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
        # as the gateway runs them: each balance seeded once from the ledger (here one that has no spend)
        redis_state = RedisState(client, prefix=prefix, rebuild=BudgetRebuild(NothingSpent()))
        await one_run(redis_state, 50)  # warm-up: loads the scripts (EVALSHA misses once)
        for _ in range(args.runs):
            memory = MemoryState(rebuild=BudgetRebuild(NothingSpent()))
            results["memory"].append(await one_run(memory, args.requests))
            results["redis"].append(await one_run(redis_state, args.requests, time.perf_counter))
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
        await client.aclose()

    def median(name: str, field: str) -> float:
        return statistics.median(r[field] for r in results[name])

    print(
        f"admission + settlement, {args.requests} requests x {args.runs} runs, medians; key: budget, RPM, TPM, "
        "concurrency; team: budget, RPM, TPM (CPU time with memory, wall time with Redis)"
    )
    print(f"{'backend':<8} {'state calls us/req':>20} {'stages us/req':>15} {'round trips/call':>18}")
    for name in ("memory", "redis"):
        trips = "-" if name == "memory" else f"{median(name, 'round_trips_per_call'):.2f}"
        print(f"{name:<8} {median(name, 'state_us'):>20.1f} {median(name, 'stages_us'):>15.1f} {trips:>18}")
    ratio = median("redis", "stages_us") / median("memory", "stages_us")
    print(f"redis / memory (stages): {ratio:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
