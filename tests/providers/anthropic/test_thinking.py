"""Extended thinking through the Anthropic family: thinking and redacted blocks from recorded-shape payloads
to canonical and back, both ways of asking for it, and thoughts sent back on later turns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, Usage
from sluicegate.config.schema import ProviderConfig
from sluicegate.providers.anthropic.request import request_body
from sluicegate.providers.anthropic.response import AnthropicStreamDecoder, chat_response
from sluicegate.providers.base import Endpoint
from sluicegate.providers.openai.adapter import OpenAIAdapter
from sluicegate.providers.sse import SSEParser
from sluicegate.wire import anthropic as anthropic_wire

FIXTURES = Path(__file__).parents[2] / "fixtures" / "anthropic"
SIGNATURE = (
    "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds1NjVV3VbvpIa0U1WRPpjN0A2BTDqQqKc6qlo6Vq5XtW3fQ1Bf4jZbN4zAI"
)
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpP"


def _decode_stream() -> list[ChatChunk]:
    decoder = AnthropicStreamDecoder()
    chunks: list[ChatChunk] = []
    for event, data in SSEParser().feed((FIXTURES / "stream_thinking.sse").read_bytes()):
        chunks.extend(decoder.decode(event, data))
    return chunks


def test_a_whole_response_keeps_its_thoughts_in_order_with_their_signature() -> None:
    response = chat_response((FIXTURES / "response_thinking_tools.json").read_bytes())
    message = response.choices[0]["message"]
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "The user wants the weather in Paris. I should call get_weather.",
         "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": REDACTED},
    ]  # fmt: skip
    assert message["reasoning_content"].startswith("The user wants")
    assert message["content"] == "Let me check." and message["tool_calls"][0]["id"] == "toolu_01T1x1"
    # An Anthropic client gets the same blocks back, before the text and the tool call.
    body = orjson.loads(anthropic_wire.chat_response_body(response))
    assert [b["type"] for b in body["content"]] == ["thinking", "redacted_thinking", "text", "tool_use"]
    assert body["content"][0]["signature"] == SIGNATURE and body["content"][1]["data"] == REDACTED


def test_a_stream_relays_thoughts_signature_and_redacted_block_to_an_anthropic_client() -> None:
    chunks = _decode_stream()
    assert chunks[0].prompt_usage == Usage(input_tokens=105, output_tokens=1, cached_input_tokens=20)
    encoder = anthropic_wire.AnthropicStreamEncoder(ChatRequest("m", []))
    events = [
        orjson.loads(d) for _, d in SSEParser().feed(b"".join(encoder.encode(c) for c in chunks) + encoder.finish())
    ]
    start = events[0]["message"]["usage"]
    assert (start["input_tokens"], start["cache_read_input_tokens"]) == (85, 20)  # as Anthropic stated them
    blocks = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "text"]
    assert blocks[1]["data"] == REDACTED
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(d.get("thinking", "") for d in deltas).endswith("453 = 400 + 50 + 3")
    assert [d["signature"] for d in deltas if d["type"] == "signature_delta"] == [SIGNATURE]
    assert [e["index"] for e in events if e["type"] == "content_block_stop"] == [0, 1, 2]


def _history() -> list[dict[str, Any]]:
    request = anthropic_wire.parse_chat_request(
        orjson.dumps(
            {
                "model": "m",
                "max_tokens": 8000,
                "thinking": {"type": "enabled", "budget_tokens": 4000},
                "messages": [
                    {"role": "user", "content": "Weather in Paris?"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "thinking", "thinking": "Call it.", "signature": SIGNATURE},
                            {"type": "redacted_thinking", "data": REDACTED},
                            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                        ],
                    },
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "9 C"}]},
                ],
            }
        )
    )
    return [request.messages, request.params]  # type: ignore[list-item]


def test_thoughts_sent_back_reach_anthropic_first_and_whole_and_never_an_openai_upstream() -> None:
    messages, params = _history()
    request = ChatRequest("m", messages, max_tokens=8000, params=params)  # type: ignore[arg-type]
    body = request_body("claude", request, "drop")
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    assert body["messages"][1]["content"][:2] == [
        {"type": "thinking", "thinking": "Call it.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": REDACTED},
    ]
    endpoint = Endpoint("openai", ProviderConfig(kind="openai", base_url="https://api.openai.com/v1"), "k")  # type: ignore[arg-type]
    sent = OpenAIAdapter().chat_body(endpoint, "gpt-4o", request)
    assert "thinking" not in sent and "sluicegate_reasoning_history" not in sent
    assert all("thinking_blocks" not in m and "reasoning_content" not in m for m in sent["messages"])
    assert OpenAIAdapter().chat_body(endpoint, "o3-mini", request)["reasoning_effort"] == "medium"


def test_reasoning_effort_becomes_a_budget_kept_below_max_tokens() -> None:
    def thinking(effort: str, max_tokens: int) -> Any:
        request = ChatRequest(
            "m", [{"role": "user", "content": "x"}], max_tokens=max_tokens, params={"reasoning_effort": effort}
        )
        return request_body("claude", request, "refuse").get("thinking")

    assert thinking("low", 4096) == {"type": "enabled", "budget_tokens": 1024}
    assert thinking("high", 8000) == {"type": "enabled", "budget_tokens": 7999}
    assert thinking("medium", 1000) is None  # no room for Anthropic's minimum budget
    assert thinking("minimal", 4096) is None
