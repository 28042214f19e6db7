"""The Anthropic adapter against payloads written from Anthropic's Messages API reference."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from sluicegate.canonical import ChatChunk, ChatRequest
from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import ErrorClass, GatewayError, UpstreamError
from sluicegate.providers.anthropic.adapter import AnthropicAdapter
from sluicegate.providers.base import Endpoint
from sluicegate.providers.sse import SSEParser

FIXTURES = Path(__file__).parents[2] / "fixtures" / "anthropic"
ADAPTER = AnthropicAdapter()
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def endpoint(**extra: object) -> Endpoint:
    config = ProviderConfig(kind="anthropic", base_url="https://api.anthropic.com", **extra)  # type: ignore[arg-type]
    return Endpoint("anthropic", config, "sk-ant-test")


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decode_stream(raw: bytes) -> tuple[list[ChatChunk], bool]:
    decoder = ADAPTER.stream_decoder()
    parser = SSEParser()
    chunks: list[ChatChunk] = []
    for i in range(0, len(raw), 37):  # arbitrary network reads that split events
        for event, data in parser.feed(raw[i : i + 37]):
            chunks.extend(decoder.decode(event, data))
    return chunks, decoder.done


def test_request_has_headers_system_blocks_images_and_tool_history() -> None:
    request = ChatRequest(
        model="claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and the weather?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": '{"city":"Oslo"}'}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "w", "arguments": '{"city":"Rome"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "cold"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "warm"},
            {"role": "user", "content": "Thanks. Summarise."},
        ],
        max_tokens=300,
        user="u-1",
        params={
            "temperature": 0.5,
            "stop": "END",
            "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        },
    )
    upstream = ADAPTER.chat_request(endpoint(), "claude-sonnet-4-5", request)
    assert upstream.url == "https://api.anthropic.com/v1/messages"
    assert upstream.headers["x-api-key"] == "sk-ant-test"
    assert upstream.headers["anthropic-version"] == "2023-06-01"
    body = orjson.loads(upstream.body)
    assert body["system"] == "Be brief."
    assert body["max_tokens"] == 300
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert body["tools"] == [{"name": "w", "input_schema": {"type": "object"}}]
    user, assistant, results = body["messages"]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert [b["input"] for b in assistant["content"]] == [{"city": "Oslo"}, {"city": "Rome"}]
    # Both tool results and the next user text share one user turn, as Anthropic requires alternation.
    assert results["role"] == "user"
    assert [b["type"] for b in results["content"]] == ["tool_result", "tool_result", "text"]
    assert results["content"][1] == {"type": "tool_result", "tool_use_id": "toolu_2", "content": "warm"}


def test_max_tokens_defaults_and_out_of_range_temperature_is_refused() -> None:
    request = ChatRequest(model="c", messages=[{"role": "user", "content": "hi"}])
    body = orjson.loads(ADAPTER.chat_request(endpoint(), "c", request).body)
    assert body["max_tokens"] == 4096
    hot = ChatRequest(model="c", messages=[{"role": "user", "content": "hi"}], params={"temperature": 1.5})
    with pytest.raises(GatewayError) as info:
        ADAPTER.chat_request(endpoint(), "c", hot)
    assert info.value.status == 400 and info.value.param == "temperature"


def test_unsupported_parameter_is_dropped_or_refused_by_policy() -> None:
    request = ChatRequest(model="c", messages=[{"role": "user", "content": "hi"}], params={"logit_bias": {"1": 5}})
    body = orjson.loads(ADAPTER.chat_request(endpoint(), "c", request).body)
    assert "logit_bias" not in body
    with pytest.raises(GatewayError) as info:
        ADAPTER.chat_request(endpoint(unsupported_params="refuse"), "c", request)
    assert info.value.status == 400 and info.value.code == "unsupported_parameter"
    one = ChatRequest(model="c", messages=[{"role": "user", "content": "hi"}], params={"n": 1, "store": True})
    ADAPTER.chat_request(endpoint(unsupported_params="refuse"), "c", one)  # no-ops are never refused


def test_response_usage_counts_cache_reads_and_writes_as_input() -> None:
    response = ADAPTER.chat_response(fixture("response_text_cached.json"))
    assert response.choices[0]["message"]["content"] == "Hello! How can I help you today?"
    assert response.choices[0]["finish_reason"] == "stop"
    usage = response.usage
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_tokens) == (4512, 3000, 1500)
    assert usage.output_tokens == 9


def test_response_with_two_tool_calls() -> None:
    response = ADAPTER.chat_response(fixture("response_tools.json"))
    choice = response.choices[0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I'll check both cities."
    calls = choice["message"]["tool_calls"]
    assert [c["id"] for c in calls] == ["toolu_01A09q90qw90lq917835lq9", "toolu_01B19r91rx91mr928946mr0"]
    assert orjson.loads(calls[1]["function"]["arguments"]) == {"location": "New York, NY", "unit": "celsius"}


def test_refusal_is_content_filter_not_stop() -> None:
    response = ADAPTER.chat_response(fixture("response_refusal.json"))
    assert response.choices[0]["finish_reason"] == "content_filter"


def test_stream_tool_calls_in_fragments_one_index_per_tool_and_cumulative_usage() -> None:
    chunks, done = decode_stream(fixture("stream_tools.sse"))
    assert done
    text = "".join(c.choices[0]["delta"].get("content") or "" for c in chunks if c.choices)
    assert text == "Okay, let's check the weather:"
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for call in choice["delta"].get("tool_calls") or ():
                entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.get("id") or ""
                entry["name"] += (call.get("function") or {}).get("name") or ""
                entry["arguments"] += (call.get("function") or {}).get("arguments") or ""
    assert calls[0]["name"] == "get_weather" and orjson.loads(calls[0]["arguments"]) == {
        "location": "San Francisco, CA"
    }
    assert calls[1]["id"] == "toolu_02U2y2gK45rBnl3uOUsO8Vq7"
    assert orjson.loads(calls[1]["arguments"]) == {"tz": "America/Los_Angeles"}
    finishes = [c.choices[0]["finish_reason"] for c in chunks if c.choices and c.choices[0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    # message_delta's output_tokens (89) replaces message_start's (2); input keeps message_start's.
    assert (usage.input_tokens, usage.cached_input_tokens, usage.output_tokens) == (572, 100, 89)


def test_overloaded_error_inside_a_200_stream_is_classified() -> None:
    with pytest.raises(UpstreamError) as info:
        decode_stream(fixture("stream_overloaded.sse"))
    assert info.value.error_class is ErrorClass.OVERLOADED
    assert info.value.retryable


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (529, "error_overloaded.json", ErrorClass.OVERLOADED),
        (400, "error_context.json", ErrorClass.CONTEXT_WINDOW),
        (429, "error_rate_limit.json", ErrorClass.RATE_LIMITED),
        (502, "", ErrorClass.SERVER_ERROR),
    ],
)
def test_errors_are_classified(status: int, name: str, expected: ErrorClass) -> None:
    body = fixture(name) if name else b"<html>bad gateway</html>"
    error = ADAPTER.classify_error(status, {"retry-after": "3"}, body)
    assert error.error_class is expected
    assert error.retry_after == 3
