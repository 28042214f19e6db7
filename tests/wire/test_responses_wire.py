"""The Responses API client format: request bodies to canonical, canonical to response objects and events."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.canonical import ChatChunk, ChatResponse, Usage
from sluicegate.errors import GatewayError
from sluicegate.providers.sse import SSEParser
from sluicegate.wire import responses as wire

REQUEST = {
    "model": "gpt-x",
    "instructions": "Be exact.",
    "max_output_tokens": 300,
    "reasoning": {"effort": "low", "summary": "auto"},
    "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": True}},
    "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}, "strict": True}],
    "tool_choice": {"type": "function", "name": "lookup"},
    "parallel_tool_calls": False,
    "store": False,
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Describe"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
            ],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think."}]},
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": '{"q":"x"}'},
        {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": '{"q":"y"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "found x"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "found y"}]},
    ],
}


def test_a_full_request_becomes_the_canonical_chat_request() -> None:
    request = wire.parse_responses_request(orjson.dumps(REQUEST))
    assert request.model == "gpt-x" and request.max_tokens == 300 and request.include_usage
    assert request.messages == [
        {"role": "system", "content": "Be exact."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"y"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "found x"},
        {"role": "tool", "tool_call_id": "call_2", "content": "found y"},
    ]
    assert request.params == {
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}, "strict": True}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
        },
        "reasoning_effort": "low",
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": "hi", "temprature": 1}, "temprature"),
        ({"model": "m", "input": "hi", "conversation": "conv_1"}, "conversation"),
        ({"model": "m", "input": "hi", "background": True}, "background"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        ({"model": "m", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "hi", "tool_choice": {"type": "web_search"}}, "tool_choice.type"),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
        ({"model": "m", "input": "hi", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "hi", "stream": "yes"}, "stream"),
    ],
)
def test_bad_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        wire.parse_responses_request(orjson.dumps(body))
    assert info.value.status == 400 and info.value.param == param


def test_a_whole_response_lists_reasoning_text_and_calls_as_output_items() -> None:
    message = {
        "role": "assistant",
        "content": "Here.",
        "reasoning_content": "First, think.",
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    }
    response = ChatResponse(
        "chatcmpl-abc", "m", 7, [{"index": 0, "message": message, "finish_reason": "tool_calls"}], Usage(10, 20, 4, 5)
    )
    body = orjson.loads(wire.chat_response_body(response, {"cost_usd": "0.1"}))
    assert body["id"] == "resp_abc" and body["status"] == "completed" and body["store"] is False
    assert [item["type"] for item in body["output"]] == ["reasoning", "message", "function_call"]
    assert body["output"][0]["content"] == [{"type": "reasoning_text", "text": "First, think."}]
    assert body["output"][2]["call_id"] == "call_9"
    assert body["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
        "output_tokens": 20,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 30,
        "sluicegate": {"cost_usd": "0.1"},
    }


def _events(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(payload) for _, payload in SSEParser().feed(data)]


def _chunk(delta: dict[str, Any], finish: str | None = None) -> ChatChunk:
    return ChatChunk("chatcmpl-s1", "m", 5, [{"index": 0, "delta": delta, "finish_reason": finish}])


def test_stream_items_open_and_close_in_output_order() -> None:
    encoder = wire.ResponsesStreamEncoder(wire.parse_responses_request(b'{"model": "m", "input": "hi"}'))
    data = b"".join(
        [
            encoder.encode(_chunk({"role": "assistant", "reasoning_content": "Hmm. "})),
            encoder.encode(_chunk({"reasoning_content": "Yes."})),
            encoder.encode(_chunk({"content": "Sure"})),
            encoder.encode(_chunk({"refusal": "but no"})),
            encoder.encode(
                _chunk({"tool_calls": [{"index": 0, "id": "c0", "function": {"name": "a", "arguments": ""}}]})
            ),
            encoder.encode(
                _chunk({"tool_calls": [{"index": 1, "id": "c1", "function": {"name": "b", "arguments": "{"}}]})
            ),
            encoder.encode(_chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})),
            encoder.encode(_chunk({"tool_calls": [{"index": 1, "function": {"arguments": "}"}}]}, "tool_calls")),
            encoder.encode(ChatChunk("chatcmpl-s1", "m", 5, [], usage=Usage(3, 9, reasoning_tokens=4))),
            encoder.finish(),
        ]
    )
    events = _events(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    done = [(e["output_index"], e["item"]["type"]) for e in events if e["type"] == "response.output_item.done"]
    assert done == [(0, "reasoning"), (1, "message"), (2, "function_call"), (3, "function_call")]
    final = events[-1]
    assert final["type"] == "response.completed"
    output = final["response"]["output"]
    assert output[0]["content"] == [{"type": "reasoning_text", "text": "Hmm. Yes."}]
    assert [p["type"] for p in output[1]["content"]] == ["output_text", "refusal"]
    assert [(o["call_id"], o["arguments"]) for o in output[2:]] == [("c0", "{}"), ("c1", "{}")]
    assert final["response"]["usage"]["output_tokens_details"] == {"reasoning_tokens": 4}
    assert len({e["response"]["id"] for e in events if "response" in e}) == 1


def test_a_length_stop_streams_response_incomplete() -> None:
    encoder = wire.ResponsesStreamEncoder(wire.parse_responses_request(b'{"model": "m", "input": "hi"}'))
    data = encoder.encode(_chunk({"content": "cut"}, "length")) + encoder.finish()
    final = _events(data)[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_error_before_any_chunk_still_opens_then_fails_the_response() -> None:
    encoder = wire.ResponsesStreamEncoder(wire.parse_responses_request(b'{"model": "m", "input": "hi"}'))
    events = _events(encoder.error(GatewayError(502, "upstream broke", type="server_error", code="server_error")))
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error", "response.failed"]
    assert events[2]["message"] == "upstream broke"
    assert events[-1]["response"]["error"] == {"code": "server_error", "message": "upstream broke"}
