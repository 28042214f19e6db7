"""The Anthropic client format: requests to canonical, canonical to Anthropic bodies, events and errors."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.canonical import ChatChunk, ChatResponse, Usage
from sluicegate.errors import GatewayError
from sluicegate.providers.sse import SSEParser
from sluicegate.wire import anthropic as wire

REQUEST = {
    "model": "claude-x",
    "max_tokens": 256,
    "system": [{"type": "text", "text": "You are exact."}],
    "stop_sequences": ["###"],
    "temperature": 0.3,
    "metadata": {"user_id": "user-7"},
    "tools": [{"name": "lookup", "description": "Look up", "input_schema": {"type": "object", "properties": {}}}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"},
                {"type": "text", "text": "And?"},
            ],
        },
    ],
}


def events(raw: bytes) -> list[tuple[str | None, dict[str, object]]]:
    return [(name, orjson.loads(data)) for name, data in SSEParser().feed(raw)]


def test_request_becomes_canonical_with_system_images_tools_and_results() -> None:
    request = wire.parse_chat_request(orjson.dumps(REQUEST))
    assert request.max_tokens == 256 and request.user == "user-7"
    assert request.params["stop"] == ["###"] and request.params["temperature"] == 0.3
    assert request.params["tool_choice"] == "required" and request.params["parallel_tool_calls"] is False
    assert request.params["tools"][0]["function"]["parameters"] == {"type": "object", "properties": {}}
    system, user, assistant, tool, follow_up = request.messages
    assert system == {"role": "system", "content": "You are exact."}
    assert user["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}  # type: ignore[index]
    assert assistant["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q":"x"}'}
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "found"}
    assert follow_up == {"role": "user", "content": "And?"}


@pytest.mark.parametrize(
    ("change", "param"),
    [({"max_tokens": None}, "max_tokens"), ({"messages": "hi"}, "messages"), ({"frequency": 1}, "frequency")],
)
def test_invalid_requests_are_400s_naming_the_field(change: dict[str, object], param: str) -> None:
    body = {**REQUEST, **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(GatewayError) as info:
        wire.parse_chat_request(orjson.dumps(body))
    assert info.value.status == 400 and param in info.value.message


def test_response_body_has_blocks_stop_reason_and_anthropic_usage() -> None:
    response = ChatResponse(
        id="chatcmpl-abc",
        model="gpt-4o",
        created=0,
        choices=[
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sure.",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        usage=Usage(input_tokens=100, output_tokens=20, cached_input_tokens=60, cache_write_tokens=10),
    )
    body = orjson.loads(wire.chat_response_body(response))
    assert body["id"] == "msg_abc" and body["type"] == "message"
    assert body["content"] == [
        {"type": "text", "text": "Sure."},
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}},
    ]
    assert body["stop_reason"] == "tool_use"
    assert body["usage"] == {
        "input_tokens": 30,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 60,
        "output_tokens": 20,
    }


def chunk(delta: dict[str, object], finish: str | None = None) -> ChatChunk:
    return ChatChunk("chatcmpl-1", "m", 0, [{"index": 0, "delta": delta, "finish_reason": finish}])


def test_stream_encoder_emits_anthropics_exact_event_sequence() -> None:
    request = wire.parse_chat_request(orjson.dumps({**REQUEST, "stream": True}))
    encoder = wire.AnthropicWire.stream_encoder(request)
    raw = b"".join(
        [
            encoder.encode(chunk({"role": "assistant", "content": ""})),
            encoder.encode(chunk({"content": "Hi"})),
            encoder.encode(chunk({"content": " there"})),
            encoder.encode(
                chunk(
                    {
                        "tool_calls": [
                            {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
                        ]
                    }
                )
            ),
            encoder.encode(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]})),
            encoder.encode(
                chunk(
                    {
                        "tool_calls": [
                            {"index": 1, "id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                        ]
                    }
                )
            ),
            encoder.encode(chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]})),
            encoder.encode(chunk({}, "tool_calls")),
            encoder.encode(ChatChunk("chatcmpl-1", "m", 0, [], usage=Usage(input_tokens=11, output_tokens=7))),
            encoder.finish(),
        ]
    )
    parsed = events(raw)
    names = [name for name, _ in parsed]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(payload["type"] == name for name, payload in parsed)
    tool_deltas = [p for n, p in parsed if n == "content_block_delta" and p["delta"]["type"] == "input_json_delta"]  # type: ignore[index]
    by_block: dict[int, str] = {}
    for p in tool_deltas:
        by_block[p["index"]] = by_block.get(p["index"], "") + p["delta"]["partial_json"]  # type: ignore[index,operator]
    assert orjson.loads(by_block[1]) == {"a": 1} and orjson.loads(by_block[2]) == {}
    delta = parsed[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["input_tokens"] == 11 and delta["usage"]["output_tokens"] == 7  # type: ignore[index]


def test_error_bodies_and_stream_error_event() -> None:
    error = GatewayError(503, "Upstream busy", type="overloaded_error")
    assert orjson.loads(wire.error_body(error)) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Upstream busy"},
    }
    assert orjson.loads(wire.error_body(GatewayError(401, "no key")))["error"]["type"] == "authentication_error"
    request = wire.parse_chat_request(orjson.dumps({**REQUEST, "stream": True}))
    encoder = wire.AnthropicStreamEncoder(request)
    encoder.encode(chunk({"content": "x"}))
    [(name, payload)] = events(encoder.error(GatewayError(502, "cut")))
    assert name == "error" and payload["error"] == {"type": "api_error", "message": "cut"}
    assert encoder.finish() == b""


def test_count_tokens_counts_messages_and_tools() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Hello there"}]}
    plain = orjson.loads(wire.count_tokens_body(orjson.dumps(body)))["input_tokens"]
    with_tools = orjson.loads(wire.count_tokens_body(orjson.dumps({**body, "tools": REQUEST["tools"]})))
    assert plain > 0 and with_tools["input_tokens"] > plain


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
BLOCK_TYPES = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking", "document", 3])
SOURCES = (
    st.fixed_dictionaries(
        {"type": st.sampled_from(["base64", "url", "file"])}, optional={"data": JSON, "media_type": JSON, "url": JSON}
    )
    | JSON
)
CHOICES = st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "tool", "none", 5])}, optional={"name": JSON})


@st.composite
def hostile_bodies(draw: st.DrawFn) -> dict[str, object]:
    """Bodies shaped like Messages requests, with anything at any place."""
    blocks = st.lists(
        st.fixed_dictionaries(
            {"type": BLOCK_TYPES},
            optional={"text": JSON, "source": SOURCES, "content": JSON, "input": JSON, "id": JSON, "name": JSON},
        )
        | JSON,
        max_size=3,
    )
    message = st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", 1])}, optional={"content": blocks | JSON}
    )
    body = draw(
        st.fixed_dictionaries(
            {"model": st.just("m"), "max_tokens": st.just(10), "messages": st.lists(message, min_size=1, max_size=3)},
            optional={
                "system": JSON | blocks,
                "tools": st.lists(
                    st.fixed_dictionaries({"name": JSON}, optional={"input_schema": JSON}) | JSON, max_size=2
                ),
                "tool_choice": CHOICES | JSON,
                "stop_sequences": JSON,
                "metadata": JSON,
                "stream": JSON,
                "temperature": JSON,
                "top_p": JSON,
            },
        )
    )
    return body


@settings(max_examples=300, deadline=None)
@given(hostile_bodies())
def test_any_body_is_parsed_or_refused_with_a_400_never_a_crash(body: dict[str, object]) -> None:
    try:
        wire.parse_chat_request(orjson.dumps(body))
    except GatewayError as error:
        assert error.status == 400
