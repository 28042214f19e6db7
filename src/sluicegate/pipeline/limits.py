"""Budgets and rate limits as one component: the hot state chosen by configuration, and the admission,
meter and settle stages that share it. `Gateway` owns one and wires its stages."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sluicegate.catalog import ModelCatalog
from sluicegate.config.schema import GatewayConfig
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.meter import StreamMeter
from sluicegate.pipeline.settle import SettleStage
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import Headroom, HotState
from sluicegate.state.redis import RedisState
from sluicegate.state.resilient import ResilientState
from sluicegate.telemetry.alerts import BudgetAlerts
from sluicegate.tokens import TokenCounter


class MissingRedis(Exception):
    pass


def build_state(config: GatewayConfig, metrics: LimitMetrics) -> HotState:
    limits = config.limits
    url = config.redis.url
    if limits.backend == "memory" or (limits.backend == "auto" and not url):
        return MemoryState(window_seconds=limits.window_seconds)
    if not url:
        raise MissingRedis("limits.backend is 'redis' but redis.url is not set")
    shared = RedisState.from_url(
        url, timeout=limits.outage.timeout_seconds, prefix=limits.key_prefix, window_seconds=limits.window_seconds
    )
    local = MemoryState(window_seconds=limits.window_seconds)
    return ResilientState(shared, local, limits.outage, on_switch=metrics.switched)


class BudgetsAndLimits:
    def __init__(self, config: GatewayConfig, catalog: ModelCatalog, registry: CollectorRegistry) -> None:
        self.metrics = LimitMetrics(registry)
        self.state = build_state(config, self.metrics)
        counter = TokenCounter(config.budgets.estimate_margin)
        self.alerts = BudgetAlerts(
            list(config.budgets.webhooks), on_result=lambda outcome: self.metrics.alerts.labels(outcome).inc()
        )
        self.admission = AdmissionStage(self.state, catalog, config.budgets, config.limits, self.metrics, counter)
        self.meter = StreamMeter(counter, self.metrics)
        self.settle = SettleStage(self.state, self.admission, self.metrics, self.alerts, tuple(config.budgets.alerts))

    async def deployment_headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> Headroom:
        """What is left under a deployment's upstream RPM/TPM in the current window (for routing)."""
        return await self.state.deployment_headroom(deployment, rpm, tpm)

    async def stop(self) -> None:
        await self.alerts.close()
        await self.state.close()
