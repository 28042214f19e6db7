"""The application object: owns every component and wires the pipeline from configuration."""

from __future__ import annotations

import os
from collections.abc import Mapping

from sluicegate.catalog import ModelCatalog
from sluicegate.config.schema import GatewayConfig
from sluicegate.keys.accounts import Accounts
from sluicegate.pipeline import Pipeline
from sluicegate.pipeline.execute import Execute
from sluicegate.pipeline.limits import BudgetsAndLimits
from sluicegate.pipeline.record import Record
from sluicegate.pipeline.route import Route
from sluicegate.providers.http import UpstreamClient
from sluicegate.routing.headroom import HeadroomRefresher
from sluicegate.routing.metrics import RoutingCollector
from sluicegate.routing.router import Router
from sluicegate.routing.shared import shared_breakers
from sluicegate.routing.shared_stats import shared_latency
from sluicegate.telemetry.access_log import AccessLog
from sluicegate.telemetry.metrics import GatewayMetrics


class MissingMasterKey(Exception):
    pass


class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        *,
        master_key: str | None = None,
        environ: Mapping[str, str] = os.environ,
        access_log: AccessLog | None = None,
    ) -> None:
        key = master_key or environ.get(config.server.master_key_env)
        if not key:
            raise MissingMasterKey(f"no master key: set the environment variable {config.server.master_key_env}")
        self.config = config
        self.catalog = ModelCatalog.from_config(config, environ)
        self.upstream = UpstreamClient()
        self.metrics = GatewayMetrics(group.name for group in self.catalog)
        self.router = Router(self.catalog, config.routing)
        self.metrics.registry.register(RoutingCollector(self.router))
        self.shared_breakers = shared_breakers(config, self.router)
        self.shared_latency = shared_latency(config, self.router)
        log_config = config.server.access_log
        self.access_log = access_log or AccessLog.open(log_config.path, log_config.enabled)
        self.accounts = Accounts(config, key, environ)
        self.auth = self.accounts.auth
        self.limits = BudgetsAndLimits(config, self.catalog, self.metrics.registry)
        self.headroom = HeadroomRefresher(self.router, self.limits.deployment_headroom)
        self.pipeline = Pipeline(
            request_stages=[self.auth, self.limits.admission, Route(self.catalog, self.router)],
            execute=Execute(self.upstream, self.router),
            chunk_stages=[self.limits.meter],
            finish_stages=[self.limits.settle, Record(self.metrics, self.access_log), self.accounts.ledger],
        )
        self.ready = False

    async def start(self) -> None:
        self.access_log.start()
        await self.accounts.start()
        await self.limits.start()
        if self.shared_breakers is not None:
            await self.shared_breakers.start()
        await self.headroom.start()
        if self.shared_latency is not None:
            await self.shared_latency.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        await self.upstream.close()
        if self.shared_breakers is not None:
            await self.shared_breakers.stop()
        await self.headroom.stop()
        if self.shared_latency is not None:
            await self.shared_latency.stop()
        await self.accounts.stop()
        await self.limits.stop()
        await self.access_log.stop()

    def models(self) -> list[tuple[str, str]]:
        """(name, owning provider family) of every logical model, for /v1/models."""
        return [(group.name, group.deployments[0].family) for group in self.catalog]
