"""The auto route alone: which group of the pool a request gets, and that admission then limits and prices
that group (budgets, allow-lists, residency, the downgrade tier)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from sluicegate.canonical import ChatRequest
from sluicegate.catalog import ModelCatalog
from sluicegate.classify.drift import DriftWatch
from sluicegate.classify.heuristic import HeuristicClassifier
from sluicegate.classify.metrics import AutoMetrics
from sluicegate.config.schema import GatewayConfig
from sluicegate.errors import GatewayError
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.auto import AutoRoute
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.decide import Decide
from sluicegate.pipeline.records import RouteStep
from sluicegate.pipeline.route import Route
from sluicegate.principal import Budget, Limits, Principal, Scope
from sluicegate.routing.router import Router
from sluicegate.state.clock import ManualClock
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics


def _group(name: str, model: str, price: tuple[float, float], region: str = "us-east-1", **extra: Any) -> dict:
    deployment = {"provider": "p", "model": model, "region": region, "price": {"input": price[0], "output": price[1]}}
    return {"name": name, "deployments": [deployment], **extra}


def _config(**sections: Any) -> GatewayConfig:
    base: dict[str, Any] = {
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": [
            _group("mini", "gpt-4o-mini", (0.15, 0.6)),
            _group("flash", "gemini-2.0-flash", (0.1, 0.4), region="eu-west-1"),
            _group("sonnet", "claude-sonnet-4", (3, 15)),
            _group("opus", "claude-opus-4", (15, 75)),
            {"name": "auto", "routing": {"strategy": "auto"}, "pool": ["mini", "flash", "sonnet", "opus"]},
        ],
    }
    base.update(sections)
    return GatewayConfig.model_validate(base)


EASY = "Hi! How are you today?"
HARD = (
    "Prove rigorously that every continuous function on a closed interval is uniformly continuous, "
    "and derive a bound on the modulus of continuity."
)
CODE = "Write a Python function that parses an ISO date and returns the weekday, with tests."


def _ctx(text: str, who: Principal | None = None, **headers: str) -> RequestContext:
    request = ChatRequest(model="auto", messages=[{"role": "user", "content": text}])
    ctx = RequestContext("req-1", "chat", "openai", headers, request)
    ctx.principal = who
    return ctx


async def _decide(config: GatewayConfig, ctx: RequestContext, downgrade: bool = False) -> AutoMetrics:
    catalog = ModelCatalog.from_config(config, {})
    metrics = AutoMetrics()
    await Decide(catalog).on_request(ctx)
    stage = AutoRoute(catalog, HeuristicClassifier(), metrics, (lambda ctx: True) if downgrade else None)
    await stage.on_request(ctx)
    return metrics


async def test_an_easy_prompt_gets_the_cheapest_group_and_a_hard_one_the_flagship() -> None:
    easy = _ctx(EASY)
    await _decide(_config(), easy)
    assert easy.model == "flash" and easy.route_tier == "economy"  # flash is cheaper than mini
    assert easy.requested_model == "auto"
    assert easy.response_headers["x-sluice-tier"] == "economy"
    assert easy.response_headers["x-sluice-classification"].startswith("task=chat; complexity=0.")
    assert easy.response_headers["x-sluice-classification"].endswith("by=heuristic")
    hard = _ctx(HARD)
    await _decide(_config(), hard)
    assert hard.model == "opus" and hard.route_tier == "flagship" and hard.task_type == "math"
    assert hard.complexity is not None and hard.complexity > 2 / 3
    assert hard.route_reason.startswith(f"auto: math {hard.complexity:.2f} -> flagship (opus)")


async def test_the_route_reason_keeps_the_auto_words_when_routing_appends() -> None:
    config = _config()
    ctx = _ctx(CODE)
    await _decide(config, ctx)
    catalog = ModelCatalog.from_config(config, {})
    await Route(catalog, Router(catalog, config.routing)).on_request(ctx)
    assert ctx.route[0].kind == "auto" and ctx.route[1].kind == "plan"
    assert ctx.route_reason.startswith(f"auto: code {ctx.complexity:.2f} -> {ctx.route_tier} ({ctx.model}); weighted")
    ctx.route.append(RouteStep("fallback", "fallback: x"))
    assert ctx.route_reason.endswith("; fallback: x")


async def test_an_allow_list_and_residency_narrow_the_pool() -> None:
    only_mini = Principal("k", allowed_models=("auto", "mini", "opus"))
    ctx = _ctx(EASY, only_mini)
    await _decide(_config(), ctx)
    assert ctx.model == "mini"
    eu_only = Principal("k", allowed_regions=("eu",))
    ctx = _ctx(HARD, eu_only)
    await _decide(_config(), ctx)
    assert ctx.model == "flash"  # the only group in the EU: the best there is, never a region it may not use
    with pytest.raises(GatewayError) as info:
        await _decide(_config(), _ctx(EASY, Principal("k", allowed_models=("auto",))))
    assert info.value.status == 403 and info.value.code == "model_not_allowed"


async def test_a_budget_in_its_downgrade_tier_lowers_the_tier() -> None:
    ctx = _ctx(HARD)
    await _decide(_config(), ctx, downgrade=True)
    assert ctx.route_tier == "balanced" and ctx.model == "sonnet"
    assert "budget downgrade tier" in ctx.route_reason


async def test_a_group_that_does_not_serve_the_task_is_passed_over() -> None:
    models = _config().model_dump(by_alias=True)["models"]
    models[0]["serves"] = {"tasks": ["chat", "translate"]}  # mini: no code
    models[1]["serves"] = {"tasks": ["chat"]}  # flash: no code
    config = _config(models=models)
    ctx = _ctx("Write a bash one-liner that counts lines in all .py files.")
    await _decide(config, ctx)
    assert ctx.task_type == "code" and ctx.model in ("sonnet", "opus")
    assert ctx.route_tier == "balanced"


async def test_tools_and_images_need_a_deployment_that_has_them() -> None:
    models = _config().model_dump(by_alias=True)["models"]
    for i in (0, 1):
        models[i]["deployments"][0]["capabilities"] = ["tools"]  # the economy groups: no vision
    config = _config(models=models)
    image = [
        {"type": "text", "text": "What colour is this car?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    ctx = RequestContext("r", "chat", "openai", {}, ChatRequest("auto", [{"role": "user", "content": image}]))
    await _decide(config, ctx)
    assert ctx.model == "sonnet"  # the cheapest group with a deployment that may take images


async def test_admission_limits_and_prices_the_group_the_auto_route_chose() -> None:
    """The reservation is at the chosen group's price; an unknown name is refused, never admitted unlimited."""
    config = _config()
    clock = ManualClock(1_767_225_600.0)
    catalog = ModelCatalog.from_config(config, {})
    state = MemoryState(clock, window_seconds=60)
    admission = AdmissionStage(
        state, catalog, config.budgets, config.limits, LimitMetrics(CollectorRegistry()), clock=clock.now
    )
    who = Principal("k", scopes=(Scope("key", "k", Limits(budget=Budget(1_000_000, "monthly"))),))
    for text, model, price in ((EASY, "flash", 0.1), (HARD, "opus", 15)):
        ctx = _ctx(text, who)
        await _decide(config, ctx)
        await admission.on_request(ctx)
        assert ctx.model == model
        assert ctx.admission is not None and ctx.admission.input_pico == int(price * 1_000_000)
    stray = _ctx(EASY, who)
    stray.group = None
    assert stray.request is not None
    stray.request.model = "no-such-model"
    with pytest.raises(GatewayError) as info:
        await admission.on_request(stray)
    assert info.value.status == 404


async def test_decisions_are_counted_with_bounded_labels() -> None:
    config = _config()
    registry = CollectorRegistry()
    ctx = _ctx(CODE)
    metrics = await _decide(config, ctx)
    catalog = ModelCatalog.from_config(config, {})
    watch = DriftWatch("flagship", lambda event: None, lambda: 0.0)
    hard = _ctx(HARD)
    await Decide(catalog).on_request(hard)
    await AutoRoute(catalog, HeuristicClassifier(), AutoMetrics(), None, watch).on_request(hard)
    assert watch.current.tiers == {"flagship": 1}  # the drift watch hears every decision
    registry.register(metrics)
    text = generate_latest(registry).decode()
    labels = f'by="heuristic",group="{ctx.model}",task="code",tier="{ctx.route_tier}"'
    assert f"sluicegate_auto_decisions_total{{{labels}}} 1.0" in text
    assert 'sluicegate_classify_seconds_count{classifier="heuristic"} 1.0' in text
