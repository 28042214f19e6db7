"""Routing's background work, started and stopped with the gateway: shared state, headroom, health probes."""

from __future__ import annotations

from sluicegate.config.schema import GatewayConfig
from sluicegate.providers.http import UpstreamClient
from sluicegate.routing.headroom import HeadroomReader, HeadroomRefresher
from sluicegate.routing.probes import health_prober
from sluicegate.routing.router import Router
from sluicegate.routing.shared import shared_breakers
from sluicegate.routing.shared_stats import shared_latency


class RoutingServices:
    def __init__(
        self, config: GatewayConfig, router: Router, upstream: UpstreamClient, headroom: HeadroomReader
    ) -> None:
        self.shared_breakers = shared_breakers(config, router)
        self.shared_latency = shared_latency(config, router)
        self.headroom = HeadroomRefresher(router, headroom)
        self.prober = health_prober(router, upstream)

    async def start(self) -> None:
        if self.shared_breakers is not None:
            await self.shared_breakers.start()
        if self.shared_latency is not None:
            await self.shared_latency.start()
        await self.headroom.start()
        if self.prober is not None:
            await self.prober.start()

    async def stop(self) -> None:
        if self.prober is not None:
            await self.prober.stop()
        await self.headroom.stop()
        if self.shared_latency is not None:
            await self.shared_latency.stop()
        if self.shared_breakers is not None:
            await self.shared_breakers.stop()
