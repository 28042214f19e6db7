from __future__ import annotations

import orjson
import pytest

from sluicegate.canonical import ChatChunk, ChatRequest, Usage
from sluicegate.errors import GatewayError
from sluicegate.wire.openai import OpenAIStreamEncoder, parse_chat_request


def _body(**fields: object) -> bytes:
    return orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def test_uninterpreted_fields_are_kept_verbatim() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = parse_chat_request(_body(tools=tools, seed=3, logit_bias={"1": 2}, max_tokens=9, top_k=[{"x": 1}]))
    assert request.params == {"tools": tools, "seed": 3, "logit_bias": {"1": 2}, "max_tokens": 9, "top_k": [{"x": 1}]}
    assert request.max_tokens == 9


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert parse_chat_request(_body(max_tokens=9, max_completion_tokens=20)).max_tokens == 20


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (orjson.dumps({"messages": []}), "model"),
        (_body(messages=[]), "messages"),
        (_body(messages=[{"role": "user", "content": [{"text": "x"}]}]), "messages[0].content[0].type"),
        (_body(stream="yes"), "stream"),
        (_body(max_tokens=0), "max_tokens"),
        (_body(stream_options={"include_usage": True}), "stream_options"),
    ],
)
def test_bad_requests_name_the_field(body: bytes, param: str) -> None:
    with pytest.raises(GatewayError) as info:
        parse_chat_request(body)
    assert info.value.status == 400
    assert info.value.param == param


def _chunk(usage: Usage | None = None, choices: list | None = None) -> ChatChunk:
    return ChatChunk(id="c", model="m", created=1, choices=choices if choices is not None else [], usage=usage)


def test_usage_chunk_is_stripped_unless_asked_for() -> None:
    usage_chunk = _chunk(Usage(3, 4))
    plain = OpenAIStreamEncoder(ChatRequest("m", [], stream=True, include_usage=False))
    assert plain.encode(usage_chunk) == b""
    content = plain.encode(_chunk(choices=[{"index": 0, "delta": {"content": "a"}}]))
    assert b'"usage"' not in content
    asked = OpenAIStreamEncoder(ChatRequest("m", [], stream=True, include_usage=True))
    event = orjson.loads(asked.encode(usage_chunk)[len(b"data: ") :])
    assert event["usage"]["prompt_tokens"] == 3 and event["usage"]["completion_tokens"] == 4
    assert event["choices"] == []
