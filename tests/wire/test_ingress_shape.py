"""Every request shape a client can get wrong is a 400 naming the field, at ingress, in both formats: wrong
types in any field, missing required fields, integers beyond what anything downstream holds, and JSON nested
deeper than the gateway's bound (which would otherwise fail later, when the request is serialised again)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.errors import GatewayError
from sluicegate.wire import anthropic, openai
from sluicegate.wire.bounds import MAX_DEPTH

USER = {"role": "user", "content": "hi"}


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def _openai(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "messages": [USER], **fields})


def _anthropic(**fields: Any) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 16, "messages": [USER], **fields})


def _refused(parse: Any, body: bytes) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse(body)
    assert info.value.status == 400
    return info.value


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "system"}]}, "messages[0].content"),
        ({"messages": [USER, {"role": "assistant"}]}, "messages[1].content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "function", "content": "x"}]}, "messages[0].name"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [5]}, "messages[0]"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": [5]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
        ({"messages": [{"role": "user", "content": [{"type": 3}]}]}, "messages[0].content[0].type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "u"}]}]},
            "messages[0].content[0].image_url",
        ),
        ({"messages": [{"role": "user", "name": 5, "content": "x"}]}, "messages[0].name"),
        ({"messages": [{"role": "assistant", "tool_calls": "x"}]}, "messages[0].tool_calls"),
        ({"messages": [{"role": "assistant", "tool_calls": [1]}]}, "messages[0].tool_calls[0]"),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{**CALL, "function": None}]}]},
            "messages[0].tool_calls[0].function",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": {}}}]}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"messages": [{"role": "assistant", "tool_calls": [{**CALL, "type": "x"}]}]},
            "messages[0].tool_calls[0].type",
        ),
        ({"model": None}, "model"),
        ({"model": ["m"]}, "model"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": [1]}, "top_p"),
        ({"n": 0}, "n"),
        ({"n": 1.5}, "n"),
        ({"seed": "1"}, "seed"),
        ({"max_tokens": 2**63}, "max_tokens"),
        ({"max_tokens": 18446744073709551615}, "max_tokens"),
        ({"max_completion_tokens": True}, "max_completion_tokens"),
        ({"stop": 5}, "stop"),
        ({"stop": ["a", 1]}, "stop[1]"),
        ({"logit_bias": {"1": "x"}}, "logit_bias.1"),
        ({"tools": "x"}, "tools"),
        ({"tools": [5]}, "tools[0]"),
        ({"tools": [{"type": "function"}]}, "tools[0].function"),
        ({"tools": [{"type": "function", "function": {"name": 1}}]}, "tools[0].function.name"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
            "tools[0].function.parameters",
        ),
        ({"tool_choice": 5}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": 5}}}, "tool_choice.function.name"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"response_format": "json"}, "response_format"),
        ({"metadata": "x"}, "metadata"),
        ({"stream": "yes"}, "stream"),
        ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ({"user": {"id": 1}}, "user"),
        ({"metadata": {"a": nested(MAX_DEPTH)}}, "metadata"),
        ({"some_provider_field": nested(MAX_DEPTH)}, "some_provider_field"),
        ({"messages": [{"role": "user", "content": [{"type": "x", "deep": nested(MAX_DEPTH)}]}]}, "messages"),
    ],
)
def test_openai_bad_shapes_are_400s_naming_the_field(fields: dict[str, Any], param: str) -> None:
    error = _refused(openai.parse_chat_request, _openai(**fields))
    assert error.param == param
    assert param in error.message


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [{"role": "user"}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [5]}, "messages.0"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [5]}]}, "messages.0.content.0"),
        ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages.0.content.0.type"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}, "messages.0.content.0.text"),
        ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages.0.content.0.type"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": "x"}]}]},
            "messages.0.content.0.cache_control",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}
                ]
            },
            "messages.0.content.0.input",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]},
            "messages.0.content.0.id",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": 5}]}]},
            "messages.0.content.0.tool_use_id",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 5}]}]},
            "messages.0.content.0.content",
        ),
        ({"max_tokens": 2**63}, "max_tokens"),
        ({"max_tokens": "16"}, "max_tokens"),
        ({"model": 5}, "model"),
        ({"system": 5}, "system"),
        ({"system": [{"type": "text"}]}, "system.0.text"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": "x"}, "top_k"),
        ({"stream": "yes"}, "stream"),
        ({"stop_sequences": "stop"}, "stop_sequences"),
        ({"tools": [5]}, "tools.0"),
        ({"tools": [{"name": "f", "input_schema": "x"}]}, "tools.0.input_schema"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name"),
        (
            {"tool_choice": {"type": "auto", "disable_parallel_tool_use": "yes"}},
            "tool_choice.disable_parallel_tool_use",
        ),
        ({"metadata": [[[]]]}, "metadata"),
        ({"metadata": {"user_id": {"a": 1}}}, "metadata.user_id"),
        ({"thinking": "on"}, "thinking"),
        ({"metadata": {"a": nested(MAX_DEPTH)}}, "metadata"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "extra": nested(MAX_DEPTH)}]}]},
            "messages",
        ),
    ],
)
def test_anthropic_bad_shapes_are_400s_naming_the_field(fields: dict[str, Any], param: str) -> None:
    error = _refused(anthropic.parse_chat_request, _anthropic(**fields))
    assert error.param == param
    assert param in error.message
    if set(fields) <= {"model", "messages", "system", "tools", "tool_choice", "thinking"}:  # counting: same shape
        counted = {k: v for k, v in orjson.loads(_anthropic(**fields)).items() if k != "max_tokens"}
        assert _refused(anthropic.count_tokens_body, orjson.dumps(counted)).param == param


def test_nesting_up_to_the_bound_is_accepted_and_forwarded_verbatim() -> None:
    depth = nested(MAX_DEPTH - 2)  # the body, then the field's own object
    request = openai.parse_chat_request(_openai(metadata={"a": depth}))
    assert request.params["metadata"] == {"a": depth}
    assert orjson.dumps(request.params)  # what every adapter does with it: serialisable


@pytest.mark.parametrize(
    "parse", [openai.parse_chat_request, anthropic.parse_chat_request, anthropic.count_tokens_body]
)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1100 + b"]" * 1100,  # beyond the parser's own limit
        b'{"model":' + b"[" * 1100 + b"]" * 1100 + b"}",
        b'{"model": "m", "x": "\xff\xfe"}',  # not UTF-8
        b'{"model": "m", "x": "\\ud800"}',  # a lone surrogate
        b'{"model": "m\x00"}',  # a raw control character in a string
        b'{"model": "m", "x": 1e400}',  # beyond a double
        b'{"model": NaN}',
        b"",
        b"\x00" * 64,
        b'"just a string"',
    ],
)
def test_unreadable_bodies_are_400s(parse: Any, body: bytes) -> None:
    _refused(parse, body)


def test_a_nul_inside_a_string_is_just_text() -> None:
    request = openai.parse_chat_request(_openai(messages=[{"role": "user", "content": "a\x00b"}]))
    assert request.messages[0]["content"] == "a\x00b"


def test_embedding_inputs_are_type_checked() -> None:
    assert _refused(openai.parse_embedding_request, orjson.dumps({"model": "m", "input": 5})).param == "input"
    body = orjson.dumps({"model": "m", "input": [[1, "a"]]})
    assert _refused(openai.parse_embedding_request, body).param == "input[0][1]"
    body = orjson.dumps({"model": "m", "input": "x", "extra": nested(MAX_DEPTH)})
    assert _refused(openai.parse_embedding_request, body).param == "extra"
