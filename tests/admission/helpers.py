"""Building blocks for admission tests: a catalog from config, principals with scopes, contexts."""

from __future__ import annotations

import itertools
from typing import Any

from prometheus_client import CollectorRegistry

from sluicegate.canonical import ChatRequest
from sluicegate.catalog import ModelCatalog
from sluicegate.config.schema import GatewayConfig
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import Budget, Limits, Principal, Scope
from sluicegate.state.clock import ManualClock
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics

_ids = itertools.count()

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say something about rivers."}]


def config(**sections: Any) -> GatewayConfig:
    base: dict[str, Any] = {
        "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": [
            {
                "name": "gpt-4",  # $30 / $60 per million: 30 and 60 micro-dollars per token
                "deployments": [
                    {
                        "provider": "sim",
                        "model": "gpt-4",
                        "max_output_tokens": 1000,
                        "price": {"input": 30, "output": 60},
                    }
                ],
            },
            {
                "name": "cheap",
                "deployments": [
                    {
                        "provider": "sim",
                        "model": "gpt-3.5-turbo",
                        "max_output_tokens": 1000,
                        "price": {"input": 1, "output": 2},
                    }
                ],
            },
            {"name": "mystery", "deployments": [{"provider": "sim", "model": "mystery-model-x"}]},
        ],
    }
    base.update(sections)
    return GatewayConfig.model_validate(base)


def principal(
    *,
    rpm: int | None = None,
    tpm: int | None = None,
    budget_micros: int | None = None,
    concurrency: int | None = None,
    team_budget: int | None = None,
) -> Principal:
    key_limits = Limits(
        rpm=rpm,
        tpm=tpm,
        max_concurrency=concurrency,
        budget=Budget(budget_micros, "monthly") if budget_micros else None,
    )
    scopes = [Scope("key", "k1", key_limits)]
    if team_budget is not None:
        scopes.append(Scope("team", "t1", Limits(budget=Budget(team_budget, "monthly"))))
    return Principal(key_id="k1", tenant_id="acme", team_id="t1", scopes=tuple(scopes))


def context(
    model: str = "gpt-4",
    *,
    who: Principal | None = None,
    max_tokens: int | None = None,
    headers: dict[str, str] | None = None,
    stream: bool = False,
) -> RequestContext:
    request = ChatRequest(model=model, messages=list(MESSAGES), max_tokens=max_tokens, stream=stream)  # type: ignore[arg-type]
    ctx = RequestContext(f"req-{next(_ids)}", "chat", "openai", headers or {}, request)
    ctx.principal = who
    return ctx


def stage(cfg: GatewayConfig | None = None, clock: ManualClock | None = None) -> AdmissionStage:
    cfg = cfg or config()
    clock = clock or ManualClock(1_767_225_600.0)
    catalog = ModelCatalog.from_config(cfg, {})
    state = MemoryState(clock, window_seconds=cfg.limits.window_seconds)
    return AdmissionStage(state, catalog, cfg.budgets, cfg.limits, LimitMetrics(CollectorRegistry()), clock=clock.now)
