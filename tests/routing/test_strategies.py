"""Each routing strategy picks the deployment its name promises, and says why."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from sluicegate.errors import GatewayError
from sluicegate.routing.breaker import BreakerState
from sluicegate.routing.router import RoutePlan, Router
from tests.routing.helpers import chat, make_router, needs


def group_yaml(strategy: str, deployments: str) -> str:
    return f"""
  - name: g
    routing: {{strategy: {strategy}}}
    deployments:
{deployments}
"""


THREE = """
      - {provider: sim, model: a, weight: 1, price: {input: 5, output: 15}}
      - {provider: sim, model: b, weight: 3, price: {input: 0.5, output: 1.5}}
      - {provider: sim, model: c, weight: 6, price: {input: 1, output: 2}}
"""


def plan(router: Router, name: str = "g", **kw: Any) -> RoutePlan:
    group = router.catalog.get(name)
    assert group is not None
    return router.plan(group, needs(router, name, **kw))


def test_weighted_follows_the_weights() -> None:
    router, _, _ = make_router(group_yaml("weighted", THREE))
    picks = Counter(plan(router).chain[0].model for _ in range(5000))
    assert picks["c"] / 5000 == pytest.approx(0.6, abs=0.03)
    assert picks["b"] / 5000 == pytest.approx(0.3, abs=0.03)
    assert picks["a"] / 5000 == pytest.approx(0.1, abs=0.02)
    p = plan(router)
    assert len(p.chain) == 3 and p.reason.startswith("weighted:")


def test_least_busy_picks_fewest_in_flight() -> None:
    router, _, _ = make_router(group_yaml("least_busy", THREE))
    router.health["sim/a"].limit.in_flight = 4
    router.health["sim/b"].limit.in_flight = 1
    router.health["sim/c"].limit.in_flight = 9
    p = plan(router)
    assert [d.model for d in p.chain] == ["b", "a", "c"]
    assert p.reason == "least_busy: 1 in flight, least of 3"


def _observe(router: Router, name: str, seconds: float, n: int = 20) -> None:
    for _ in range(n):
        router.health[name].stats.observe(seconds)


def test_latency_picks_lowest_predicted_p99() -> None:
    router, _, _ = make_router(group_yaml("latency", THREE), "routing: {exploration_share: 0}\n")
    _observe(router, "sim/a", 0.2)
    _observe(router, "sim/b", 0.9)
    _observe(router, "sim/c", 0.5)
    p = plan(router)
    assert [d.model for d in p.chain] == ["a", "c", "b"]
    assert p.reason == "latency: lowest p99 200ms of 3"


def test_latency_explores_unknown_deployments_with_a_small_share() -> None:
    router, _, _ = make_router(group_yaml("latency", THREE), "routing: {exploration_share: 0.1}\n")
    _observe(router, "sim/a", 0.2)
    _observe(router, "sim/b", 0.9)  # c has no samples
    picks = Counter(plan(router).chain[0].model for _ in range(2000))
    assert 100 < picks["c"] < 300, picks  # about 10%, neither starved nor flooded
    assert picks["a"] > 1600


def test_cost_picks_the_cheapest_meeting_the_latency_need() -> None:
    router, _, _ = make_router(group_yaml("cost", THREE), "routing: {exploration_share: 0}\n")
    _observe(router, "sim/a", 0.3)
    _observe(router, "sim/b", 3.0)  # cheapest but slow
    _observe(router, "sim/c", 0.8)
    assert plan(router).chain[0].model == "b"
    p = plan(router, headers={"x-sluice-max-latency-ms": "2000"})
    assert [d.model for d in p.chain] == ["c", "a", "b"]
    assert p.reason == "cost: cheapest of 2 meeting p99<2000ms"
    p = plan(router, headers={"x-sluice-max-latency-ms": "100"})
    assert p.chain[0].model == "a" and "none of 3 meets" in p.reason


def test_usage_prefers_most_headroom_under_upstream_limits() -> None:
    deployments = """
      - {provider: sim, model: a, rpm: 100}
      - {provider: sim, model: b, rpm: 1000}
      - {provider: sim, model: c, tpm: 10000}
"""
    router, _, _ = make_router(group_yaml("usage", deployments))
    router.health["sim/a"].usage.add(requests=50)
    router.health["sim/b"].usage.add(requests=100)
    router.health["sim/c"].usage.add(requests=1, tokens=8000)
    p = plan(router)
    assert [d.model for d in p.chain] == ["b", "a", "c"]
    assert p.reason == "usage: most headroom 90% of 3"


def test_usage_headroom_comes_back_after_a_minute() -> None:
    router, _, clock = make_router(group_yaml("usage", "      - {provider: sim, model: a, rpm: 10}\n"))
    usage = router.health["sim/a"].usage
    usage.add(requests=10)
    assert usage.headroom(10, None) == 0
    clock.advance(61)
    assert usage.headroom(10, None) == 1


def test_capabilities_filter_every_strategy() -> None:
    deployments = """
      - {provider: sim, model: a, capabilities: [tools]}
      - {provider: sim, model: b, capabilities: [tools, vision]}
"""
    router, _, _ = make_router(group_yaml("weighted", deployments))
    image = chat()
    image.messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]}]
    for _ in range(20):
        assert [d.model for d in plan(router, request=image).chain] == ["b"]
    only_code, _, _ = make_router(group_yaml("weighted", "      - {provider: sim, model: a, capabilities: [code]}\n"))
    with pytest.raises(GatewayError) as info:
        plan(only_code, request=chat(tools=[{"type": "function"}]))
    assert info.value.status == 400 and info.value.code == "model_not_capable"


def test_prompt_too_long_for_one_deployment_goes_to_one_where_it_fits() -> None:
    deployments = """
      - {provider: sim, model: small, context_window: 50}
      - {provider: sim, model: large, context_window: 100000}
"""
    router, _, _ = make_router(group_yaml("weighted", deployments))
    long = chat("word " * 200)
    for _ in range(10):
        assert [d.model for d in plan(router, request=long).chain] == ["large"]
    assert len(plan(router, request=chat("hi")).chain) == 2


def test_prompt_too_long_for_every_deployment_is_a_clear_400() -> None:
    router, _, _ = make_router(group_yaml("weighted", "      - {provider: sim, model: small, context_window: 50}\n"))
    with pytest.raises(GatewayError) as info:
        plan(router, request=chat("word " * 200))
    assert info.value.status == 400
    assert info.value.code == "context_length_exceeded"
    assert "context window of 'g' is 50 tokens" in info.value.message


def test_region_restriction_holds_and_fails_clearly() -> None:
    deployments = """
      - {provider: sim, model: us, region: us-east-1}
      - {provider: sim, model: eu, region: eu-west-1}
      - {provider: sim, model: none}
"""
    router, _, _ = make_router(group_yaml("weighted", deployments))
    for _ in range(20):
        assert [d.model for d in plan(router, regions=frozenset({"eu"})).chain] == ["eu"]
    router.health["sim/eu"].breaker.force(BreakerState.OPEN)
    assert plan(router, regions=frozenset({"eu"})).chain == [], "never leaves the region, even when EU is down"
    with pytest.raises(GatewayError) as info:
        plan(router, regions=frozenset({"ap"}))
    assert info.value.status == 403 and info.value.code == "region_not_allowed"


def test_open_breakers_leave_the_chain_and_are_reported() -> None:
    router, _, _ = make_router(group_yaml("weighted", THREE))
    router.health["sim/c"].breaker.force(BreakerState.OPEN)
    p = plan(router)
    assert "c" not in [d.model for d in p.chain]
    assert [h.deployment.model for h in p.blocked] == ["c"]
    assert p.reason.endswith("1 breaker-open")


def test_deployments_at_their_concurrency_limit_go_last() -> None:
    router, _, _ = make_router(group_yaml("weighted", THREE))
    limit = router.health["sim/c"].limit
    limit.limit = 2
    limit.in_flight = 2
    for _ in range(20):
        assert plan(router).chain[-1].model == "c"
