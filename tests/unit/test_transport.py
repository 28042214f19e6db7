"""The upstream transport against small real servers: pooling, framing, timeouts, dropped connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sluicegate.providers.transport import ConnectionPool, TransportError, TransportTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


async def _open(pool: ConnectionPool, **timeouts: float):  # type: ignore[no-untyped-def]
    limits = {"connect": 2.0, "first_byte": 2.0, "idle": 2.0, "total": 5.0, **timeouts}
    return await pool.open("POST", "/v1/x", {"content-type": "application/json"}, b'{"a":1}', **limits)


@pytest.fixture
async def keepalive_server() -> AsyncIterator[tuple[str, list[int]]]:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                request = await _read_request(reader)
                assert request.startswith(b"POST /v1/x HTTP/1.1\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nX-Thing: a\r\n\r\nhello")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server, url = await _serve(handler)
    yield url, connections
    server.close()


async def test_connections_are_kept_alive_and_reused(keepalive_server: tuple[str, list[int]]) -> None:
    url, connections = keepalive_server
    pool = ConnectionPool(url, limit=4)
    for _ in range(5):
        exchange = await _open(pool)
        assert exchange.status == 200
        assert exchange.headers["x-thing"] == "a"
        assert await exchange.read_body() == b"hello"
    assert len(connections) == 1
    pool.close()


async def test_chunked_stream_arrives_piece_by_piece() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        for part in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    server, url = await _serve(handler)
    pool = ConnectionPool(url, limit=1)
    exchange = await _open(pool)
    parts = []
    while (part := await exchange.read_chunk()) is not None:
        parts.append(part)
    assert parts == [b"data: 1\n\n", b"data: 2\n\n"]
    server.close()
    pool.close()


async def test_connection_dropped_mid_body_is_an_error_that_says_bytes_arrived() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    server, url = await _serve(handler)
    pool = ConnectionPool(url, limit=1)
    exchange = await _open(pool)
    with pytest.raises(TransportError) as info:
        await exchange.read_body()
    assert info.value.received
    server.close()


async def test_silent_server_times_out_on_first_byte() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    server, url = await _serve(handler)
    pool = ConnectionPool(url, limit=1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(TransportTimeout):
        await _open(pool, first_byte=0.2)
    assert asyncio.get_running_loop().time() - started < 1.5
    server.close()


async def test_refused_connection_is_an_error_without_bytes() -> None:
    server, url = await _serve(lambda r, w: asyncio.sleep(0))
    server.close()
    await server.wait_closed()
    with pytest.raises(TransportError) as info:
        await _open(ConnectionPool(url, limit=1))
    assert not info.value.received


async def test_idle_connection_closed_by_the_server_is_replaced_transparently() -> None:
    served: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # keep-alive promised by HTTP/1.1, then the server goes away anyway

    server, url = await _serve(handler)
    pool = ConnectionPool(url, limit=2)
    assert await (await _open(pool)).read_body() == b"ok"
    assert await (await _open(pool)).read_body() == b"ok"
    assert len(served) == 2
    server.close()


def test_header_values_cannot_break_the_framing() -> None:
    from sluicegate.providers.transport import request_head

    with pytest.raises(ValueError):
        request_head("POST", "/", "h", {"x-evil": "a\r\nInjected: 1"}, 0)


def _big_body_handler(size: int, *, chunked: bool) -> Handler:
    body = bytes(range(256)) * (size // 256)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        if chunked:
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 64 * 1024):
                part = body[start : start + 64 * 1024]
                writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    return handler


@pytest.mark.parametrize("chunked", [False, True])
async def test_whole_bodies_over_the_stream_buffer_arrive_whole(chunked: bool) -> None:
    """A whole-body read never pauses the connection, however large the body (the provider was paid)."""
    size = 6 * 1024 * 1024
    server, url = await _serve(_big_body_handler(size, chunked=chunked))
    pool = ConnectionPool(url, limit=1)
    exchange = await _open(pool, total=5.0)
    await asyncio.sleep(0.2)  # the body arrives (and used to pause the connection) before anyone reads it
    body = await exchange.read_body()
    assert len(body) == size and body[:256] == bytes(range(256))
    server.close()
    pool.close()


async def test_streamed_bodies_over_the_buffer_arrive_whole_when_read_slowly() -> None:
    size = 6 * 1024 * 1024
    server, url = await _serve(_big_body_handler(size, chunked=True))
    pool = ConnectionPool(url, limit=1)
    exchange = await _open(pool, total=5.0)
    await asyncio.sleep(0.2)  # a slow consumer: reading pauses above the buffer, and resumes as it reads
    received = 0
    while (part := await exchange.read_chunk()) is not None:
        received += len(part)
    assert received == size
    server.close()
    pool.close()
