"""The one place provider HTTP calls happen: pooled keep-alive connections, timeouts, transport errors.

The connections come from `providers.transport` (httptools over asyncio), chosen by measurement over
aiohttp for the hot path (docs/performance.md): HTTP/1.1 with keep-alive pooling, TLS for https; and, for
a provider configured with `http2: true`, from `providers.http2` when its https origin selects h2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import ErrorClass, UpstreamError
from sluicegate.providers.base import Endpoint, UpstreamRequest
from sluicegate.providers.egress import Egress, proxy_for, tls_context
from sluicegate.providers.http2 import H2Exchange, Http2Pool
from sluicegate.providers.transport import ConnectionPool, Exchange, TransportError, TransportTimeout

AnyExchange = Exchange | H2Exchange

_USER_AGENT = "sluicegate/0.1"


@dataclass(slots=True)
class UpstreamReply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class UpstreamStream:
    """An open streaming response: `read()` its body bytes as they arrive, then `close()` it. The connection
    goes back to the pool if the body was read to its end, and is closed otherwise (an abandoned stream
    must not be reused half-read)."""

    __slots__ = ("_exchange", "_first_byte", "headers", "status")

    def __init__(self, exchange: AnyExchange, first_byte: float) -> None:
        self._exchange = exchange
        self._first_byte = first_byte
        self.status = exchange.status
        self.headers: Mapping[str, str] = exchange.headers

    async def read_body(self) -> bytes:
        try:
            return await self._exchange.read_body()
        except TransportError as exc:
            raise _transport_error(exc) from None

    async def read(self) -> bytes | None:
        """The next body bytes, or None at the end: the first within `first_byte`, later ones within `idle`
        each."""
        try:
            return await self._exchange.read_chunk(self._first_byte)
        except TransportError as exc:
            raise _transport_error(exc) from None

    def close(self) -> None:
        self._exchange.release()


def _transport_error(exc: TransportError) -> UpstreamError:
    if isinstance(exc, TransportTimeout):
        return UpstreamError(ErrorClass.TIMEOUT, "timed out waiting for the provider")
    if exc.received:
        return UpstreamError(ErrorClass.CONNECTION, "the provider closed the connection mid-response")
    return UpstreamError(ErrorClass.CONNECTION, str(exc))


def _split(url: str) -> tuple[str, str]:
    """(origin, request target) of an absolute URL."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}", target


class UpstreamClient:
    """Owns one connection pool per provider endpoint and origin, created lazily inside the running loop."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._pools: dict[tuple[str, str], ConnectionPool | Http2Pool] = {}
        self._targets: dict[str, tuple[str, str]] = {}
        self._environ = os.environ if environ is None else environ  # HTTPS_PROXY, HTTP_PROXY, NO_PROXY

    def _pool(self, endpoint: Endpoint, url: str) -> tuple[ConnectionPool | Http2Pool, str]:
        split = self._targets.get(url)
        if split is None:
            split = self._targets[url] = _split(url)
        origin, target = split
        key = (endpoint.name, origin)
        pool = self._pools.get(key)
        if pool is None:
            config = endpoint.config
            if config.http2 and origin.startswith("https://"):
                h2 = self._egress(config, origin, ["h2", "http/1.1"])
                pool = self._pools[key] = Http2Pool(
                    origin, config.max_connections, egress=h2, http1_egress=self._egress(config, origin)
                )
            else:
                pool = self._pools[key] = ConnectionPool(
                    origin, config.max_connections, egress=self._egress(config, origin)
                )
        return pool, target

    def _egress(self, config: ProviderConfig, origin: str, alpn: list[str] | None = None) -> Egress:
        """The provider's way out to `origin`: its proxy (or the environment's) and its TLS trust and identity."""
        parts = urlsplit(origin)
        tls = parts.scheme == "https"
        context = tls_context(config.ca_file, config.client_cert, config.client_key, alpn) if tls else None
        return Egress(context, proxy_for(parts.hostname or "", tls, config.proxy, self._environ))

    async def _open(self, endpoint: Endpoint, request: UpstreamRequest, stream: bool) -> AnyExchange:
        pool, target = self._pool(endpoint, request.url)
        headers = {"user-agent": _USER_AGENT, **request.headers}
        t = endpoint.config.timeouts
        try:
            return await pool.open(
                "POST",
                target,
                headers,
                request.body,
                connect=t.connect,
                first_byte=t.head(stream),
                idle=t.idle,
                total=t.total,
            )
        except TransportError as exc:
            raise _transport_error(exc) from None
        except ValueError as exc:  # a header value that would break the request framing
            raise UpstreamError(ErrorClass.BAD_REQUEST, str(exc)) from None

    async def call(self, endpoint: Endpoint, request: UpstreamRequest) -> UpstreamReply:
        """A whole request and response; raises `UpstreamError` for transport failures only."""
        exchange = await self._open(endpoint, request, stream=False)
        try:
            body = await exchange.read_body()
        except TransportError as exc:
            raise _transport_error(exc) from None
        return UpstreamReply(exchange.status, exchange.headers, body)

    async def open_stream(self, endpoint: Endpoint, request: UpstreamRequest) -> UpstreamStream:
        """Sends a streaming call and waits for the response head; the caller closes the stream."""
        exchange = await self._open(endpoint, request, stream=True)
        return UpstreamStream(exchange, endpoint.config.timeouts.head(stream=True))

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
