"""A lean HTTP/1.1 client for provider calls: keep-alive connection pools over asyncio, parsed by httptools.

Why not aiohttp: the provider call is the gateway's hot path, and measured here aiohttp's client spent
~145 us of CPU per proxied request where this one, with httptools (the parser uvicorn uses) doing all
HTTP parsing, spends ~40 us (docs/performance.md). What is written here is only connection pooling,
request framing and timeouts; chunked decoding and response parsing are httptools'.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from urllib.parse import urlsplit

import httptools

from sluicegate.providers.egress import Egress

_MAX_BUFFER = 1 << 20  # pause reading a stream the consumer is not keeping up with (never a whole-body read)


class TransportError(Exception):
    """The connection failed. `received` says whether any response byte had arrived."""

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        self.received = received


class TransportTimeout(TransportError):
    pass


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TransportTimeout("timed out", received=False))


def first_read_deadline(loop: asyncio.AbstractEventLoop, total_deadline: float, first_timeout: float | None) -> float:
    """When the first read of a body must have happened: `first_timeout` from now, within the total."""
    if first_timeout is None:
        return total_deadline
    return min(loop.time() + first_timeout, total_deadline)


class Waiting:
    """What a response's reader waits on: bytes arriving, the end, a failure, or the deadline."""

    __slots__ = ("error", "received", "waiter")

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.error: TransportError | None = None
        self.received = False  # whether any byte of the response has arrived

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self, error: TransportError) -> None:
        self.error = error
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self.error is not None:
            raise self.error
        waiter = self.waiter = loop.create_future()
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        except TransportTimeout:
            raise TransportTimeout("timed out waiting for the provider", received=self.received) from None
        finally:
            timer.cancel()
            self.waiter = None


class Connection(asyncio.Protocol, Waiting):
    """One HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        Waiting.__init__(self)
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self._headers_done = False
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._whole = False  # the reader wants the whole body: buffering it is the point, never pause
        self.received = False

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self.fail(TransportError("the provider sent a malformed HTTP response", received=True))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if (
            self._headers_done
            and not self._complete
            and self._parser.get_status_code()
            and not (self._parser.should_keep_alive())
        ):
            # A response delimited by the connection closing (no length, not chunked) ends here.
            self._complete = True
            self.wake()
            return
        if not self._complete:
            self.fail(TransportError("the provider closed the connection", received=self.received))

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._headers_done = True
        self.wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _MAX_BUFFER and not self._paused and not self._whole and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self.wake()

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()  # the parser forgets it once this returns
        self._complete = True
        self.wake()

    # -- used by the pool and the client -----------------------------------------------------------

    def send(self, data: bytes) -> None:
        self._reset()
        assert self._transport is not None
        self._transport.write(data)

    async def read_head(self, deadline: float) -> None:
        while not self._headers_done:
            await self.wait(self._loop, deadline)

    async def read_chunk(self, deadline: float) -> bytes | None:
        """The next body bytes, or None at the end of the response."""
        while not self._body:
            if self._complete:
                return None
            await self.wait(self._loop, deadline)
        data = self._body.popleft()
        self._buffered -= len(data)
        if self._buffered < _MAX_BUFFER // 2:
            self._resume()
        return data

    def _resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    async def read_body(self, deadline: float) -> bytes:
        self._whole = True
        self._resume()  # what arrived before this call may have paused the connection
        while not self._complete:
            await self.wait(self._loop, deadline)
        data = b"".join(self._body)
        self._body.clear()
        return data

    @property
    def reusable(self) -> bool:
        return self._complete and self._keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class ConnectionPool:
    """Keep-alive connections to one origin, at most `limit` at once; idle ones are reused newest first.
    Made inside the running loop, which it keeps: `asyncio.get_running_loop()` costs a getpid() system
    call each time, and the request path would otherwise ask four times."""

    def __init__(self, origin: str, limit: int, keepalive_seconds: float = 30.0, egress: Egress | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        parts = urlsplit(origin)
        self.host = parts.hostname or "127.0.0.1"
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        # direct, with the system's trust store, unless the provider says otherwise (providers/egress.py)
        self._egress = egress or Egress(ssl.create_default_context() if self.tls else None)
        self._idle: list[tuple[Connection, float]] = []
        self._slots = asyncio.Semaphore(limit)
        self._keepalive = keepalive_seconds

    async def acquire(self, connect_timeout: float) -> tuple[Connection, bool]:
        """A connection, and whether it was reused from the idle list."""
        await self._slots.acquire()
        loop = self.loop
        now = loop.time()
        while self._idle:
            connection, idle_since = self._idle.pop()
            if not connection.closed and now - idle_since < self._keepalive:
                return connection, True
            connection.close()
        try:
            async with asyncio.timeout(connect_timeout):
                protocol = await self._egress.connect(loop, lambda: Connection(loop), self.host, self.port)
        except TimeoutError:
            self._slots.release()
            raise TransportTimeout("timed out connecting to the provider", received=False) from None
        except OSError as exc:
            self._slots.release()
            raise TransportError(f"could not connect to the provider ({exc.strerror or exc})", received=False) from None
        except BaseException:
            self._slots.release()
            raise
        return protocol, False  # type: ignore[return-value]

    async def open(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        connect: float,
        first_byte: float,
        idle: float,
        total: float,
    ) -> Exchange:
        """Sends a request and waits for the response head. A reused connection that the provider had
        already closed (no byte of the response received) is replaced once by a fresh one."""
        loop = self.loop
        deadline = loop.time() + total
        data = request_head(method, target, self.host_header, headers, len(body)) + body
        for attempt in range(2):
            connection, reused = await self.acquire(connect)
            try:
                connection.send(data)
                await connection.read_head(min(loop.time() + first_byte, deadline))
            except TransportError as exc:
                self.release(connection)
                if reused and not exc.received and not isinstance(exc, TransportTimeout) and attempt == 0:
                    continue
                raise
            except BaseException:
                connection.close()
                self.release(connection)
                raise
            return Exchange(self, connection, deadline, idle)
        raise AssertionError("unreachable")

    def release(self, connection: Connection) -> None:
        if connection.reusable:
            self._idle.append((connection, self.loop.time()))
        else:
            connection.close()
        self._slots.release()

    def close(self) -> None:
        for connection, _ in self._idle:
            connection.close()
        self._idle.clear()


def _check_header(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
        raise ValueError(f"invalid header {name!r}")


def request_head(
    method: str, target: str, host: str, headers: dict[str, str] | list[tuple[str, str]], length: int
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}", f"content-length: {length}"]
    items = headers.items() if isinstance(headers, dict) else headers
    for name, value in items:
        lowered = name.lower()
        if lowered in ("host", "content-length", "transfer-encoding", "connection"):
            continue
        _check_header(name, value)
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class Exchange:
    """One request on one pooled connection: read its head, then its body whole or in chunks."""

    __slots__ = ("_connection", "_deadline", "_idle", "_loop", "_next_deadline", "_pool", "_released")

    def __init__(self, pool: ConnectionPool, connection: Connection, deadline: float, idle: float) -> None:
        self._pool = pool
        self._connection = connection
        self._deadline = deadline
        self._idle = idle
        self._loop = pool.loop
        self._next_deadline: float | None = None  # of the next body read; None before the first
        self._released = False

    @property
    def status(self) -> int:
        return self._connection.status

    @property
    def headers(self) -> dict[str, str]:
        return self._connection.headers

    async def read_body(self) -> bytes:
        try:
            return await self._connection.read_body(self._deadline)
        finally:
            self.release()

    async def read_chunk(self, first_timeout: float | None = None) -> bytes | None:
        """The next body bytes as they arrive, or None at the end of the body. The first read waits at most
        `first_timeout` seconds, each later one `idle` seconds (never past the total deadline). At the end,
        or on an error, the connection goes back to the pool (or is closed)."""
        deadline = self._next_deadline
        if deadline is None:
            deadline = first_read_deadline(self._loop, self._deadline, first_timeout)
        try:
            data = await self._connection.read_chunk(deadline)
        except BaseException:
            self.release()
            raise
        if data is None:
            self.release()
            return None
        self._next_deadline = min(self._loop.time() + self._idle, self._deadline)
        return data

    def release(self) -> None:
        """Back to the pool if the response was read to its end, else the connection is closed."""
        if not self._released:
            self._released = True
            self._pool.release(self._connection)
