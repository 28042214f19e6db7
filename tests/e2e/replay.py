"""An upstream that replays recorded provider payloads (tests/fixtures) on each family's own paths.

    python -m uvicorn tests.e2e.replay:app --port N

`/openai/chat/completions`, `/anthropic/v1/messages`, `/gemini/models/{m}:generateContent` and
`:streamGenerateContent`, `/bedrock/model/{m}/converse` and `/converse-stream` (event-stream framed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from sluicegate.providers.simulator.bedrock_format import event

FIXTURES = Path(__file__).parents[1] / "fixtures"
SSE = [(b"content-type", b"text/event-stream")]
JSON = [(b"content-type", b"application/json")]


def _bedrock_stream() -> bytes:
    events = orjson.loads((FIXTURES / "bedrock" / "stream_tools.json").read_bytes())
    return b"".join(event(name, payload) for name, payload in events)


def _route(path: str, body: dict[str, Any]) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    if path == "/openai/chat/completions":
        if body.get("stream"):
            return SSE, (FIXTURES / "openai" / "stream_tools.sse").read_bytes()
        return JSON, (FIXTURES / "openai" / "response_tools.json").read_bytes()
    if path == "/anthropic/v1/messages":
        if body.get("stream"):
            return SSE, (FIXTURES / "anthropic" / "stream_tools.sse").read_bytes()
        return JSON, (FIXTURES / "anthropic" / "response_tools.json").read_bytes()
    if path.startswith("/gemini/models/"):
        if path.endswith(":streamGenerateContent"):
            return SSE, (FIXTURES / "gemini" / "stream_tools.sse").read_bytes()
        return JSON, (FIXTURES / "gemini" / "response_tools.json").read_bytes()
    if path.startswith("/bedrock/model/"):
        if path.endswith("/converse-stream"):
            return [(b"content-type", b"application/vnd.amazon.eventstream")], _bedrock_stream()
        return JSON, (FIXTURES / "bedrock" / "response_tools.json").read_bytes()
    return None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    routed = _route(scope["path"], orjson.loads(raw) if raw else {})
    if routed is None:
        await send(
            {"type": "http.response.start", "status": 404 if scope["path"] != "/ready" else 200, "headers": JSON}
        )
        await send({"type": "http.response.body", "body": b"{}"})
        return
    headers, payload = routed
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
