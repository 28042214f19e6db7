"""The event bus and its publishers: breaker transitions, budget thresholds, admin and operator actions."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from sluicegate.config.schema import GatewayConfig
from sluicegate.events import (
    AdminAction,
    BreakerTransition,
    BudgetThreshold,
    EventBus,
    OperatorAction,
    StageVerdict,
)
from sluicegate.pipeline.settle import SettleStage
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from sluicegate.state.metrics import LimitMetrics
from tests.admission.helpers import config, context, principal, stage
from tests.routing.helpers import make_router


def test_every_listener_of_a_kind_hears_it_and_a_broken_one_silences_nobody() -> None:
    bus = EventBus()
    heard: list[object] = []

    def broken(event: StageVerdict) -> None:
        raise RuntimeError("listener bug")

    bus.subscribe(StageVerdict, broken)
    bus.subscribe(StageVerdict, heard.append)
    leave = bus.subscribe(StageVerdict, lambda e: heard.append(("second", e)))
    bus.subscribe(OperatorAction, lambda e: heard.append(("operator", e)))
    verdict = StageVerdict("req-1", "firewall", "block", "injection")
    bus.publish(verdict)
    assert heard == [verdict, ("second", verdict)]
    leave()
    bus.publish(verdict)
    assert heard == [verdict, ("second", verdict), verdict]
    bus.publish(BreakerTransition("d", "open", "", 1.0))  # nobody listens: nothing happens
    assert bus.listens_to(StageVerdict) and not bus.listens_to(BreakerTransition)


def test_a_breaker_transition_reaches_every_listener_with_its_deployment_and_open_time() -> None:
    router, _, _ = make_router(
        """
  - name: g
    routing: {breaker: {consecutive_failures: 2, min_open_s: 5}}
    deployments: [{provider: sim, model: a}]
"""
    )
    first: list[BreakerTransition] = []
    second: list[BreakerTransition] = []
    router.events.subscribe(BreakerTransition, first.append)
    router.events.subscribe(BreakerTransition, second.append)
    breaker = router.health["sim/a"].breaker
    for _ in range(2):
        assert breaker.acquire()
        breaker.record("failure", 0.1)
    assert first == second
    assert [(e.deployment, e.state) for e in first] == [("sim/a", "open")]
    assert first[0].open_for >= 5 and "consecutive failures" in first[0].reason


async def test_a_budget_threshold_is_published_once_for_every_listener() -> None:
    admission = stage(config())
    events = EventBus()
    heard: list[BudgetThreshold] = []
    events.subscribe(BudgetThreshold, heard.append)
    settle = SettleStage(admission.state, admission, LimitMetrics(CollectorRegistry()), events, (0.5,))
    for _ in range(7):
        ctx = context(who=principal(budget_micros=1_000_000), max_tokens=16)
        await admission.on_request(ctx)
        ctx.attempts = 1
        ctx.cost_micros = 100_000
        await settle.on_finish(ctx)
    assert [(e.scope, e.threshold, e.spent_micros, e.limit_micros) for e in heard] == [
        ("key:k1", 0.5, 500_000, 1_000_000)
    ]


async def test_admin_and_operator_actions_are_announced_with_who_what_and_target(tmp_path: Path) -> None:
    cfg = GatewayConfig.model_validate(
        {
            "store": {"database_url": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", "spool_dir": f"{tmp_path}/spool"},
            "server": {"access_log": {"enabled": False}},
        }
    )
    gateway = Gateway(cfg, master_key="sk-master", environ={})
    heard: list[object] = []
    gateway.events.subscribe(AdminAction, heard.append)
    gateway.events.subscribe(OperatorAction, heard.append)
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=GatewayApp(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            auth = {"authorization": "Bearer sk-master"}
            created = await client.post("/admin/keys", json={"team": "search"}, headers=auth)
            body = {"entity": "team:search", "minutes": 5, "rpm": 10}
            put = await client.put("/admin/limits/overrides", json=body, headers=auth)
            listed = await client.get("/admin/limits/overrides", headers=auth)  # reading changes nothing
            refused = await client.put("/admin/limits/overrides", json=body)  # no key: not an action
    finally:
        await gateway.stop()
    assert created.status_code == 201, created.text
    assert put.status_code == 200 and listed.status_code == 200 and refused.status_code == 401
    assert heard == [
        AdminAction("master", "POST", "/admin/keys", 201),
        OperatorAction("set", "team:search", "emergency rate limit (rpm=10, tpm=None)"),
        AdminAction("master", "PUT", "/admin/limits/overrides", 200),
    ]
