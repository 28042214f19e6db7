"""The model catalog: logical model names, the deployments behind them and how to reach each."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from sluicegate.classify.tiers import Capability, capability
from sluicegate.config.schema import DeploymentConfig, GatewayConfig, ModelGroupConfig
from sluicegate.pricing import Price, PriceTable
from sluicegate.providers.base import Endpoint, ProviderAdapter
from sluicegate.providers.registry import adapter_for
from sluicegate.routing.config import GroupRoutingConfig


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    name: str
    model: str  # the provider's own model name
    endpoint: Endpoint
    adapter: ProviderAdapter
    weight: float = 1.0
    region: str | None = None
    price: Price | None = None  # None: unknown, and then the cost of a call is unknown too
    capabilities: frozenset[str] = frozenset()
    context_window: int | None = None
    max_output_tokens: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    latency_target_ms: float | None = None

    @property
    def family(self) -> str:
        return self.adapter.family


@dataclass(frozen=True, slots=True, eq=False)
class ModelGroup:
    name: str
    kind: str  # "chat" | "embedding"
    deployments: tuple[Deployment, ...]
    routing: GroupRoutingConfig = field(default_factory=GroupRoutingConfig)
    capability: Capability | None = None  # its tier and what it serves well (None: no tier known)
    pool: tuple[str, ...] = ()  # strategy auto: the groups it chooses among (and no deployments of its own)


class ModelCatalog:
    def __init__(self, groups: Mapping[str, ModelGroup]) -> None:
        self._groups = dict(groups)

    @classmethod
    def from_config(
        cls, config: GatewayConfig, environ: Mapping[str, str] = os.environ, prices: PriceTable | None = None
    ) -> ModelCatalog:
        prices = prices or PriceTable.default()
        endpoints = {
            name: Endpoint(name, provider, environ.get(provider.api_key_env) if provider.api_key_env else None)
            for name, provider in config.providers.items()
        }
        adapters = {name: adapter_for(provider.kind) for name, provider in config.providers.items()}
        groups = {
            group.name: ModelGroup(
                group.name,
                group.kind,
                tuple(
                    Deployment(
                        name=d.name,
                        model=d.model,
                        endpoint=_endpoint(endpoints[d.provider], d),
                        adapter=adapters[d.provider],
                        weight=d.weight,
                        region=d.region,
                        price=_price(d, prices),
                        capabilities=frozenset(d.capabilities),
                        context_window=d.context_window,
                        max_output_tokens=d.max_output_tokens,
                        rpm=d.rpm,
                        tpm=d.tpm,
                        latency_target_ms=d.latency_target_ms,
                    )
                    for d in group.deployments
                ),
                group.routing,
                _capability(group, config.classify.tiers),
                tuple(group.pool),
            )
            for group in config.models
        }
        return cls(groups)

    def get(self, name: str) -> ModelGroup | None:
        return self._groups.get(name)

    def __iter__(self) -> Iterator[ModelGroup]:
        return iter(self._groups.values())

    def __contains__(self, name: object) -> bool:
        return name in self._groups


def _capability(group: ModelGroupConfig, tiers: list[str]) -> Capability | None:
    serves = group.serves
    return capability(
        group.tier,
        serves.tasks if serves is not None else None,
        serves.complexity if serves is not None else None,
        [d.model for d in group.deployments],
        tiers,
    )


def _endpoint(provider: Endpoint, deployment: DeploymentConfig) -> Endpoint:
    """The provider's endpoint, or a copy with this deployment's own timeouts or parameter policy (and pool)."""
    overrides: dict[str, object] = {}
    if deployment.timeouts is not None:
        overrides["timeouts"] = deployment.timeouts
    if deployment.unsupported_params is not None:
        overrides["unsupported_params"] = deployment.unsupported_params
    if not overrides:
        return provider
    config = provider.config.model_copy(update=overrides)
    return Endpoint(f"{provider.name}#{deployment.name}", config, provider.api_key)


def _price(deployment: DeploymentConfig, prices: PriceTable) -> Price | None:
    if deployment.price is not None:
        p = deployment.price
        return Price(input=p.input, output=p.output, cached_input=p.cached_input, cache_write=p.cache_write)
    return prices.lookup(deployment.model)
