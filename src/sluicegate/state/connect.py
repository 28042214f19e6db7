"""Clients for `redis.url`: a single Redis (`redis://`, `rediss://`, `unix://`), a Redis Cluster
(`redis+cluster://[user:password@]host:port[,host:port...]`) or the primary a set of Sentinels names
(`redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`, redis-py's Sentinel client)."""

from __future__ import annotations

import asyncio
import bisect
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.crc import key_slot
from redis.exceptions import ClusterDownError, MovedError, NoScriptError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError

Kind = Literal["single", "cluster", "sentinel"]
_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}


class RedisUrlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RedisTarget:
    kind: Kind
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def parse_redis_url(url: str) -> RedisTarget:
    scheme = url.partition("://")[0].lower()
    if scheme not in _SCHEMES:
        return RedisTarget("single", url)
    kind, tls = _SCHEMES[scheme]
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":") if credentials else ("", "", "")
    nodes = []
    for host in hosts.split(","):
        name, _, port = host.strip().rpartition(":")
        if not name or not port.isdigit():
            raise RedisUrlError(f"{scheme}:// URLs list host:port pairs separated by commas; got {host!r}")
        nodes.append((name.strip("[]"), int(port)))
    path = [p for p in parts.path.split("/") if p]
    service = None
    db = 0
    if kind == "sentinel":
        if not path:
            raise RedisUrlError("a redis+sentinel:// URL names the service after the hosts: .../mymaster[/db]")
        service = unquote(path[0])
        db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
    elif path and path != ["0"]:
        raise RedisUrlError("Redis Cluster has only database 0")
    return RedisTarget(
        kind,
        url,
        tuple(nodes),
        service,
        db,
        unquote(username) or None,
        unquote(password) or None,
        tls,
    )


def connect(
    url: str,
    *,
    timeout: float | None = None,
    connect_timeout: float | None = None,
    max_connections: int | None = None,
    retry: Retry | None = None,
    health_check_interval: float = 0,
) -> Any:
    """A redis-py asyncio client for `url` (`Redis`, or `RedisCluster` for a cluster URL)."""
    target = parse_redis_url(url)
    connect_timeout = connect_timeout if connect_timeout is not None else timeout
    if target.kind == "single":
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": connect_timeout,
            "health_check_interval": health_check_interval,
        }
        if max_connections is not None:
            options["max_connections"] = max_connections
        if retry is not None:
            options["retry"] = retry
        return aioredis.from_url(url, **options)
    if target.kind == "cluster":
        return ClusterClient(target, timeout=timeout, max_connections=max_connections or 128, retry=retry)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes),
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": connect_timeout},
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        username=target.username,
        password=target.password,
        ssl=target.tls,
    )
    assert target.service is not None
    options = {"db": target.db, "health_check_interval": health_check_interval}
    if retry is not None:
        options["retry"] = retry
    if max_connections is not None:
        options["max_connections"] = max_connections
    return sentinel.master_for(target.service, **options)


def is_cluster(client: Any) -> bool:
    return isinstance(client, ClusterClient)


def pubsub_url(url: str) -> str | None:
    """A plain URL for publishing and subscribing: on Redis Cluster any node carries every channel; a
    Sentinel URL has no plain form (None: use `connect`)."""
    target = parse_redis_url(url)
    if target.kind == "single":
        return url
    if target.kind == "sentinel":
        return None
    host, port = target.nodes[0]
    auth = ""
    if target.password:
        auth = f"{quote(target.username or '')}:{quote(target.password)}@"
    return f"{'rediss' if target.tls else 'redis'}://{auth}{host}:{port}/0"


def pubsub_client(url: str, *, timeout: float | None = None, connect_timeout: float | None = None) -> Any:
    """A client for PUBLISH and SUBSCRIBE (and plain commands on a single Redis or a Sentinel primary)."""
    plain = pubsub_url(url)
    if plain is None:
        return connect(url, timeout=timeout, connect_timeout=connect_timeout)
    return aioredis.from_url(plain, socket_timeout=timeout, socket_connect_timeout=connect_timeout)


_Call = Callable[..., Awaitable[Any]]


class ClusterClient:
    """The hot state's client for Redis Cluster: every call goes, as one command, to the master that owns
    its keys' slot (the caller keeps each call's keys in one slot with hash tags), over a plain pooled
    client per master. Slots are learnt with CLUSTER SLOTS and learnt again after a MOVED reply or a
    failed connection (a failover), and the call is tried once more.

    Hand-written on purpose: redis-py's asyncio `RedisCluster` (7.4 to 8.1) fails here under concurrent
    use (a connection is disconnected by one task while another is connecting it; reproduced with 30
    concurrent scripts on a 3-master cluster), while its plain asyncio client does not."""

    def __init__(
        self, target: RedisTarget, *, timeout: float | None, max_connections: int, retry: Retry | None
    ) -> None:
        self._target = target
        self._timeout = timeout
        self._max_connections = max_connections
        self._retry = retry
        self._nodes: dict[tuple[str, int], aioredis.Redis] = {}
        self._slots: list[tuple[int, int, tuple[str, int]]] = []  # (first, last, master), sorted
        self._learning: asyncio.Task[None] | None = None

    def _node(self, address: tuple[str, int]) -> aioredis.Redis:
        client = self._nodes.get(address)
        if client is None:
            target = self._target
            pool = aioredis.BlockingConnectionPool(
                host=address[0],
                port=address[1],
                username=target.username,
                password=target.password,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                max_connections=self._max_connections,
                timeout=5.0,
                retry=self._retry,
                connection_class=SSLConnection if target.tls else Connection,
            )
            client = self._nodes[address] = aioredis.Redis(connection_pool=pool)
        return client

    async def _learn_slots(self) -> None:
        """Reads the slot map from the first node that answers (one reading however many calls wait)."""
        if self._learning is None or self._learning.done():
            self._learning = asyncio.get_running_loop().create_task(self._read_slots())
        await asyncio.shield(self._learning)

    async def _read_slots(self) -> None:
        known = [address for _, _, address in self._slots]
        error: Exception | None = None
        for address in dict.fromkeys([*known, *self._target.nodes]):
            try:
                reply = await self._node(address).execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            except Exception as exc:
                error = exc
                continue
            slots = []
            if isinstance(reply, dict):  # redis-py's parsed form: {(first, last): {"primary": (host, port)}}
                for (first, last), info in reply.items():
                    host, port = info["primary"][:2]
                    slots.append((int(first), int(last), (_text(host) or address[0], int(port))))
            else:
                for entry in reply:
                    host, port = entry[2][0], entry[2][1]
                    slots.append((int(entry[0]), int(entry[1]), (_text(host) or address[0], int(port))))
            self._slots = sorted(slots)
            return
        raise RedisConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS ({type(error).__name__})")

    async def _owner(self, key: str) -> aioredis.Redis:
        if not self._slots:
            await self._learn_slots()
        slot = key_slot(key.encode())
        index = bisect.bisect_right(self._slots, (slot, 1 << 30)) - 1
        if index < 0 or not self._slots[index][0] <= slot <= self._slots[index][1]:
            raise ClusterDownError(f"slot {slot} is not served by any master")
        return self._node(self._slots[index][2])

    async def _call(self, key: str, command: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
        for attempt in (1, 2):
            client = await self._owner(key)
            try:
                return await command(client)
            except (MovedError, RedisConnectionError, TryAgainError, ClusterDownError):
                if attempt == 2:
                    raise
                self._slots = []  # a resharding or a failover: learn the map again, then one more try
        raise AssertionError("unreachable")

    def register_script(self, source: str) -> _Call:
        sha = hashlib.sha1(source.encode()).hexdigest()

        async def run(client: aioredis.Redis, keys: list[str], args: list[Any]) -> Any:
            try:
                return await client.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:  # a master that has not seen it (new, or restarted): send it whole once
                return await client.eval(source, len(keys), *keys, *args)

        async def call(keys: list[str], args: list[Any]) -> Any:
            return await self._call(keys[0], lambda client: run(client, keys, args))

        return call

    async def hset(self, key: str, field: str, value: str) -> Any:
        return await self._call(key, lambda client: client.hset(key, field, value))

    async def hdel(self, key: str, field: str) -> Any:
        return await self._call(key, lambda client: client.hdel(key, field))

    async def hgetall(self, key: str) -> Any:
        return await self._call(key, lambda client: client.hgetall(key))

    async def aclose(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
