"""Tells every gateway instance to drop cached keys at once, over Redis pub/sub.

Messages carry key hashes, never keys. On Redis Cluster every node carries every channel; with Sentinel the
channel is on the primary. If the subscription drops, the instance clears its whole cache on
reconnecting (it may have missed messages); while it is down, the cache TTL still bounds staleness.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable

import orjson

from sluicegate.state.connect import pubsub_client

log = logging.getLogger("sluicegate.keys")

CHANNEL = "sluicegate:keys:invalidate"


class RevocationBus:
    def __init__(
        self,
        redis_url: str | None,
        on_evict: Callable[[list[str]], None],
        on_reset: Callable[[], None],
        channel: str = CHANNEL,
    ) -> None:
        self._url = redis_url
        self._on_evict = on_evict
        self._on_reset = on_reset
        self._channel = channel
        self._task: asyncio.Task[None] | None = None
        self._client: object | None = None
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        if self._url is None:
            return
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def publish(self, digests: Iterable[str]) -> None:
        """Evicts locally, then tells the other instances; a Redis failure is logged, never raised."""
        hashes = list(digests)
        self._on_evict(hashes)
        if self._url is None or not hashes:
            return
        await publish(self._url, hashes, self._channel)

    async def _listen(self) -> None:
        assert self._url is not None
        delay = 0.2
        first = True
        while True:
            client = pubsub_client(self._url, timeout=None, connect_timeout=2)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._channel)
                if not first:
                    self._on_reset()  # messages may have been missed while disconnected
                first = False
                delay = 0.2
                self.subscribed.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._on_evict([str(h) for h in orjson.loads(message["data"])])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("revocation channel lost (%s); retrying in %.1fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()


async def publish(redis_url: str, digests: list[str], channel: str = CHANNEL) -> None:
    client = pubsub_client(redis_url, timeout=2, connect_timeout=2)
    try:
        await client.publish(channel, orjson.dumps(digests))
    except Exception as exc:
        log.warning(
            "could not publish a key invalidation (%s); other instances rely on the cache TTL", type(exc).__name__
        )
    finally:
        await client.aclose()
