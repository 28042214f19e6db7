"""Anthropic prompt-cache breakpoints: kept for Anthropic, turned into cachePoints for Bedrock, stripped for OpenAI."""

from __future__ import annotations

import orjson

from sluicegate.config.schema import ProviderConfig
from sluicegate.providers.anthropic.adapter import AnthropicAdapter
from sluicegate.providers.base import Endpoint
from sluicegate.providers.bedrock.adapter import BedrockAdapter
from sluicegate.providers.gemini.adapter import GeminiAdapter
from sluicegate.providers.openai.adapter import OpenAIAdapter
from sluicegate.wire import anthropic as wire

EPHEMERAL = {"type": "ephemeral"}
CLIENT_REQUEST = {
    "model": "m",
    "max_tokens": 100,
    "system": [
        {"type": "text", "text": "A long, stable instruction block.", "cache_control": EPHEMERAL},
        {"type": "text", "text": "Today's note."},
    ],
    "tools": [{"name": "lookup", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "A long document.", "cache_control": EPHEMERAL}]},
        {"role": "assistant", "content": "Read it."},
        {"role": "user", "content": "Summarise."},
    ],
}


def endpoint(kind: str, base_url: str = "https://provider.test") -> Endpoint:
    return Endpoint(kind, ProviderConfig(kind=kind, base_url=base_url, aws_region="us-east-1"), "key")  # type: ignore[arg-type]


def test_anthropic_client_to_anthropic_upstream_keeps_every_breakpoint() -> None:
    request = wire.parse_chat_request(orjson.dumps(CLIENT_REQUEST))
    body = orjson.loads(AnthropicAdapter().chat_request(endpoint("anthropic"), "claude", request).body)
    assert body["system"] == CLIENT_REQUEST["system"]
    assert body["tools"][0]["cache_control"] == EPHEMERAL
    assert body["messages"][0] == CLIENT_REQUEST["messages"][0]
    assert body["messages"][2] == {"role": "user", "content": "Summarise."}
    assert "sluicegate_cache_hints" not in body


def test_openai_upstream_gets_no_cache_control_and_no_private_flag() -> None:
    request = wire.parse_chat_request(orjson.dumps(CLIENT_REQUEST))
    raw = OpenAIAdapter().chat_request(endpoint("openai", "https://api.openai.test/v1"), "gpt", request).body
    assert b"cache_control" not in raw and b"sluicegate" not in raw
    body = orjson.loads(raw)
    assert [p["text"] for p in body["messages"][0]["content"]] == ["A long, stable instruction block.", "Today's note."]
    assert body["tools"][0]["function"]["name"] == "lookup"
    # The canonical request itself is untouched: a fallback to an Anthropic deployment still has the hints.
    assert "cache_control" in request.messages[0]["content"][0]  # type: ignore[index,operator]


def test_bedrock_gets_cache_points_and_gemini_ignores_hints() -> None:
    request = wire.parse_chat_request(orjson.dumps(CLIENT_REQUEST))
    body = orjson.loads(BedrockAdapter().chat_request(endpoint("bedrock"), "model", request).body)
    assert body["system"] == [
        {"text": "A long, stable instruction block."},
        {"cachePoint": {"type": "default"}},
        {"text": "Today's note."},
    ]
    assert body["messages"][0]["content"] == [{"text": "A long document."}, {"cachePoint": {"type": "default"}}]
    gemini = GeminiAdapter().chat_request(endpoint("gemini"), "g", request).body
    assert b"cache_control" not in gemini and b"sluicegate" not in gemini
    assert orjson.loads(gemini)["systemInstruction"]["parts"] == [
        {"text": "A long, stable instruction block."},
        {"text": "Today's note."},
    ]
