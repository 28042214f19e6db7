"""Breaker state shared across gateway instances through Redis.

When a breaker opens or closes on one instance, it writes the state (a key that expires with the open
time) and publishes it, in one round trip; every other instance adopts it from the channel, and an
instance that starts later reads the keys. Publishing happens off the request path, from a bounded queue:
a slow or absent Redis never delays a request (each instance then simply judges on its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets

import orjson
import redis.asyncio as aioredis

from sluicegate.config.schema import GatewayConfig
from sluicegate.events import BreakerTransition
from sluicegate.routing.breaker import BreakerState
from sluicegate.routing.router import Router
from sluicegate.state.connect import connect, parse_redis_url

log = logging.getLogger("sluicegate.routing")

_QUEUE_LIMIT = 1024


class SharedBreakers:
    def __init__(
        self, client: aioredis.Redis, listener: aioredis.Redis, router: Router, *, prefix: str = "sg:breaker:"
    ) -> None:
        self._redis = client  # commands, with short timeouts
        self._listener = listener  # the subscription: an idle channel is not a timeout
        self._router = router
        self._prefix = prefix
        self._channel = f"{prefix}events"
        self._origin = secrets.token_hex(8)
        self._queue: asyncio.Queue[tuple[str, BreakerState, float, str]] = asyncio.Queue(_QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._unsubscribe = router.events.subscribe(BreakerTransition, self._announce)

    def _announce(self, event: BreakerTransition) -> None:
        """A listener of this instance's breaker transitions (the router publishes them)."""
        state = BreakerState(event.state)
        if state is BreakerState.HALF_OPEN:
            return  # each instance probes on its own; only the verdicts are shared
        try:
            self._queue.put_nowait((event.deployment, state, event.open_for, event.reason))
        except asyncio.QueueFull:
            log.warning("shared breaker queue full; %s not announced", event.deployment)

    async def start(self) -> None:
        await self._load()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._publish()), loop.create_task(self._listen())]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2.0)

    async def stop(self) -> None:
        self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for client in (self._redis, self._listener):
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _load(self) -> None:
        """Adopts every breaker another instance holds open right now."""
        names = list(self._router.health)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.get(self._prefix + name)
                    pipe.pttl(self._prefix + name)
                replies = await pipe.execute()
        except Exception as exc:  # Redis away at start: begin with local judgement only
            log.warning("shared breakers: cannot read state from Redis (%s)", type(exc).__name__)
            return
        for i, name in enumerate(names):
            raw, ttl_ms = replies[2 * i], replies[2 * i + 1]
            if raw and ttl_ms and ttl_ms > 0:
                reason = orjson.loads(raw).get("reason", "")
                self._router.health[name].breaker.adopt(BreakerState.OPEN, ttl_ms / 1000, f"shared: {reason}")

    async def _publish(self) -> None:
        while True:
            name, state, open_for, reason = await self._queue.get()
            event = {"origin": self._origin, "deployment": name, "state": str(state), "open_for": open_for}
            event["reason"] = reason
            payload = orjson.dumps(event)
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    if state is BreakerState.OPEN and open_for > 0:
                        pipe.set(self._prefix + name, payload, px=max(1, round(open_for * 1000)))
                    else:
                        pipe.delete(self._prefix + name)
                    pipe.publish(self._channel, payload)
                    await pipe.execute()
            except Exception as exc:
                log.warning("shared breakers: cannot publish %s (%s)", name, type(exc).__name__)

    async def _listen(self) -> None:
        while True:
            pubsub = self._listener.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._adopt(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("shared breakers: subscription lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _adopt(self, data: bytes) -> None:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if event.get("origin") == self._origin:
            return
        health = self._router.health.get(str(event.get("deployment")))
        if health is None:
            return
        state = BreakerState(event.get("state", "closed"))
        health.breaker.adopt(state, float(event.get("open_for", 0.0)), f"shared: {event.get('reason', '')}")


def shared_breakers(config: GatewayConfig, router: Router) -> SharedBreakers | None:
    """The shared layer when Redis is configured and sharing is on; None keeps breakers in-process.

    Keys start with `limits.key_prefix`, so several gateways can share one Redis without sharing breakers.
    """
    url = config.redis.url
    if not url or not config.routing.share_breakers:
        return None
    if parse_redis_url(url).kind == "cluster":
        # Its keys are not hash-tagged for one slot and its pipelines span keys: kept per instance for now.
        log.warning("routing: breaker verdicts are not shared through a Redis Cluster URL; kept per instance")
        return None
    client = connect(url, timeout=1.0, connect_timeout=1.0)
    listener = connect(url, connect_timeout=1.0, health_check_interval=30)
    return SharedBreakers(client, listener, router, prefix=f"{config.limits.key_prefix}:breaker:")
