"""Budgets and rate limits as one component: the hot state chosen by configuration, and the admission,
meter and settle stages that share it. `Gateway` owns one and wires its stages."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry

from sluicegate.catalog import ModelCatalog
from sluicegate.clock import Clock, SystemClock
from sluicegate.config.schema import GatewayConfig
from sluicegate.events import EventBus, OperatorAction
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.meter import StreamMeter
from sluicegate.pipeline.settle import SettleStage
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import Headroom, HotState
from sluicegate.state.overrides import OverrideBook, OverrideError, parse_override
from sluicegate.state.rebuild import BudgetRebuild, SpendSource
from sluicegate.state.redis import RedisState
from sluicegate.state.resilient import ResilientState
from sluicegate.telemetry.alerts import BudgetAlerts
from sluicegate.tokens import TokenCounter


class MissingRedis(Exception):
    pass


def build_state(
    config: GatewayConfig, metrics: LimitMetrics, spend: SpendSource | None = None, clock: Clock | None = None
) -> HotState:
    """The hot state; with `spend` (the ledger), every budget balance it has not seen is rebuilt from it."""
    limits = config.limits
    url = config.redis.url
    rebuild = BudgetRebuild(spend, config.budgets.rebuild_timeout_seconds) if spend is not None else None
    if limits.backend == "memory" or (limits.backend == "auto" and not url):
        return MemoryState(clock, window_seconds=limits.window_seconds, rebuild=rebuild)
    if not url:
        raise MissingRedis("limits.backend is 'redis' but redis.url is not set")
    shared = RedisState.from_url(
        url,
        timeout=limits.outage.timeout_seconds,
        prefix=limits.key_prefix,
        window_seconds=limits.window_seconds,
        rebuild=rebuild,
    )
    local = MemoryState(clock, window_seconds=limits.window_seconds)
    return ResilientState(shared, local, limits.outage, on_switch=metrics.switched)


class BudgetsAndLimits:
    def __init__(
        self,
        config: GatewayConfig,
        catalog: ModelCatalog,
        registry: CollectorRegistry,
        events: EventBus,
        spend: SpendSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.events = events
        self.clock: Clock = clock or SystemClock()
        self.metrics = LimitMetrics(registry)
        self.state = build_state(config, self.metrics, spend, self.clock)
        counter = TokenCounter(config.budgets.estimate_margin)
        self.alerts = BudgetAlerts(
            list(config.budgets.webhooks), on_result=lambda outcome: self.metrics.alerts.labels(outcome).inc()
        )
        self.overrides = OverrideBook(self.state, clock=self.clock.now)
        self.admission = AdmissionStage(
            self.state,
            catalog,
            config.budgets,
            config.limits,
            self.metrics,
            counter,
            clock=self.clock.now,
            overrides=self.overrides,
        )
        self.meter = StreamMeter(counter, self.metrics)
        self.alerts.listen(events)
        self.settle = SettleStage(self.state, self.admission, self.metrics, events, tuple(config.budgets.alerts))

    async def deployment_headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> Headroom:
        """What is left under a deployment's upstream RPM/TPM in the current window (for routing)."""
        return await self.state.deployment_headroom(deployment, rpm, tpm)

    async def operator_action(self, method: str, payload: object) -> tuple[int, dict[str, Any]]:
        """The admin API of operator actions: GET lists them, PUT sets one, DELETE clears one."""
        if method == "PUT":
            try:
                override = parse_override(payload, self.clock.now())
            except OverrideError as exc:
                return 400, {"error": {"message": str(exc), "type": "invalid_request_error", "code": None}}
            await self.overrides.put(override)
            self.events.publish(OperatorAction("set", override.entity, override.describe()))
            return 200, {"override": asdict(override)}
        if method == "DELETE":
            entity = payload.get("entity") if isinstance(payload, dict) else None
            if not isinstance(entity, str):
                return 400, {"error": {"message": "'entity' is required", "type": "invalid_request_error"}}
            cleared = await self.overrides.clear(entity)
            self.events.publish(OperatorAction("clear", entity, ""))
            return 200, {"cleared": cleared}
        await self.overrides.load()
        return 200, {"overrides": [asdict(o) for o in self.overrides.all()]}

    async def start(self) -> None:
        self.overrides.start()

    async def stop(self) -> None:
        await self.overrides.stop()
        await self.alerts.close()
        await self.state.close()
