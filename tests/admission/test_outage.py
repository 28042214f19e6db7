"""When Redis cannot be reached: budgets fail closed, rate limits go local and conservative; the switch
and the return are logged and counted."""

from __future__ import annotations

import logging

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from sluicegate.state.config import OutagePolicyConfig
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import AdmissionPlan, BudgetScope, RateScope
from sluicegate.state.redis import RedisState
from sluicegate.state.resilient import ResilientState
from tests.conftest import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plan(i: int, rates: tuple[RateScope, ...] = (), budgets: tuple[BudgetScope, ...] = ()) -> AdmissionPlan:
    return AdmissionPlan(f"r{i}", "acme", rates, budgets, input_tokens=1, max_output_tokens=1)


async def test_unreachable_redis_applies_the_policy_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    live = aioredis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=5)
    metrics = LimitMetrics(CollectorRegistry())
    clock = Clock()
    state = ResilientState(
        RedisState.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2, prefix="sgtest-outage"),
        MemoryState(),
        OutagePolicyConfig(local_fraction=0.5, retry_seconds=2),
        on_switch=metrics.switched,
        monotonic=clock,
    )
    rate = (RateScope("key:k1", rpm=10),)
    budget = (BudgetScope("team:t1", "total", 10**6, 10**6),)
    with caplog.at_level(logging.WARNING, logger="sluicegate.state"):
        refused = await state.admit(plan(0, budgets=budget))
        assert not refused.admitted and refused.refusal == "unavailable"
        admitted = [(await state.admit(plan(i, rates=rate))).admitted for i in range(1, 10)]
        assert admitted.count(True) == 5  # half of the limit, locally
        assert state.degraded and metrics.degraded._value.get() == 1
        state.shared = RedisState(live, prefix="sgtest-outage")
        clock.now = 3  # time to try Redis again
        back = await state.admit(plan(100, rates=rate))
        assert back.admitted and back.backend == "redis" and not state.degraded
    messages = [r.getMessage() for r in caplog.records]
    assert any("Redis unreachable" in m for m in messages) and any("Redis is back" in m for m in messages)
    assert metrics.switches.labels("local")._value.get() == 1 and metrics.switches.labels("redis")._value.get() == 1
    async for key in live.scan_iter(match="sgtest-outage:*"):
        await live.delete(key)
    await live.aclose()
