"""A Redis restarted under a running gateway: pooled connections broken by the restart are retried once
on a fresh connection, so no request fails because of them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from sluicegate.state.model import AdmissionPlan, RateScope
from sluicegate.state.redis import RedisState
from tests.state.own_redis import OwnRedis


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path).start()
    yield server
    server.kill()


def _plan(n: int) -> AdmissionPlan:
    return AdmissionPlan(request_id=f"r{n}", tenant="t", rates=(RateScope("key:a", rpm=1_000_000),))


async def test_every_pooled_connection_broken_by_a_restart_is_retried_on_a_fresh_one(own_redis: OwnRedis) -> None:
    state = RedisState.from_url(own_redis.url, timeout=2.0)
    try:
        await asyncio.gather(*(state.admit(_plan(n)) for n in range(40)))  # 40 pooled connections
        own_redis.restart()
        results = await asyncio.gather(*(state.admit(_plan(100 + n)) for n in range(40)), return_exceptions=True)
        failures = [type(r).__name__ for r in results if isinstance(r, BaseException)]
        assert failures == [], f"{len(failures)} requests failed on stale connections: {failures[:3]}"
        own_redis.kill()
        with pytest.raises(RedisConnectionError):  # a Redis that is really away is still reported at once
            await state.admit(_plan(1000))
    finally:
        await state.close()
