"""Where answers are kept: in this process (bounded by memory, least recently used out first) or in Redis
(shared by every instance, each entry with Redis's own expiry). Both fail open: a store that cannot answer
in time is a miss, never an error for the client."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from sluicegate.cache.key import pattern

log = logging.getLogger("sluicegate.response_cache")


class AnswerStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, data: bytes, ttl: int) -> None: ...

    async def invalidate(self, namespace: str | None, group: str | None, digest: str | None) -> int:
        """Drops the entries matching every part given; returns how many."""

    async def close(self) -> None: ...


def _matches(key: str, parts: tuple[str, str, str, str]) -> bool:
    return all(want == "*" or want == have for want, have in zip(parts, key.split(":", 3), strict=True))


class MemoryStore:
    """This instance's answers, at most `max_bytes` of them (key and value sizes plus a fixed overhead)."""

    OVERHEAD = 120  # bytes per entry beyond its key and value: the dict slot, the tuple, the float

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found[1]

    async def put(self, key: str, data: bytes, ttl: int) -> None:
        size = len(key) + len(data) + self.OVERHEAD
        if size > self.max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + ttl, data)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, data = self._entries.pop(key)
        self.bytes -= len(key) + len(data) + self.OVERHEAD

    async def invalidate(self, namespace: str | None, group: str | None, digest: str | None) -> int:
        parts = pattern(namespace, group, digest)
        doomed = [key for key in self._entries if _matches(key, parts)]
        for key in doomed:
            self._drop(key)
        return len(doomed)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisStore:
    """Answers shared by every instance, under `prefix`. A call slower than `timeout` seconds, or a Redis
    that is away, is a miss (and a put not made), logged at most once a minute."""

    def __init__(
        self, client: Any, prefix: str = "sluicegate:rc", timeout: float = 0.05, max_questions: int = 100_000
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.max_questions = max_questions
        self._warned = 0.0
        self._follower: asyncio.Task[None] | None = None

    def _warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._warned > 60:
            self._warned = now
            log.warning("response cache: Redis %s failed (%s): answering without the cache", what, type(exc).__name__)

    async def get(self, key: str) -> bytes | None:
        try:
            data: bytes | None = await asyncio.wait_for(self.client.get(f"{self.prefix}:{key}"), self.timeout)
        except (TimeoutError, OSError, Exception) as exc:  # redis-py raises its own ConnectionError too
            self._warn("read", exc)
            return None
        return data

    async def put(self, key: str, data: bytes, ttl: int) -> None:
        try:
            await asyncio.wait_for(self.client.set(f"{self.prefix}:{key}", data, ex=ttl), self.timeout)
        except Exception as exc:
            self._warn("write", exc)

    async def invalidate(self, namespace: str | None, group: str | None, digest: str | None) -> int:
        match = f"{self.prefix}:{':'.join(pattern(namespace, group, digest))}"
        dropped = 0
        batch: list[Any] = []
        async for key in self.client.scan_iter(match=match, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                dropped += await self.client.delete(*batch)
                batch = []
        if batch:
            dropped += await self.client.delete(*batch)
        return dropped

    # -- the semantic layer's questions, shared: a stream every instance follows -------------------------

    async def share_question(self, bucket: str, key: str, vector: bytes, text: str) -> None:
        """Announces a kept question (its answer is under `key`) to every instance's index."""
        fields = {"b": bucket, "k": key, "v": vector, "q": text}
        try:
            await asyncio.wait_for(
                self.client.xadd(f"{self.prefix}:questions", fields, maxlen=self.max_questions, approximate=True),
                self.timeout,
            )
        except Exception as exc:
            self._warn("write", exc)

    def follow_questions(self, keep: Callable[[str, str, bytes, str], None]) -> None:
        """Feeds `keep` every question the instances have shared (those still in the stream first), until
        `close`."""
        if self._follower is None:
            self._follower = asyncio.get_running_loop().create_task(self._follow(keep))

    async def _follow(self, keep: Callable[[str, str, bytes, str], None]) -> None:
        stream = f"{self.prefix}:questions"
        last = "0"
        while True:
            try:
                found = await self.client.xread({stream: last}, count=1000, block=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn("read of shared questions", exc)
                await asyncio.sleep(1.0)
                continue
            for _, entries in found or ():
                for n, (entry_id, fields) in enumerate(entries, 1):
                    last = entry_id
                    if n % 100 == 0:
                        await asyncio.sleep(0)  # reading a long stream (at start) leaves requests their turn
                    try:
                        keep(fields[b"b"].decode(), fields[b"k"].decode(), fields[b"v"], fields[b"q"].decode())
                    except (KeyError, UnicodeDecodeError, ValueError):
                        continue  # not one of ours

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            try:
                await self._follower
            except asyncio.CancelledError:
                pass
            self._follower = None
        await self.client.aclose()
