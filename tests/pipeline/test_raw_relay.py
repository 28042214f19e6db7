"""A stream whose provider speaks the client's format reaches the client as the provider's own bytes (no
re-encoding), while the usage chunk still carries the cost extension, or is left out when the client did
not ask for usage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway

# Written as some OpenAI-compatible servers write them: keys in their own order, a field the gateway does
# not know, `usage: null` on every chunk (the gateway asks for usage).
EVENTS = [
    b'{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],'
    b'"id":"c-1","object":"chat.completion.chunk","created":1,"model":"m-1","usage":null,"obfuscation":"x1"}',
    b'{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],'
    b'"id":"c-1","object":"chat.completion.chunk","created":1,"model":"m-1","usage":null,"obfuscation":"x2"}',
    b'{"choices":[{"index":0,"delta":{"content":" there"},"finish_reason":"stop"}],'
    b'"id":"c-1","object":"chat.completion.chunk","created":1,"model":"m-1","usage":null,"obfuscation":"x3"}',
    b'{"choices":[],"id":"c-1","object":"chat.completion.chunk","created":1,"model":"m-1",'
    b'"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}',
]


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            for data in [*EVENTS, b"[DONE]"]:
                event = b"data: " + data + b"\n\n"
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    server = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = parse_config(
        f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/ledger.db", spool_dir: "{tmp_path}/spool"}}
server: {{access_log: {{enabled: false}}}}
providers:
  up: {{kind: openai, base_url: "http://127.0.0.1:{port}/v1"}}
models:
  - name: chat
    deployments: [{{provider: up, model: m-1, price: {{input: 1, output: 2}}}}]
"""
    )
    gateway = Gateway(config, master_key="sk-master")
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=GatewayApp(gateway))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers={"authorization": "Bearer sk-master"}
        ) as client:
            yield client
    finally:
        await gateway.stop()
        server.close()
        await server.wait_closed()


def _events(text: str) -> list[bytes]:
    return [block.encode() for block in text.split("\n\n") if block]


async def test_the_providers_events_reach_an_openai_client_as_they_were_sent(gateway: httpx.AsyncClient) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
    asked = await gateway.post("/v1/chat/completions", json={**body, "stream_options": {"include_usage": True}})
    events = _events(asked.text)
    assert events[:3] == [b"data: " + data for data in EVENTS[:3]]  # byte for byte, unknown field and all
    usage = orjson.loads(events[3].removeprefix(b"data: "))["usage"]
    assert usage["prompt_tokens"] == 9 and usage["completion_tokens"] == 2
    assert usage["sluicegate"]["cost_usd"]  # the cost extension is still added to the usage chunk
    assert events[4] == b"data: [DONE]"

    plain = _events((await gateway.post("/v1/chat/completions", json=body)).text)
    # not asked for: no usage chunk and no `usage` field, the rest as the provider wrote it
    assert plain[:3] == [b"data: " + data.replace(b',"usage":null', b"") for data in EVENTS[:3]]
    assert plain[3:] == [b"data: [DONE]"]
