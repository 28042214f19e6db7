"""Latency statistics shared across gateway instances through Redis.

Every `interval_s` each instance writes its recent percentiles per deployment into a hash (one field per
instance, expiring when instances stop) and reads the others', in one pipelined round trip for all
deployments. Routing then blends them with its own, weighted by sample counts. Nothing of this is on the
request path; if Redis is away, each instance predicts from its own samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import orjson
import redis.asyncio as aioredis

from sluicegate.config.schema import GatewayConfig
from sluicegate.routing.router import Router
from sluicegate.routing.stats import RemoteLatency
from sluicegate.state.connect import connect, parse_redis_url

log = logging.getLogger("sluicegate.routing")


class SharedLatency:
    def __init__(
        self, client: aioredis.Redis, router: Router, *, prefix: str = "sg:latency:", interval_s: float = 2.0
    ) -> None:
        self._redis = client
        self._router = router
        self._prefix = prefix
        self._interval = interval_s
        self._ttl_s = max(10, round(interval_s * 10))
        self._origin = secrets.token_hex(8)
        self._task: asyncio.Task[None] | None = None

    async def exchange(self) -> None:
        """Publishes this instance's figures and adopts the others', in one round trip."""
        names = list(self._router.health)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    stats = self._router.health[name].stats
                    key = self._prefix + name
                    if stats.recent:
                        total, ttft = stats.total.summary(), stats.ttft.summary()
                        figures = [stats.recent, total.p95, total.p99, ttft.p95, ttft.p99]
                        pipe.hset(key, self._origin, orjson.dumps(figures))
                        pipe.expire(key, self._ttl_s)
                    pipe.hgetall(key)
                replies = await pipe.execute()
        except Exception as exc:
            log.warning("shared latency: Redis unavailable (%s); using local samples", type(exc).__name__)
            for health in self._router.health.values():
                health.stats.remote = None
            return
        tables = [r for r in replies if isinstance(r, dict)]
        for name, table in zip(names, tables, strict=True):
            self._router.health[name].stats.remote = self._merge(table)

    def _merge(self, table: dict[bytes, bytes]) -> RemoteLatency | None:
        count = 0
        sums = [0.0, 0.0, 0.0, 0.0]
        for origin, raw in table.items():
            if origin.decode() == self._origin:
                continue
            try:
                n, *values = orjson.loads(raw)
            except (orjson.JSONDecodeError, ValueError):
                continue
            if not n or any(v is None for v in values):
                continue
            count += n
            for i, v in enumerate(values):
                sums[i] += n * v
        if count == 0:
            return None
        return RemoteLatency(count, *(s / count for s in sums))

    async def _run(self) -> None:
        while True:
            await self.exchange()
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def shared_latency(config: GatewayConfig, router: Router) -> SharedLatency | None:
    """The exchange when Redis is configured and sharing is on; None keeps statistics per instance."""
    url = config.redis.url
    if not url or not config.routing.share_latency:
        return None
    if parse_redis_url(url).kind == "cluster":
        # Its keys are not hash-tagged for one slot and its pipelines span keys: kept per instance for now.
        log.warning("routing: latency statistics are not shared through a Redis Cluster URL; kept per instance")
        return None
    client = connect(url, timeout=1.0, connect_timeout=1.0)
    return SharedLatency(client, router, prefix=f"{config.limits.key_prefix}:latency:")
