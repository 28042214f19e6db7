"""The model catalog: logical model names, the deployments behind them and how to reach each."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from sluicegate.config.schema import DeploymentConfig, GatewayConfig
from sluicegate.pricing import Price, PriceTable
from sluicegate.providers.base import Endpoint, ProviderAdapter
from sluicegate.providers.registry import adapter_for


@dataclass(frozen=True, slots=True, eq=False)
class Deployment:
    name: str
    model: str  # the provider's own model name
    endpoint: Endpoint
    adapter: ProviderAdapter
    weight: float = 1.0
    region: str | None = None
    price: Price | None = None  # None: unknown, and then the cost of a call is unknown too

    @property
    def family(self) -> str:
        return self.adapter.family


@dataclass(frozen=True, slots=True, eq=False)
class ModelGroup:
    name: str
    kind: str  # "chat" | "embedding"
    deployments: tuple[Deployment, ...]


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
                        endpoint=endpoints[d.provider],
                        adapter=adapters[d.provider],
                        weight=d.weight,
                        region=d.region,
                        price=_price(d, prices),
                    )
                    for d in group.deployments
                ),
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


def _price(deployment: DeploymentConfig, prices: PriceTable) -> Price | None:
    if deployment.price is not None:
        p = deployment.price
        return Price(input=p.input, output=p.output, cached_input=p.cached_input, cache_write=p.cache_write)
    return prices.lookup(deployment.model)
