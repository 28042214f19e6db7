"""The one place provider HTTP calls happen: pooled keep-alive sessions, timeouts, transport errors.

aiohttp is the client because it measured fastest here for many small proxied calls (see
docs/performance.md); it speaks HTTP/1.1 only, which with keep-alive pooling is what the hot path wants.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

from sluicegate.config.schema import Timeouts
from sluicegate.errors import ErrorClass, UpstreamError
from sluicegate.providers.base import Endpoint, UpstreamRequest

_USER_AGENT = "sluicegate/0.1"


@dataclass(slots=True)
class UpstreamReply:
    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream:
    """An open streaming response. Iterate it for raw body bytes as they arrive."""

    __slots__ = ("_response", "_timeouts", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, timeouts: Timeouts) -> None:
        self._response = response
        self._timeouts = timeouts
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read_body(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; the first within `first_byte`, later ones within `idle` each."""
        iterator = self._response.content.iter_any().__aiter__()
        try:
            async with asyncio.timeout(self._timeouts.first_byte):
                first = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc) from None
        yield first
        try:
            async for data in iterator:
                yield data
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc) from None


def _transport_error(exc: BaseException) -> UpstreamError:
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError(ErrorClass.TIMEOUT, "timed out waiting for the provider")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return UpstreamError(ErrorClass.CONNECTION, "the provider closed the connection mid-response")
    return UpstreamError(ErrorClass.CONNECTION, f"could not reach the provider ({type(exc).__name__})")


class UpstreamClient:
    """Owns one connection pool per provider endpoint, created lazily inside the running loop."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._timeouts: dict[str, aiohttp.ClientTimeout] = {}

    def _session(self, endpoint: Endpoint) -> aiohttp.ClientSession:
        session = self._sessions.get(endpoint.name)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=endpoint.config.max_connections, keepalive_timeout=30, ttl_dns_cache=300
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers={"user-agent": _USER_AGENT},
                auto_decompress=True,
                skip_auto_headers=("content-type",),
            )
            self._sessions[endpoint.name] = session
            t = endpoint.config.timeouts
            self._timeouts[endpoint.name] = aiohttp.ClientTimeout(
                total=t.total, sock_connect=t.connect, sock_read=t.idle
            )
        return session

    async def call(self, endpoint: Endpoint, request: UpstreamRequest) -> UpstreamReply:
        """A whole request and response; raises `UpstreamError` for transport failures only."""
        session = self._session(endpoint)
        try:
            async with asyncio.timeout(endpoint.config.timeouts.first_byte):
                response = await session.post(
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    timeout=self._timeouts[endpoint.name],
                )
            async with response:
                body = await response.read()
                return UpstreamReply(response.status, response.headers, body)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc) from None

    @asynccontextmanager
    async def stream(self, endpoint: Endpoint, request: UpstreamRequest) -> AsyncIterator[UpstreamStream]:
        """Opens a streaming call; leaving the block releases (or, if unfinished, closes) the connection."""
        session = self._session(endpoint)
        try:
            async with asyncio.timeout(endpoint.config.timeouts.first_byte):
                response = await session.post(
                    request.url,
                    data=request.body,
                    headers=request.headers,
                    timeout=self._timeouts[endpoint.name],
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _transport_error(exc) from None
        try:
            yield UpstreamStream(response, endpoint.config.timeouts)
        finally:
            if response.content.at_eof():
                response.release()
            else:
                response.close()  # an abandoned stream must not go back to the pool half-read

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()
