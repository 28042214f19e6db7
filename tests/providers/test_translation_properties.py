"""Property tests: canonical -> provider wire -> canonical keeps messages, tools, tool calls and stop conditions."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from sluicegate.canonical import ChatRequest, ChatResponse, Usage
from sluicegate.config.schema import ProviderConfig
from sluicegate.providers.anthropic.adapter import AnthropicAdapter
from sluicegate.providers.base import Endpoint
from sluicegate.providers.bedrock.adapter import BedrockAdapter
from sluicegate.providers.gemini.adapter import GeminiAdapter
from sluicegate.wire import anthropic as anthropic_wire

TEXT = st.text(alphabet="abcdefghij KLMNOP.,!?é\n", min_size=1, max_size=20)
NAME = st.text(alphabet="abcdefghijklmnop_", min_size=1, max_size=8)
ARGS = st.dictionaries(st.sampled_from(["city", "n", "flag"]), st.one_of(st.integers(-5, 5), TEXT, st.booleans()))


@st.composite
def conversations(draw: st.DrawFn) -> ChatRequest:
    names = draw(st.lists(NAME, min_size=1, max_size=3, unique=True))
    messages: list[dict[str, Any]] = []
    if draw(st.booleans()):
        messages.append({"role": "system", "content": draw(TEXT)})
    call_number = 0
    for _ in range(draw(st.integers(1, 4))):
        messages.append({"role": "user", "content": draw(TEXT)})
        if draw(st.booleans()):
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                call_number += 1
                calls.append(
                    {
                        "id": f"call_{call_number}",
                        "type": "function",
                        "function": {
                            "name": draw(st.sampled_from(names)),
                            "arguments": orjson.dumps(draw(ARGS)).decode(),
                        },
                    }
                )
            text = draw(st.one_of(st.none(), TEXT))
            messages.append({"role": "assistant", "content": text, "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(TEXT)})
        else:
            messages.append({"role": "assistant", "content": draw(TEXT)})
    messages.append({"role": "user", "content": draw(TEXT)})
    tools = [
        {
            "type": "function",
            "function": {"name": n, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
        }
        for n in names
    ]
    params: dict[str, Any] = {"tools": tools}
    stop = draw(st.one_of(st.none(), st.lists(TEXT, min_size=1, max_size=3)))
    if stop is not None:
        params["stop"] = stop
    return ChatRequest(model="m", messages=messages, max_tokens=draw(st.integers(1, 4000)), params=params)  # type: ignore[arg-type]


Item = tuple[Any, ...]


def _merge(turns: list[tuple[str, list[Item]]], role: str, items: list[Item]) -> None:
    if turns and turns[-1][0] == role:
        turns[-1][1].extend(items)
    else:
        turns.append((role, items))


def canonical_shape(request: ChatRequest) -> tuple[list[str], list[tuple[str, list[Item]]]]:
    """What must survive: system texts, and per turn its texts, calls (id, name, args) and results (id, text)."""
    system: list[str] = []
    turns: list[tuple[str, list[Item]]] = []
    for m in request.messages:
        if m["role"] == "system":
            system.append(str(m.get("content")))
        elif m["role"] == "tool":
            _merge(turns, "user", [("result", m["tool_call_id"], m["content"])])
        elif m["role"] == "assistant":
            items: list[Item] = [("text", m["content"])] if m.get("content") else []
            items += [
                ("call", c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
                for c in m.get("tool_calls") or ()
            ]
            _merge(turns, "assistant", items)
        else:
            _merge(turns, "user", [("text", m["content"])])
    return system, turns


def _endpoint(kind: str) -> Endpoint:
    return Endpoint(kind, ProviderConfig(kind=kind, base_url="https://provider.test", aws_region="us-east-1"), "key")  # type: ignore[arg-type]


def gemini_shape(body: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[Item]]]]:
    system = [p["text"] for p in (body.get("systemInstruction") or {}).get("parts", [])]
    turns: list[tuple[str, list[Item]]] = []
    for content in body["contents"]:
        items: list[Item] = []
        for part in content["parts"]:
            if "text" in part:
                items.append(("text", part["text"]))
            elif "functionCall" in part:
                call = part["functionCall"]
                items.append(("call", call["id"], call["name"], call["args"]))
            else:
                response = part["functionResponse"]
                items.append(
                    (
                        "result",
                        response["id"],
                        response["response"].get("result", orjson.dumps(response["response"]).decode()),
                    )
                )
        _merge(turns, "assistant" if content["role"] == "model" else "user", items)
    return system, turns


def bedrock_shape(body: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[Item]]]]:
    system = [block["text"] for block in body.get("system") or ()]
    turns: list[tuple[str, list[Item]]] = []
    for message in body["messages"]:
        items: list[Item] = []
        for block in message["content"]:
            if "text" in block:
                items.append(("text", block["text"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                items.append(("call", use["toolUseId"], use["name"], use["input"]))
            else:
                result = block["toolResult"]
                items.append(("result", result["toolUseId"], result["content"][0]["text"]))
        _merge(turns, message["role"], items)
    return system, turns


@settings(max_examples=60, deadline=None)
@given(conversations())
def test_anthropic_round_trip_keeps_conversation_tools_and_stops(request: ChatRequest) -> None:
    body = orjson.loads(AnthropicAdapter().chat_request(_endpoint("anthropic"), "claude", request).body)
    back = anthropic_wire.parse_chat_request(orjson.dumps(body))
    system, turns = canonical_shape(request)
    back_system, back_turns = canonical_shape(back)
    assert back_turns == turns
    assert back_system == (["\n\n".join(system)] if system else [])
    assert [t["function"]["name"] for t in back.params["tools"]] == [
        t["function"]["name"] for t in request.params["tools"]
    ]
    assert back.params.get("stop") == request.params.get("stop")
    assert back.max_tokens == request.max_tokens


@settings(max_examples=60, deadline=None)
@given(conversations())
def test_gemini_request_keeps_conversation_tools_and_stops(request: ChatRequest) -> None:
    body = orjson.loads(GeminiAdapter().chat_request(_endpoint("gemini"), "gemini", request).body)
    assert gemini_shape(body) == canonical_shape(request)
    declared = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert declared == [t["function"]["name"] for t in request.params["tools"]]
    assert body["generationConfig"].get("stopSequences") == request.params.get("stop")
    assert body["generationConfig"]["maxOutputTokens"] == request.max_tokens


@settings(max_examples=60, deadline=None)
@given(conversations())
def test_bedrock_request_keeps_conversation_tools_and_stops(request: ChatRequest) -> None:
    endpoint = _endpoint("bedrock")
    body = orjson.loads(BedrockAdapter().chat_request(endpoint, "model", request).body)
    assert bedrock_shape(body) == canonical_shape(request)
    declared = [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]]
    assert declared == [t["function"]["name"] for t in request.params["tools"]]
    assert body["inferenceConfig"].get("stopSequences") == request.params.get("stop")


@settings(max_examples=60, deadline=None)
@given(
    text=st.one_of(st.none(), TEXT),
    calls=st.lists(st.tuples(NAME, ARGS), max_size=3),
    finish=st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
    usage=st.tuples(st.integers(0, 10**6), st.integers(0, 10**5), st.integers(0, 10**5), st.integers(0, 10**5)),
)
def test_response_through_anthropic_wire_and_back_keeps_content_calls_finish_and_usage(
    text: str | None, calls: list[tuple[str, dict[str, Any]]], finish: str, usage: tuple[int, int, int, int]
) -> None:
    fresh, output, cached, written = usage
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": f"toolu_{i}", "type": "function", "function": {"name": n, "arguments": orjson.dumps(a).decode()}}
            for i, (n, a) in enumerate(calls)
        ]
    response = ChatResponse(
        id="msg_1",
        model="m",
        created=0,
        choices=[{"index": 0, "message": message, "finish_reason": finish}],
        usage=Usage(fresh + cached + written, output, cached, 0, written),
    )
    back = AnthropicAdapter().chat_response(anthropic_wire.chat_response_body(response))
    choice = back.choices[0]
    assert choice["finish_reason"] == finish
    assert (choice["message"]["content"] or None) == (text or None)
    back_calls = [
        (c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in choice["message"].get("tool_calls", [])
    ]
    assert back_calls == calls
    assert back.usage == response.usage


def _decode_split(adapter: Any, raw: bytes, cuts: list[int]) -> list[tuple[Any, ...]]:
    framer, decoder = adapter.stream_framer(), adapter.stream_decoder()
    out: list[tuple[Any, ...]] = []
    bounds = [0, *sorted(set(cuts)), len(raw)]
    for start, end in itertools.pairwise(bounds):
        for event, data in framer.feed(raw[start:end]):
            for chunk in decoder.decode(event, data):
                out.append((orjson.dumps(chunk.choices), chunk.usage))
    assert decoder.done
    return out


def _recorded_streams() -> list[tuple[Any, bytes]]:
    from pathlib import Path

    from sluicegate.providers.simulator.bedrock_format import event

    fixtures = Path(__file__).parents[1] / "fixtures"
    bedrock = b"".join(event(n, p) for n, p in orjson.loads((fixtures / "bedrock" / "stream_tools.json").read_bytes()))
    return [
        (AnthropicAdapter(), (fixtures / "anthropic" / "stream_tools.sse").read_bytes()),
        (GeminiAdapter(), (fixtures / "gemini" / "stream_text.sse").read_bytes()),
        (GeminiAdapter(), (fixtures / "gemini" / "stream_tools.sse").read_bytes()),
        (BedrockAdapter(), bedrock),
    ]


@settings(max_examples=80, deadline=None)
@given(which=st.integers(0, 3), cuts=st.lists(st.integers(0, 4000), max_size=40))
def test_stream_decoding_does_not_depend_on_where_the_network_splits_the_bytes(which: int, cuts: list[int]) -> None:
    adapter, raw = _recorded_streams()[which]
    assert _decode_split(adapter, raw, [c % (len(raw) + 1) for c in cuts]) == _decode_split(adapter, raw, [])


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)


def _shaped(keys: dict[str, Any]) -> Any:
    """Dicts with the provider's own keys, holding anything."""
    return st.fixed_dictionaries({}, optional={k: v | JSON_VALUE for k, v in keys.items()})


ANTHROPIC_BODY = _shaped(
    {
        "type": st.sampled_from(
            ["message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop", "error"]
        ),
        "content": st.lists(
            _shaped({"type": st.sampled_from(["text", "tool_use"]), "text": JSON_VALUE, "input": JSON_VALUE})
        ),
        "stop_reason": st.sampled_from(["end_turn", "tool_use", "weird"]),
        "usage": _shaped({"input_tokens": st.integers(0, 9), "output_tokens": st.integers(0, 9)}),
        "delta": _shaped(
            {"type": st.sampled_from(["text_delta", "input_json_delta"]), "text": JSON_VALUE, "stop_reason": JSON_VALUE}
        ),
        "content_block": _shaped({"type": st.just("tool_use"), "id": JSON_VALUE, "name": JSON_VALUE}),
        "message": _shaped({"id": JSON_VALUE, "usage": JSON_VALUE}),
        "index": JSON_VALUE,
        "error": JSON_VALUE,
    }
)
GEMINI_BODY = _shaped(
    {
        "candidates": st.lists(
            _shaped(
                {
                    "content": _shaped({"parts": st.lists(_shaped({"text": JSON_VALUE, "functionCall": JSON_VALUE}))}),
                    "finishReason": st.sampled_from(["STOP", "SAFETY", "MAX_TOKENS", "NEW_REASON"]),
                    "index": JSON_VALUE,
                }
            ),
            max_size=2,
        ),
        "usageMetadata": _shaped({"promptTokenCount": st.integers(0, 9), "thoughtsTokenCount": st.integers(0, 9)}),
        "promptFeedback": JSON_VALUE,
    }
)
BEDROCK_BODY = _shaped(
    {
        "output": _shaped(
            {"message": _shaped({"content": st.lists(_shaped({"text": JSON_VALUE, "toolUse": JSON_VALUE}))})}
        ),
        "stopReason": st.sampled_from(["end_turn", "tool_use", "odd"]),
        "usage": _shaped({"inputTokens": st.integers(0, 9)}),
        "delta": _shaped({"text": JSON_VALUE, "toolUse": JSON_VALUE}),
        "start": _shaped({"toolUse": JSON_VALUE}),
        "contentBlockIndex": JSON_VALUE,
    }
)
BEDROCK_EVENTS = st.sampled_from(["messageStart", "contentBlockStart", "contentBlockDelta", "messageStop", "metadata"])


@settings(max_examples=300, deadline=None)
@given(
    family=st.sampled_from(["anthropic", "gemini", "bedrock"]),
    data=st.data(),
)
def test_any_provider_body_is_a_response_or_an_upstream_error_never_a_crash(family: str, data: st.DataObject) -> None:
    from sluicegate.errors import UpstreamError

    adapter = {"anthropic": AnthropicAdapter(), "gemini": GeminiAdapter(), "bedrock": BedrockAdapter()}[family]
    strategy = {"anthropic": ANTHROPIC_BODY, "gemini": GEMINI_BODY, "bedrock": BEDROCK_BODY}[family]
    body = orjson.dumps(data.draw(strategy))
    try:
        adapter.chat_response(body)
    except UpstreamError:
        pass
    decoder = adapter.stream_decoder()
    event = data.draw(BEDROCK_EVENTS) if family == "bedrock" else None
    try:
        for _ in range(2):
            decoder.decode(event, body)
    except UpstreamError:
        pass
