"""The hot-state backends under test: the same cases run against memory and a real Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from sluicegate.state.clock import ManualClock
from sluicegate.state.memory import MemoryState
from sluicegate.state.model import HotState
from sluicegate.state.redis import RedisState
from tests.state.own_redis import OwnCluster

REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW = 60.0


async def redis_client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(REDIS_URL, socket_timeout=5, max_connections=32, timeout=10)
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.ping()
    except Exception as exc:  # pragma: no cover - only when the service is truly away
        pytest.skip(f"REDIS UNREACHABLE at {REDIS_URL}: {exc} (run .ci/run to start it)")
    return client


async def drop_prefix(client: aioredis.Redis, prefix: str) -> None:
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_767_225_600.0)  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnCluster]:
    """A real 3-master Redis Cluster on loopback ports, for this test session only."""
    cluster = OwnCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(params=["memory", "redis", "cluster"])
async def state(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[HotState]:
    if request.param == "memory":
        yield MemoryState(clock, window_seconds=WINDOW)
        return
    if request.param == "cluster":
        cluster: OwnCluster = request.getfixturevalue("redis_cluster")
        prefix = "sgtest-" + secrets.token_hex(6)
        backend = RedisState.from_url(cluster.url, timeout=5.0, prefix=prefix, window_seconds=WINDOW, clock=clock)
        yield backend
        await backend.close()
        return
    client = await redis_client()
    prefix = "sgtest-" + secrets.token_hex(6)
    backend = RedisState(client, prefix=prefix, window_seconds=WINDOW, clock=clock)
    yield backend
    await drop_prefix(client, prefix)
    await client.aclose()
