"""HTTP/2 to providers that offer it: many calls at once over one TLS connection, framed by h2.

A gateway streaming from one provider holds one HTTP/1.1 connection (and TLS session) per call in flight:
hundreds of sockets to the same host under load, each with its own handshake when the pool grows. With
`http2: true` on a provider, its https origin is offered h2 by ALPN; when the server selects it, calls
share a connection, up to the server's stream limit per connection and `max_connections` connections.
When the server selects HTTP/1.1, the origin is served by the ordinary keep-alive pool from then on.

h2 (the python-hyper state machine) does all framing, HPACK and flow-control bookkeeping; written here
is only what binds it to asyncio: one protocol object per connection, streams as waitable objects with the
deadlines of `transport.py`, and the pool. Each stream's receive window is handed back to the server as
its consumer reads, so a slow client slows its own stream, not the connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from sluicegate.providers.egress import Egress
from sluicegate.providers.transport import (
    ConnectionPool,
    Exchange,
    TransportError,
    TransportTimeout,
    Waiting,
    first_read_deadline,
)

_STREAM_WINDOW = 1 << 20  # what one stream may have buffered and unread (as the HTTP/1.1 path pauses at 1 MiB)
_CONNECTION_WINDOW = 16 << 20
_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


def _expire_sender(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TransportTimeout("timed out sending to the provider", received=False))


class _Stream(Waiting):
    """One request's response as it arrives."""

    __slots__ = ("body", "complete", "headers", "id", "status")

    def __init__(self, stream_id: int) -> None:
        super().__init__()
        self.id = stream_id
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body: deque[tuple[bytes, int]] = deque()  # (data, its flow-controlled length)
        self.complete = False

    def fail(self, error: TransportError) -> None:
        if not self.complete:  # a whole response stays readable whatever happens to the connection after
            super().fail(error)


class H2Connection(asyncio.Protocol):
    """One TLS connection that selected h2, carrying up to the server's limit of streams at once."""

    def __init__(self, loop: asyncio.AbstractEventLoop, authority: str, on_free: Callable[[], None]) -> None:
        self._loop = loop
        self._authority = authority.encode("latin-1")
        self._on_free = on_free  # a stream slot came free
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config=config)
        self._transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self._senders: list[asyncio.Future[None]] = []  # bodies waiting for the server to open its window
        self.negotiated = False
        self.closed = False  # no new streams (GOAWAY, a protocol error, or the socket is gone)
        self.used = False  # has carried a stream: a failure before any response byte may be a stale connection
        self.idle_since = loop.time()

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
            self.closed = True  # the pool sees `negotiated` False and falls back to HTTP/1.1
            return
        self.negotiated = True
        self._h2.initiate_connection()
        self._h2.update_settings(
            {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: _STREAM_WINDOW, h2.settings.SettingCodes.ENABLE_PUSH: 0}
        )
        self._h2.increment_flow_control_window(_CONNECTION_WINDOW - self._h2.inbound_flow_control_window)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError:
            self._lose(TransportError("the provider broke the HTTP/2 protocol", received=True))
            return
        for event in events:
            self._on_event(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            stream.fail(TransportError("the provider closed the connection", received=stream.received))
        self._wake_senders(TransportError("the provider closed the connection", received=False))

    # -- h2 events ---------------------------------------------------------------------------------

    def _on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is None:  # a stream we gave up on: hand its window straight back
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                return
            stream.body.append((event.data, event.flow_controlled_length))
            stream.received = True
            stream.wake()
        elif isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers:
                    key, text = name.decode("latin-1"), value.decode("latin-1")
                    if key == ":status":
                        stream.status = int(text)
                    elif not key.startswith(":"):
                        stream.headers[key] = f"{stream.headers[key]}, {text}" if key in stream.headers else text
                stream.received = True
                stream.wake()
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.complete = True
                stream.wake()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                # REFUSED_STREAM: the server did not process it, so it may be sent again.
                refused = event.error_code == ErrorCodes.REFUSED_STREAM
                stream.fail(TransportError("the provider reset the stream", received=stream.received and not refused))
        elif isinstance(event, h2.events.ConnectionTerminated):  # GOAWAY
            self.closed = True
            last = event.last_stream_id if event.last_stream_id is not None else 0
            for stream in list(self.streams.values()):
                if stream.id > last:  # never processed: safe to send again elsewhere
                    stream.fail(TransportError("the provider is closing the connection", received=False))
        elif isinstance(event, h2.events.WindowUpdated):
            self._wake_senders(None)

    def _wake_senders(self, error: TransportError | None) -> None:
        senders, self._senders = self._senders, []
        for waiter in senders:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _flush(self) -> None:
        data = self._h2.data_to_send()
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _lose(self, error: TransportError) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            stream.fail(error)
        self._wake_senders(error)
        if self._transport is not None:
            self._transport.close()

    # -- used by the pool and the exchange ---------------------------------------------------------

    @property
    def available(self) -> bool:
        return not self.closed and len(self.streams) < self._h2.remote_settings.max_concurrent_streams

    async def send_request(self, target: str, headers: dict[str, str], body: bytes, deadline: float) -> _Stream:
        """Opens a stream and sends a POST on it, body included (as fast as the server's window allows)."""
        if self.closed:
            raise TransportError("the provider is closing the connection", received=False)
        self.used = True
        stream_id = self._h2.get_next_available_stream_id()
        stream = self.streams[stream_id] = _Stream(stream_id)
        fields = [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", self._authority),
            (b":path", target.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or lowered == "content-length":
                continue
            if "\r" in value or "\n" in value:
                raise ValueError(f"invalid header {name!r}")
            fields.append((lowered.encode("latin-1"), value.encode("latin-1")))
        try:
            self._h2.send_headers(stream_id, fields, end_stream=not body)
            self._flush()
            sent, size = 0, len(body)
            while sent < size:
                if stream.error is not None:
                    raise stream.error
                window = min(self._h2.local_flow_control_window(stream_id), self._h2.max_outbound_frame_size)
                if window <= 0:
                    await self._wait_window(deadline)
                    continue
                piece = body[sent : sent + window]
                sent += len(piece)
                self._h2.send_data(stream_id, piece, end_stream=sent >= size)
                self._flush()
        except h2.exceptions.StreamClosedError:
            self.forget(stream)
            raise stream.error or TransportError("the provider closed the stream", received=stream.received) from None
        except h2.exceptions.H2Error:  # e.g. the server lowered its stream limit, or stream ids ran out
            self.closed = True
            self.forget(stream)
            raise TransportError("the provider's connection cannot take another stream", received=False) from None
        except BaseException:
            self.forget(stream)
            raise
        return stream

    async def _wait_window(self, deadline: float) -> None:
        waiter = self._loop.create_future()
        self._senders.append(waiter)
        timer = self._loop.call_at(deadline, _expire_sender, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    def acknowledge(self, stream: _Stream, size: int) -> None:
        """Hands `size` bytes of window back to the server once the consumer has taken them."""
        if size and stream.id in self.streams and not self.closed:
            try:
                self._h2.acknowledge_received_data(size, stream.id)
            except h2.exceptions.StreamClosedError:
                return
            self._flush()

    def forget(self, stream: _Stream) -> None:
        """The caller is done with the stream; one not read to its end is cancelled at the server."""
        if self.streams.pop(stream.id, None) is None:
            return
        if not stream.complete and not self.closed:
            try:
                self._h2.reset_stream(stream.id, ErrorCodes.CANCEL)
            except h2.exceptions.StreamClosedError:
                pass
            self._flush()
        if not self.streams:
            self.idle_since = self._loop.time()
        self._on_free()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None and not self._transport.is_closing():
            if self.negotiated:
                try:
                    self._h2.close_connection()
                    self._flush()
                except h2.exceptions.ProtocolError:
                    pass
            self._transport.close()


class H2Exchange:
    """One request on an HTTP/2 stream, read like `transport.Exchange`."""

    __slots__ = ("_connection", "_deadline", "_idle", "_loop", "_next_deadline", "_released", "_stream")

    def __init__(self, connection: H2Connection, stream: _Stream, deadline: float, idle: float) -> None:
        self._connection = connection
        self._stream = stream
        self._deadline = deadline
        self._idle = idle
        self._loop = connection._loop
        self._next_deadline: float | None = None
        self._released = False

    @property
    def status(self) -> int:
        return self._stream.status

    @property
    def headers(self) -> dict[str, str]:
        return self._stream.headers

    async def read_body(self) -> bytes:
        stream, connection = self._stream, self._connection
        taken = 0  # pieces whose window was handed back (the whole body is kept in memory anyway)
        try:
            while True:
                while taken < len(stream.body):
                    connection.acknowledge(stream, stream.body[taken][1])
                    taken += 1
                if stream.complete:
                    return b"".join(data for data, _ in stream.body)
                await stream.wait(self._loop, self._deadline)
        finally:
            self.release()

    async def read_chunk(self, first_timeout: float | None = None) -> bytes | None:
        """As `transport.Exchange.read_chunk`: the next body bytes, or None at the end."""
        stream, connection = self._stream, self._connection
        deadline = self._next_deadline
        if deadline is None:
            deadline = first_read_deadline(self._loop, self._deadline, first_timeout)
        try:
            while not stream.body:
                if stream.complete:
                    self.release()
                    return None
                await stream.wait(self._loop, deadline)
        except BaseException:
            self.release()
            raise
        data, length = stream.body.popleft()
        connection.acknowledge(stream, length)
        self._next_deadline = min(self._loop.time() + self._idle, self._deadline)
        return data

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._connection.forget(self._stream)


class Http2Pool:
    """Calls to one https origin over HTTP/2 when it selects h2 by ALPN, else over `ConnectionPool`."""

    def __init__(
        self,
        origin: str,
        limit: int,
        keepalive_seconds: float = 30.0,
        egress: Egress | None = None,
        http1_egress: Egress | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        parts = urlsplit(origin)
        if parts.scheme != "https":
            raise ValueError("HTTP/2 is offered over https only (negotiated by ALPN)")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 443
        self.authority = self.host if self.port == 443 else f"{self.host}:{self.port}"
        if egress is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["h2", "http/1.1"])
            egress = Egress(context)
        self._egress = egress  # its TLS context offers h2 by ALPN
        self._http1_egress = http1_egress
        self._limit = limit
        self._keepalive = keepalive_seconds
        self.connections: list[H2Connection] = []
        self._connecting: asyncio.Future[H2Connection | None] | None = None
        self._freed: asyncio.Event = asyncio.Event()
        self.http1: ConnectionPool | None = None  # set once the origin has answered with HTTP/1.1

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
    ) -> Exchange | H2Exchange:
        if self.http1 is not None:
            return await self.http1.open(
                method, target, headers, body, connect=connect, first_byte=first_byte, idle=idle, total=total
            )
        deadline = self.loop.time() + total
        for attempt in range(2):
            connection = await self._acquire(connect, deadline)
            if connection is None:  # the origin chose HTTP/1.1
                return await self.open(
                    method, target, headers, body, connect=connect, first_byte=first_byte, idle=idle, total=total
                )
            reused = connection.used
            stream: _Stream | None = None
            try:
                stream = await connection.send_request(target, headers, body, deadline)
                head_by = min(self.loop.time() + first_byte, deadline)
                while not stream.status:
                    await stream.wait(self.loop, head_by)
            except TransportError as exc:
                if stream is not None:
                    connection.forget(stream)
                if attempt == 0 and not exc.received and not isinstance(exc, TransportTimeout) and reused:
                    continue  # a connection the server had already given up on: once more on another
                raise
            except BaseException:
                if stream is not None:
                    connection.forget(stream)
                raise
            return H2Exchange(connection, stream, deadline, idle)
        raise AssertionError("unreachable")

    async def _acquire(self, connect_timeout: float, deadline: float) -> H2Connection | None:
        """A connection with room for one more stream; None when the origin does not speak h2."""
        while True:
            now = self.loop.time()
            kept = []
            for connection in self.connections:
                if connection.closed and not connection.streams:
                    continue  # done with
                if not connection.streams and now - connection.idle_since > self._keepalive:
                    connection.close()
                    continue
                kept.append(connection)
            self.connections = kept
            for connection in kept:
                if connection.available:
                    return connection
            if self._connecting is not None:  # one connection attempt at a time: the others wait for it
                await asyncio.shield(self._connecting)
                continue
            if len(kept) >= self._limit:
                self._freed.clear()
                try:
                    async with asyncio.timeout_at(deadline):
                        await self._freed.wait()
                except TimeoutError:
                    raise TransportTimeout(
                        "timed out waiting for a connection to the provider", received=False
                    ) from None
                continue
            self._connecting = self.loop.create_future()
            try:
                connection = await self._connect(connect_timeout)
            except BaseException:
                self._connecting.set_result(None)
                self._connecting = None
                raise
            self._connecting.set_result(connection)
            self._connecting = None
            if not connection.negotiated:
                connection.close()
                self.http1 = ConnectionPool(
                    f"https://{self.authority}", self._limit, self._keepalive, self._http1_egress
                )
                return None
            self.connections.append(connection)

    async def _connect(self, timeout: float) -> H2Connection:
        try:
            async with asyncio.timeout(timeout):
                protocol = await self._egress.connect(
                    self.loop, lambda: H2Connection(self.loop, self.authority, self._freed.set), self.host, self.port
                )
        except TimeoutError:
            raise TransportTimeout("timed out connecting to the provider", received=False) from None
        except OSError as exc:
            raise TransportError(f"could not connect to the provider ({exc.strerror or exc})", received=False) from None
        return protocol  # type: ignore[return-value]

    def close(self) -> None:
        for connection in self.connections:
            connection.close()
        self.connections.clear()
        if self.http1 is not None:
            self.http1.close()
