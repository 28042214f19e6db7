"""Breaker verdicts shared between gateway instances through the real Redis (unique key prefix per run)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sluicegate.routing.breaker import BreakerState
from sluicegate.routing.router import Router
from sluicegate.routing.shared import SharedBreakers
from tests.routing.helpers import REDIS_URL, make_router, redis_prefix

GROUP = """
  - name: g
    routing: {breaker: {consecutive_failures: 3, min_open_s: 0.3, half_open_probes: 1}}
    deployments:
      - {provider: sim, model: a}
      - {provider: sim, model: b}
"""


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async for value in redis_prefix("breaker"):
        yield value


def instance(prefix: str) -> tuple[Router, SharedBreakers]:
    router, _, _ = make_router(GROUP)
    router.clock = time.monotonic
    for health in router.health.values():
        health.breaker._clock = time.monotonic
    client = aioredis.from_url(REDIS_URL, socket_timeout=1)
    listener = aioredis.from_url(REDIS_URL)
    return router, SharedBreakers(client, listener, router, prefix=prefix)


async def eventually(check: object, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False


async def test_a_breaker_opened_on_one_instance_opens_on_the_others(prefix: str) -> None:
    router_a, shared_a = instance(prefix)
    router_b, shared_b = instance(prefix)
    await shared_a.start()
    await shared_b.start()
    try:
        breaker_a = router_a.health["sim/a"].breaker
        breaker_b = router_b.health["sim/a"].breaker
        for _ in range(3):
            assert breaker_a.acquire()
            breaker_a.record("failure", 0.1)
        assert breaker_a.state is BreakerState.OPEN
        assert await eventually(lambda: breaker_b.state is not BreakerState.CLOSED), "B adopted A's verdict"
        assert not breaker_b.acquire()
        assert breaker_b.reason.startswith("shared: 3 consecutive failures")
        assert router_b.health["sim/b"].breaker.state is BreakerState.CLOSED, "only that deployment"

        late_router, late = instance(prefix)  # an instance that starts while the breaker is open
        await late.start()
        assert late_router.health["sim/a"].breaker.state is BreakerState.OPEN
        await late.stop()

        await asyncio.sleep(0.35)  # A's open time is over: its probe succeeds and it closes
        assert breaker_a.acquire()
        breaker_a.record("success", 0.1)
        assert breaker_a.state is BreakerState.CLOSED
        assert await eventually(lambda: breaker_b.state is BreakerState.CLOSED)
    finally:
        await shared_a.stop()
        await shared_b.stop()


async def test_redis_away_leaves_each_instance_judging_alone() -> None:
    router, _, _ = make_router(GROUP)
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    shared = SharedBreakers(client, client, router, prefix="unused:")
    started = time.monotonic()
    await shared.start()
    breaker = router.health["sim/a"].breaker
    for _ in range(3):
        breaker.acquire()
        breaker.record("failure", 0.1)
    assert breaker.state is BreakerState.OPEN
    await shared.stop()
    assert time.monotonic() - started < 5
