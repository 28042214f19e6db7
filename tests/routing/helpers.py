"""Builds a catalog and a router from a YAML snippet, on a fake clock and a seeded random generator."""

from __future__ import annotations

import random
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from sluicegate.canonical import ChatRequest
from sluicegate.catalog import ModelCatalog
from sluicegate.config.loader import parse_config
from sluicegate.routing.needs import RequestNeeds, count_prompt, needs_of
from sluicegate.routing.router import Router


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


PROVIDERS = """
providers:
  sim:
    kind: openai
    base_url: http://127.0.0.1:9/v1
"""


def make_router(models_yaml: str, routing_yaml: str = "", seed: int = 1) -> tuple[Router, ModelCatalog, FakeClock]:
    config = parse_config(PROVIDERS + "models:\n" + models_yaml + routing_yaml)
    catalog = ModelCatalog.from_config(config, environ={})
    clock = FakeClock()
    return Router(catalog, config.routing, clock=clock, rng=random.Random(seed)), catalog, clock


def chat(content: str = "hello", **params: object) -> ChatRequest:
    max_tokens = params.pop("max_tokens", None)
    return ChatRequest(
        model="m",
        messages=[{"role": "user", "content": content}],  # type: ignore[list-item]
        max_tokens=max_tokens,  # type: ignore[arg-type]
        params=dict(params),
    )


def needs(
    router: Router,
    group: str,
    request: ChatRequest | None = None,
    headers: dict[str, str] | None = None,
    regions: frozenset[str] | None = None,
) -> RequestNeeds:
    request = request or chat()
    n = needs_of(request, headers or {}, regions)
    catalog_group = router.catalog.get(group)
    assert catalog_group is not None
    if router.needs_counting(catalog_group, n):
        count_prompt(n, request)
    return n


REDIS_URL = "redis://127.0.0.1:6379/0"


async def redis_prefix(name: str) -> AsyncIterator[str]:
    """A key prefix of its own on the real Redis for one test, whose keys are deleted afterwards."""
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - .ci/run starts Redis
        pytest.skip(f"REDIS IS NOT REACHABLE at {REDIS_URL}: {exc}")
    prefix = f"test:{secrets.token_hex(6)}:{name}:"
    yield prefix
    keys = [k async for k in client.scan_iter(f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
