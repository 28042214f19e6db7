"""HTTP/2 to a provider over TLS (ALPN), against hypercorn serving h2: multiplexing, flow control in both
directions, cancelled streams, and the fall back to HTTP/1.1 when the server does not select h2."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config

from sluicegate.providers.http2 import Http2Pool

TIMEOUTS = {"connect": 5.0, "first_byte": 5.0, "idle": 5.0, "total": 10.0}


class Recorder:
    """A small ASGI provider stand-in that notes what it saw."""

    def __init__(self) -> None:
        self.versions: list[str] = []
        self.disconnected = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.versions.append(scope["http_version"])
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/echo":
            await asyncio.sleep(0.05)  # long enough for concurrent calls to overlap
            reply = orjson.dumps({"bytes": len(body), "version": scope["http_version"]})
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/json")]})
            await send({"type": "http.response.body", "body": reply})
        elif path == "/big":  # more than the stream's receive window
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * (3 << 20)})
        elif path == "/huge":  # a large embeddings answer: several times every window
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"z" * (6 << 20)})
        elif path == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(3):
                await send({"type": "http.response.body", "body": b"data: %d\n\n" % i, "more_body": True})
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b""})
        elif path == "/endless":  # streams until the client goes away
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
            if (await receive())["type"] == "http.disconnect":
                self.disconnected.set()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _serve(app: Recorder, tmp: Path, alpn: list[str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp / "ca.pem"))  # what the client trusts
    config = Config()
    port = free_port()
    config.bind = [f"127.0.0.1:{port}"]
    config.certfile = config.keyfile = str(tmp / "server.pem")
    config.alpn_protocols = alpn
    config.loglevel = "WARNING"
    stop = asyncio.Event()
    server = asyncio.get_running_loop().create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    yield f"https://127.0.0.1:{port}"
    stop.set()
    await asyncio.wait_for(server, 10)


@pytest.fixture
async def h2_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, Recorder]]:
    app = Recorder()
    async for url in _serve(app, tmp_path, ["h2", "http/1.1"], monkeypatch):
        yield url, app


async def test_concurrent_calls_share_one_connection(h2_server: tuple[str, Recorder]) -> None:
    url, app = h2_server
    pool = Http2Pool(url, limit=8)

    async def call() -> dict[str, Any]:
        exchange = await pool.open("POST", "/echo", {"content-type": "application/json"}, b"{}", **TIMEOUTS)
        assert exchange.status == 200 and exchange.headers["content-type"] == "text/json"
        return dict(orjson.loads(await exchange.read_body()))

    replies = await asyncio.gather(*(call() for _ in range(20)))
    assert all(reply["version"] == "2" for reply in replies) and app.versions == ["2"] * 20
    assert len(pool.connections) == 1  # twenty calls in flight at once, one socket
    pool.close()


async def test_bodies_larger_than_the_flow_control_windows_arrive_whole(h2_server: tuple[str, Recorder]) -> None:
    url, _ = h2_server
    pool = Http2Pool(url, limit=2)
    big = b"y" * 300_000  # the server's initial window is 64 KiB: the upload waits for it to open
    exchange = await pool.open("POST", "/echo", {}, big, **TIMEOUTS)
    assert orjson.loads(await exchange.read_body())["bytes"] == len(big)
    exchange = await pool.open("POST", "/big", {}, b"", **TIMEOUTS)  # 3 MiB down through a 1 MiB window
    assert len(await exchange.read_body()) == 3 << 20
    pool.close()


async def test_bodies_of_several_megabytes_arrive_whole_and_streamed_when_read_late(
    h2_server: tuple[str, Recorder],
) -> None:
    url, _ = h2_server
    pool = Http2Pool(url, limit=2)
    exchange = await pool.open("POST", "/huge", {}, b"", **TIMEOUTS)
    await asyncio.sleep(0.2)  # the first window's worth arrives before anyone reads
    assert len(await exchange.read_body()) == 6 << 20
    exchange = await pool.open("POST", "/huge", {}, b"", **TIMEOUTS)
    await asyncio.sleep(0.2)
    received = 0
    while (part := await exchange.read_chunk()) is not None:
        received += len(part)
    assert received == 6 << 20
    pool.close()


async def test_a_stream_arrives_chunk_by_chunk(h2_server: tuple[str, Recorder]) -> None:
    url, _ = h2_server
    pool = Http2Pool(url, limit=2)
    exchange = await pool.open("POST", "/stream", {}, b"{}", **TIMEOUTS)
    parts = []
    while (part := await exchange.read_chunk(5.0)) is not None:
        parts.append(part)
    assert b"".join(parts) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n" and len(parts) >= 2
    pool.close()


async def test_a_stream_given_up_is_cancelled_at_the_server(h2_server: tuple[str, Recorder]) -> None:
    url, app = h2_server
    pool = Http2Pool(url, limit=2)
    exchange = await pool.open("POST", "/endless", {}, b"{}", **TIMEOUTS)
    assert await exchange.read_chunk(5.0) == b"data: first\n\n"
    exchange.release()  # the client left: the provider must stop generating (and billing)
    await asyncio.wait_for(app.disconnected.wait(), 5)
    exchange = await pool.open("POST", "/echo", {}, b"{}", **TIMEOUTS)  # the connection carries on
    assert orjson.loads(await exchange.read_body())["version"] == "2"
    assert len(pool.connections) == 1
    pool.close()


async def test_a_server_that_does_not_select_h2_is_served_over_http_1_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Recorder()
    async for url in _serve(app, tmp_path, ["http/1.1"], monkeypatch):
        pool = Http2Pool(url, limit=2)
        for _ in range(2):
            exchange = await pool.open("POST", "/echo", {}, b"{}", **TIMEOUTS)
            assert orjson.loads(await exchange.read_body())["version"] == "1.1"
        assert pool.http1 is not None and not pool.connections
        pool.close()
