"""The simulator answers like a model: text after a tool's result, and scripted replies in every family."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import openai
import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from sluicegate.providers.simulator import create_app, parse_simulator_config
from sluicegate.providers.sse import SSEParser
from sluicegate.tokens import count_text

CONFIG = """
seed: 5
default: {output_tokens: {min: 5, max: 12}}
models:
  echo-model: {reply: echo}
  fixed-model: {reply: {type: fixed, text: "Paris is the capital of France."}}
  json-model: {reply: json}
  refusing-model: {reply: refusal}
  filtered-model: {reply: {type: content_filter, text: "Here is"}}
"""
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 1},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "What is the weather in Oslo?"}]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(parse_simulator_config(CONFIG, "<t>"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


@pytest.fixture
def sdk(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://sim/v1", api_key="sk-x", http_client=http, max_retries=0)


@pytest.fixture(params=["openai", "azure"])
def either(request: pytest.FixtureRequest, http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """The OpenAI client, and the Azure one (deployment paths), over the same simulator."""
    if request.param == "openai":
        return openai.AsyncOpenAI(base_url="http://sim/v1", api_key="sk-x", http_client=http, max_retries=0)
    return openai.AsyncAzureOpenAI(
        azure_endpoint="http://sim", api_key="sk-x", api_version="2024-10-21", http_client=http, max_retries=0
    )


async def test_an_agent_loop_ends_after_the_tool_result(either: openai.AsyncOpenAI) -> None:
    client = either
    messages: list[Any] = list(ASK)
    turns = 0
    while True:  # the loop every agent framework runs: call tools until the model answers in text
        turns += 1
        assert turns <= 3, "the model keeps calling tools"
        reply = await client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
        message = reply.choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"sky": "grey"}'})
    assert turns == 2 and reply.choices[0].finish_reason == "stop" and message.content


async def test_after_a_tool_result_a_forced_tool_choice_still_calls(sdk: openai.AsyncOpenAI) -> None:
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": WEATHER_CALL}]},
        {"role": "tool", "tool_call_id": "c1", "content": "grey"},
    ]
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        again = await sdk.chat.completions.create(
            model="gpt-4o",
            messages=history,
            tools=[WEATHER],
            tool_choice=choice,  # type: ignore[arg-type]
        )
        assert again.choices[0].finish_reason == "tool_calls"
    streamed = await sdk.chat.completions.create(model="gpt-4o", messages=history, tools=[WEATHER], stream=True)
    chunks = [chunk async for chunk in streamed]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "".join(c.choices[0].delta.content or "" for c in chunks)


WEATHER_CALL = {"name": "get_weather", "arguments": '{"city": "Oslo"}'}


async def test_gemini_and_bedrock_answer_a_tool_result_in_text(http: httpx.AsyncClient) -> None:
    gemini = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "grey"}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parametersJsonSchema": SCHEMA}]}],
    }
    reply = (await http.post("/v1beta/models/g:generateContent", json=gemini)).json()
    assert "text" in reply["candidates"][0]["content"]["parts"][0]
    bedrock = {
        "messages": [
            {"role": "user", "content": [{"text": "Weather?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "w", "input": {}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "grey"}]}}]},
        ],
        "toolConfig": {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": SCHEMA}}}]},
    }
    converse = (await http.post("/model/m/converse", json=bedrock)).json()
    assert converse["stopReason"] == "end_turn" and "text" in converse["output"]["message"]["content"][0]


async def test_echo_repeats_the_last_user_message_with_exact_usage(sdk: openai.AsyncOpenAI) -> None:
    prompt = "My card is 4111 1111 1111 1111, call me at +1 555 0100."
    messages: Any = [{"role": "system", "content": "terse"}, {"role": "user", "content": prompt}]
    whole = await sdk.chat.completions.create(model="echo-model", messages=messages)
    assert whole.choices[0].message.content == prompt and whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens == count_text(prompt)
    stream = await sdk.chat.completions.create(model="echo-model", messages=messages, stream=True)
    chunks = [chunk async for chunk in stream]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == prompt and len(pieces) > 5  # token by token, as a model streams
    capped = await sdk.chat.completions.create(model="echo-model", messages=messages, max_tokens=4)
    assert capped.choices[0].finish_reason == "length" and capped.usage and capped.usage.completion_tokens == 4


async def test_the_header_picks_the_reply_per_request(sdk: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    fixed = await sdk.chat.completions.create(
        model="gpt-4o", messages=ASK, extra_headers={"x-sim-reply": "fixed:Sunny, 21 degrees."}
    )
    assert fixed.choices[0].message.content == "Sunny, 21 degrees."
    echo = await sdk.chat.completions.create(model="fixed-model", messages=ASK, extra_headers={"x-sim-reply": "echo"})
    assert echo.choices[0].message.content == ASK[0]["content"]  # the header wins over the model's reply
    configured = await sdk.chat.completions.create(model="fixed-model", messages=ASK)
    assert configured.choices[0].message.content == "Paris is the capital of France."
    bad = await http.post("/v1/chat/completions", json={"model": "m", "messages": ASK}, headers={"x-sim-reply": "poem"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "x-sim-reply"
    no_text = await http.post(
        "/v1/chat/completions", json={"model": "m", "messages": ASK}, headers={"x-sim-reply": "fixed"}
    )
    assert no_text.status_code == 400 and "needs a text" in no_text.json()["error"]["message"]


async def test_json_reply_is_valid_for_the_requested_schema_and_deterministic(sdk: openai.AsyncOpenAI) -> None:
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}}
    first = await sdk.chat.completions.create(model="json-model", messages=ASK, response_format=response_format)
    value = orjson.loads(first.choices[0].message.content or "")
    jsonschema.validate(value, SCHEMA)
    again = await sdk.chat.completions.create(model="json-model", messages=ASK, response_format=response_format)
    assert again.choices[0].message.content == first.choices[0].message.content
    stream = await sdk.chat.completions.create(
        model="json-model", messages=ASK, response_format=response_format, stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == first.choices[0].message.content
    loose = await sdk.chat.completions.create(
        model="gpt-4o", messages=ASK, response_format={"type": "json_object"}, extra_headers={"x-sim-reply": "json"}
    )
    assert isinstance(orjson.loads(loose.choices[0].message.content or ""), dict)


async def test_refusal_comes_in_the_refusal_field_whole_and_streamed(sdk: openai.AsyncOpenAI) -> None:
    whole = await sdk.chat.completions.create(model="refusing-model", messages=ASK, tools=[WEATHER])
    message = whole.choices[0].message
    assert message.content is None and message.refusal and not message.tool_calls  # a refusal replaces the call
    assert whole.usage is not None and whole.usage.completion_tokens == count_text(message.refusal)
    stream = await sdk.chat.completions.create(model="refusing-model", messages=ASK, stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == message.refusal
    assert not any(c.choices[0].delta.content for c in chunks)


async def test_content_filter_finish_reason_in_every_family(sdk: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    whole = await sdk.chat.completions.create(model="filtered-model", messages=ASK)
    assert whole.choices[0].finish_reason == "content_filter" and whole.choices[0].message.content == "Here is"
    stream = await sdk.chat.completions.create(
        model="gpt-4o", messages=ASK, stream=True, extra_headers={"x-sim-reply": "content_filter"}
    )
    assert [c.choices[0].finish_reason async for c in stream][-1] == "content_filter"
    header = {"x-sim-reply": "content_filter"}
    anthropic_body = {"model": "c", "max_tokens": 50, "messages": ASK}
    claude = (await http.post("/v1/messages", json=anthropic_body, headers=header)).json()
    assert claude["stop_reason"] == "refusal"
    raw = (await http.post("/v1/messages", json={**anthropic_body, "stream": True}, headers=header)).content
    deltas = [orjson.loads(d) for n, d in SSEParser().feed(raw) if n == "message_delta"]
    assert deltas[0]["delta"]["stop_reason"] == "refusal"
    gemini_body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    gemini = (await http.post("/v1beta/models/g:generateContent", json=gemini_body, headers=header)).json()
    assert gemini["candidates"][0]["finishReason"] == "SAFETY"
    bedrock_body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    converse = (await http.post("/model/m/converse", json=bedrock_body, headers=header)).json()
    assert converse["stopReason"] == "content_filtered"
    buffer = EventStreamBuffer()
    buffer.add_data((await http.post("/model/m/converse-stream", json=bedrock_body, headers=header)).content)
    stops = [orjson.loads(m.payload) for m in buffer if m.headers[":event-type"] == "messageStop"]
    assert stops == [{"stopReason": "content_filtered"}]


async def test_gemini_json_reply_follows_its_response_schema(http: httpx.AsyncClient) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "Who?"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": SCHEMA},
    }
    reply = (await http.post("/v1beta/models/g:generateContent", json=body, headers={"x-sim-reply": "json"})).json()
    jsonschema.validate(orjson.loads(reply["candidates"][0]["content"]["parts"][0]["text"]), SCHEMA)
    openapi = {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]}
    body["generationConfig"] = {"responseMimeType": "application/json", "responseSchema": openapi}
    reply = (await http.post("/v1beta/models/g:generateContent", json=body, headers={"x-sim-reply": "json"})).json()
    assert isinstance(orjson.loads(reply["candidates"][0]["content"]["parts"][0]["text"])["n"], int)


def test_a_reply_config_is_checked() -> None:
    with pytest.raises(ValueError, match=r"<t>:1: default\.reply: .*needs a text"):
        parse_simulator_config("default: {reply: fixed}\n", "<t>")
    with pytest.raises(ValueError, match="text applies only"):
        parse_simulator_config("default: {reply: {type: echo, text: x}}\n", "<t>")
