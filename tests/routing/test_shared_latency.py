"""Latency statistics blended across gateway instances through the real Redis (unique key prefix per run)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sluicegate.routing.shared_stats import SharedLatency
from tests.routing.helpers import REDIS_URL, make_router, needs, redis_prefix

GROUP = """
  - name: g
    routing: {strategy: latency}
    deployments:
      - {provider: sim, model: a}
      - {provider: sim, model: b}
"""


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    async for value in redis_prefix("latency"):
        yield value


async def test_an_instance_without_samples_routes_on_the_others_figures(prefix: str) -> None:
    router_a, catalog, _ = make_router(GROUP + "routing: {exploration_share: 0}\n")
    router_b, _, _ = make_router(GROUP + "routing: {exploration_share: 0}\n")
    shared_a = SharedLatency(aioredis.from_url(REDIS_URL), router_a, prefix=prefix)
    shared_b = SharedLatency(aioredis.from_url(REDIS_URL), router_b, prefix=prefix)
    try:
        for _ in range(20):
            router_a.health["sim/a"].stats.observe(2.0)  # instance A learnt that a is slow
            router_a.health["sim/b"].stats.observe(0.2)
        assert router_b.health["sim/a"].stats.predicted_p99() is None
        await shared_a.exchange()
        await shared_b.exchange()
        assert router_b.health["sim/a"].stats.predicted_p99() == pytest.approx(2.0)
        group = catalog.get("g")
        assert group is not None
        plan = router_b.plan(group, needs(router_b, "g"))
        assert [d.model for d in plan.chain] == ["b", "a"]
        for _ in range(20):
            router_b.health["sim/a"].stats.observe(1.0)  # B's own samples blend in, count-weighted
        assert router_b.health["sim/a"].stats.predicted_p99() == pytest.approx(1.5)
        assert router_a.health["sim/a"].stats.remote is None, "an instance never counts itself twice"
    finally:
        await shared_a.stop()
        await shared_b.stop()


async def test_redis_away_falls_back_to_local_samples() -> None:
    router, _, _ = make_router(GROUP)
    stats = router.health["sim/a"].stats
    for _ in range(10):
        stats.observe(0.5)
    client = aioredis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    shared = SharedLatency(client, router, prefix="unused:")
    await shared.exchange()
    assert stats.remote is None and stats.predicted_p99() == pytest.approx(0.5)
    await shared.stop()
