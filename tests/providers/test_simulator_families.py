"""The simulator's Anthropic, Gemini, Bedrock and Azure formats: shapes, determinism, tools, faults, framing."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from sluicegate.providers.simulator import create_app, parse_simulator_config
from sluicegate.providers.sse import SSEParser

KEY = "sk-sim-family"
SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 3},
        "when": {"type": "string", "format": "date"},
        "days": {"type": "integer", "minimum": 1, "maximum": 5},
        "units": {"type": "array", "items": {"enum": ["c", "f"]}, "minItems": 2},
    },
    "required": ["city", "when", "days", "units"],
}
AUTH = {"x-api-key": KEY, "x-goog-api-key": KEY}


@pytest.fixture
async def sim() -> Any:
    app = create_app(
        parse_simulator_config(
            f"seed: 3\napi_key: {KEY}\ndefault: {{output_tokens: {{min: 5, max: 12}}, context_window: 500}}\n", "<t>"
        )
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def anthropic(sim: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    body = {"model": "claude-t", "max_tokens": 100, "messages": [{"role": "user", "content": "Hello"}], **extra}
    return await sim.post("/v1/messages", json=body, headers=AUTH)


async def test_anthropic_message_is_deterministic_and_stream_matches(sim: httpx.AsyncClient) -> None:
    first = (await anthropic(sim)).json()
    assert first == {**(await anthropic(sim)).json(), "id": first["id"]}
    assert first["type"] == "message" and first["stop_reason"] == "end_turn"
    raw = (await anthropic(sim, stream=True)).content
    events = [(name, orjson.loads(data)) for name, data in SSEParser().feed(raw)]
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = "".join(p["delta"]["text"] for n, p in events if n == "content_block_delta")
    assert text == first["content"][0]["text"]
    assert events[-2][1]["usage"]["output_tokens"] == first["usage"]["output_tokens"]
    assert events[0][1]["message"]["usage"]["input_tokens"] == first["usage"]["input_tokens"]


async def test_anthropic_tool_use_validates_and_a_tool_result_gets_text(sim: httpx.AsyncClient) -> None:
    tools = [{"name": "plan", "input_schema": SCHEMA}]
    reply = (await anthropic(sim, tools=tools)).json()
    assert reply["stop_reason"] == "tool_use"
    use = reply["content"][0]
    jsonschema.validate(use["input"], SCHEMA)
    raw = (await anthropic(sim, tools=tools, stream=True)).content
    fragments = [orjson.loads(d)["delta"] for n, d in SSEParser().feed(raw) if n == "content_block_delta"]
    jsonschema.validate(orjson.loads("".join(f["partial_json"] for f in fragments)), SCHEMA)
    history = [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use["id"], "content": "done"}]},
    ]
    final = (await anthropic(sim, tools=tools, messages=history)).json()
    assert final["stop_reason"] == "end_turn" and final["content"][0]["type"] == "text"


async def test_anthropic_faults_use_anthropics_error_shapes(sim: httpx.AsyncClient) -> None:
    await sim.put("/_sim/faults/claude-t", json={"faults": [{"type": "unavailable"}]})
    overloaded = await anthropic(sim)
    assert overloaded.status_code == 529
    assert overloaded.json() == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    await sim.put("/_sim/faults/claude-t", json={"faults": [{"type": "rate_limit", "retry_after": 2}]})
    limited = await anthropic(sim)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert limited.json()["error"]["type"] == "rate_limit_error"
    await sim.delete("/_sim/faults")
    too_long = await anthropic(sim, messages=[{"role": "user", "content": "word " * 600}])
    assert too_long.status_code == 400 and "prompt is too long" in too_long.json()["error"]["message"]


async def test_gemini_generate_and_stream_with_cumulative_usage(sim: httpx.AsyncClient) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"maxOutputTokens": 3}}
    whole = (await sim.post("/v1beta/models/gem-t:generateContent", json=body, headers=AUTH)).json()
    assert whole["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert whole["usageMetadata"]["candidatesTokenCount"] == 3
    raw = (await sim.post("/v1beta/models/gem-t:streamGenerateContent?alt=sse", json=body, headers=AUTH)).content
    events = [orjson.loads(data) for _, data in SSEParser().feed(raw)]
    counts = [e["usageMetadata"].get("candidatesTokenCount", 0) for e in events]
    assert counts == sorted(counts) and counts[-1] == 3
    assert events[-1]["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_gemini_function_call_and_resource_exhausted(sim: httpx.AsyncClient) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Plan"}]}],
        "tools": [{"functionDeclarations": [{"name": "plan", "parametersJsonSchema": SCHEMA}]}],
    }
    reply = (await sim.post("/v1beta/models/gem-t:generateContent", json=body, headers=AUTH)).json()
    call = reply["candidates"][0]["content"]["parts"][0]["functionCall"]
    assert call["name"] == "plan"
    jsonschema.validate(call["args"], SCHEMA)
    await sim.put("/_sim/faults/gem-t", json={"faults": [{"type": "rate_limit"}]})
    limited = await sim.post("/v1beta/models/gem-t:generateContent", json=body, headers=AUTH)
    assert limited.status_code == 429 and limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def sigv4(access_key: str) -> dict[str, str]:
    return {"authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/20250101/us-east-1/bedrock/aws4_request, x"}


async def test_bedrock_converse_stream_frames_pass_botocores_crc_checks(sim: httpx.AsyncClient) -> None:
    body = {
        "messages": [{"role": "user", "content": [{"text": "Plan"}]}],
        "toolConfig": {"tools": [{"toolSpec": {"name": "plan", "inputSchema": {"json": SCHEMA}}}]},
    }
    response = await sim.post("/model/anthropic.claude-v1%3A0/converse-stream", json=body, headers=sigv4(KEY))
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(response.content)
    messages = list(buffer)  # raises on any CRC mismatch
    kinds = [m.headers[":event-type"] for m in messages]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    arguments = "".join(
        orjson.loads(m.payload)["delta"]["toolUse"]["input"]
        for m in messages
        if m.headers[":event-type"] == "contentBlockDelta"
    )
    jsonschema.validate(orjson.loads(arguments), SCHEMA)
    assert orjson.loads(messages[-1].payload)["usage"]["outputTokens"] > 0


async def test_bedrock_errors_and_credentials(sim: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    assert (await sim.post("/model/m-b/converse", json=body, headers=sigv4("AKIAWRONG"))).status_code == 401
    await sim.put("/_sim/faults/m-b", json={"faults": [{"type": "rate_limit"}]})
    throttled = await sim.post("/model/m-b/converse", json=body, headers=sigv4(KEY))
    assert throttled.status_code == 429
    assert throttled.headers["x-amzn-errortype"].startswith("ThrottlingException")
    await sim.delete("/_sim/faults")
    long = {"messages": [{"role": "user", "content": [{"text": "word " * 600}]}]}
    too_long = await sim.post("/model/m-b/converse", json=long, headers=sigv4(KEY))
    assert too_long.status_code == 400 and "Input is too long" in too_long.json()["message"]


async def test_azure_deployment_path_and_api_key_header(sim: httpx.AsyncClient) -> None:
    url = "/openai/deployments/my-dep/chat/completions?api-version=2024-10-21"
    body = {"messages": [{"role": "user", "content": "Hi"}]}
    assert (await sim.post(url, json=body, headers={"api-key": "wrong"})).status_code == 401
    reply = (await sim.post(url, json=body, headers={"api-key": KEY})).json()
    assert reply["model"] == "my-dep" and reply["choices"][0]["message"]["content"]
