"""Chat completions, embeddings and models through the official openai SDK, against a real server."""

from __future__ import annotations

import base64
import json
import math
import struct
from typing import Any

import aiohttp
import openai
import pytest

from sluicegate.providers.simulator import ModelBehaviour, SimulatorConfig
from sluicegate.tokens import count_chat_prompt, count_text

from .conftest import RunningSimulator, StartSimulator

MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Tell me about rivers."},
]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 3},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "hourly": {"type": "boolean"},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
                "where": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat", "lon"],
                },
                "optional_note": {"type": "string"},
            },
            "required": ["city", "days", "unit", "hourly", "tags", "where"],
        },
    },
}


def assert_matches_weather_schema(arguments: dict[str, Any]) -> None:
    assert set(arguments) == {"city", "days", "unit", "hourly", "tags", "where"}
    assert isinstance(arguments["city"], str) and len(arguments["city"]) >= 3
    assert isinstance(arguments["days"], int) and 1 <= arguments["days"] <= 7
    assert arguments["unit"] in ("celsius", "fahrenheit")
    assert isinstance(arguments["hourly"], bool)
    assert len(arguments["tags"]) >= 2 and all(isinstance(tag, str) for tag in arguments["tags"])
    assert all(isinstance(arguments["where"][k], float) for k in ("lat", "lon"))


async def raw_post(sim: RunningSimulator, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sim.url + path,
            data=body if isinstance(body, bytes) else None,
            json=None if isinstance(body, bytes) else body,
            headers=headers,
        ) as response,
    ):
        return response.status, await response.read()


async def test_plain_chat_has_openai_shape_and_real_token_counts(sim: RunningSimulator) -> None:
    completion = await sim.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.system_fingerprint and completion.system_fingerprint.startswith("fp_")
    [choice] = completion.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    text = choice.message.content
    assert text and text[0].isupper() and text.endswith(".")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens == count_chat_prompt(MESSAGES)
    assert usage.completion_tokens == count_text(text)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details and usage.completion_tokens_details.reasoning_tokens == 0


async def test_every_generated_piece_is_one_token_for_many_lengths(start_simulator: StartSimulator) -> None:
    config = SimulatorConfig(seed=3, default=ModelBehaviour(output_tokens={"min": 1, "max": 300}))
    client = (await start_simulator(config)).client()
    for i in range(30):
        messages: Any = [{"role": "user", "content": f"question {i}"}]
        completion = await client.chat.completions.create(model="m", messages=messages)
        text = completion.choices[0].message.content or ""
        assert completion.usage and completion.usage.completion_tokens == count_text(text)


async def test_stream_with_usage_matches_the_text_received(sim: RunningSimulator) -> None:
    stream = await sim.client().chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    first, *middle, finish, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert all(len(chunk.choices[0].delta.content or "") > 0 for chunk in middle)
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1])
    assert usage_chunk.usage.completion_tokens == count_text(text) == len(middle)
    assert usage_chunk.usage.prompt_tokens == count_chat_prompt(MESSAGES)
    assert len({chunk.id for chunk in chunks}) == 1 and first.id.startswith("chatcmpl-")


async def test_stream_wire_format_is_sse_ending_with_done(sim: RunningSimulator) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 3}
    status, raw = await raw_post(sim, "/v1/chat/completions", body)
    assert status == 200
    events = raw.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert all("usage" not in chunk for chunk in chunks)  # only with stream_options.include_usage
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, None, None, "length"]


async def test_max_tokens_caps_output_with_finish_reason_length(sim: RunningSimulator) -> None:
    client = sim.client()
    for limit_name in ("max_tokens", "max_completion_tokens"):
        limits: dict[str, Any] = {limit_name: 4}
        completion = await client.chat.completions.create(model="m", messages=MESSAGES, **limits)
        assert completion.choices[0].finish_reason == "length"
        assert completion.usage and completion.usage.completion_tokens == 4
        assert count_text(completion.choices[0].message.content or "") == 4


async def test_n_gives_that_many_choices(sim: RunningSimulator) -> None:
    completion = await sim.client().chat.completions.create(model="m", messages=MESSAGES, n=3)
    assert [choice.index for choice in completion.choices] == [0, 1, 2]
    total = sum(count_text(choice.message.content or "") for choice in completion.choices)
    assert completion.usage and completion.usage.completion_tokens == total

    stream = await sim.client().chat.completions.create(model="m", messages=MESSAGES, n=2, stream=True)
    texts = ["", ""]
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert all(texts)


async def test_tools_give_a_schema_valid_tool_call(sim: RunningSimulator) -> None:
    completion = await sim.client().chat.completions.create(model="m", messages=MESSAGES, tools=[WEATHER_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.type == "function" and call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert_matches_weather_schema(arguments)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(arguments, WEATHER_TOOL["function"]["parameters"])


async def test_streamed_tool_call_comes_in_fragments(sim: RunningSimulator) -> None:
    stream = await sim.client().chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=[WEATHER_TOOL],
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    deltas = [chunk.choices[0].delta.tool_calls for chunk in chunks[:-1]]
    opening = deltas[0][0]  # type: ignore[index]
    assert opening.index == 0 and opening.id and opening.id.startswith("call_")
    assert opening.function and opening.function.name == "get_weather" and opening.function.arguments == ""
    fragments = [d[0].function.arguments for d in deltas[1:]]  # type: ignore[index,union-attr]
    assert len(fragments) > 3 and all(d[0].id is None for d in deltas[1:])  # type: ignore[index]
    assert_matches_weather_schema(json.loads("".join(fragments)))  # type: ignore[arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_tool_choice_forces_a_function_or_turns_tools_off(sim: RunningSimulator) -> None:
    other = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    tools: Any = [WEATHER_TOOL, other]
    client = sim.client()
    forced = await client.chat.completions.create(
        model="m", messages=MESSAGES, tools=tools, tool_choice={"type": "function", "function": {"name": "lookup"}}
    )
    call = (forced.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {}  # type: ignore[union-attr]
    off = await client.chat.completions.create(model="m", messages=MESSAGES, tools=tools, tool_choice="none")
    assert off.choices[0].finish_reason == "stop" and off.choices[0].message.tool_calls is None


async def test_same_seed_same_reply_and_different_seed_different_reply(start_simulator: StartSimulator) -> None:
    async def reply(seed: int, messages: Any = MESSAGES) -> str:
        sim = await start_simulator(SimulatorConfig(seed=seed))
        completion = await sim.client().chat.completions.create(model="m", messages=messages)
        return completion.choices[0].message.content or ""

    first = await reply(11)
    assert await reply(11) == first
    assert await reply(12) != first
    assert await reply(11, [{"role": "user", "content": "something else"}]) != first


async def test_streamed_and_whole_replies_agree(sim: RunningSimulator) -> None:
    client = sim.client()
    whole = await client.chat.completions.create(model="m", messages=MESSAGES)
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed == whole.choices[0].message.content


async def test_embeddings_are_deterministic_normalised_and_similar_for_similar_text(
    start_simulator: StartSimulator,
) -> None:
    config = SimulatorConfig(models={"embedder": ModelBehaviour(embedding_dimensions=256)})
    client = (await start_simulator(config)).client()
    texts = ["the river runs to the sea", "the river runs to the ocean", "quarterly tax filing deadline"]
    result = await client.embeddings.create(model="embedder", input=texts)

    vectors = [item.embedding for item in result.data]
    assert [item.index for item in result.data] == [0, 1, 2]
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-6) for v in vectors)  # float32
    assert result.usage.prompt_tokens == sum(count_text(t) for t in texts) == result.usage.total_tokens

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > 0.5 > cosine(vectors[0], vectors[2])
    again = await client.embeddings.create(model="embedder", input=texts[0])
    assert again.data[0].embedding == vectors[0]

    sized = await client.embeddings.create(model="embedder", input=texts[0], dimensions=64)
    assert len(sized.data[0].embedding) == 64
    packed = await client.embeddings.create(model="embedder", input=texts[0], encoding_format="base64")
    raw = base64.b64decode(packed.data[0].embedding)  # type: ignore[arg-type]
    unpacked = struct.unpack("<256f", raw)
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(unpacked, vectors[0], strict=True))


async def test_models_lists_configured_models(start_simulator: StartSimulator) -> None:
    config = SimulatorConfig(models={"alpha": ModelBehaviour(), "beta": ModelBehaviour()})
    client = (await start_simulator(config)).client()
    page = await client.models.list()
    assert [model.id for model in page.data] == ["alpha", "beta"]
    assert all(model.object == "model" for model in page.data)
    assert (await client.models.retrieve("anything")).id == "anything"


async def test_bad_json_unknown_path_and_missing_fields_are_openai_errors(sim: RunningSimulator) -> None:
    status, raw = await raw_post(sim, "/v1/chat/completions", b"{not json")
    assert status == 400 and json.loads(raw)["error"]["type"] == "invalid_request_error"
    status, raw = await raw_post(sim, "/v1/nowhere", {"x": 1})
    assert status == 404 and json.loads(raw)["error"]["message"] == "Invalid URL (POST /v1/nowhere)"
    with pytest.raises(openai.BadRequestError) as info:
        await sim.client().chat.completions.create(model="m", messages=[])
    assert info.value.param == "messages"
    status, raw = await raw_post(sim, "/v1/chat/completions", {"messages": MESSAGES})
    assert status == 400 and json.loads(raw)["error"]["code"] == "missing_required_parameter"


async def test_api_key_is_required_when_configured(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SimulatorConfig(api_key="sk-right-key-123456"))
    with pytest.raises(openai.AuthenticationError) as info:
        await sim.client(api_key="sk-wrong-key-654321").chat.completions.create(model="m", messages=MESSAGES)
    assert info.value.code == "invalid_api_key"
    assert "sk-wrong-key-654321" not in info.value.message
    ok = await sim.client(api_key="sk-right-key-123456").chat.completions.create(model="m", messages=MESSAGES)
    assert ok.choices[0].message.content
    status, _ = await sim.control("GET", "/_sim/stats")
    assert status == 200


async def test_context_window_overflow_is_context_length_exceeded(start_simulator: StartSimulator) -> None:
    sim = await start_simulator(SimulatorConfig(models={"tiny": ModelBehaviour(context_window=50)}))
    messages = [{"role": "user", "content": "word " * 80}]
    with pytest.raises(openai.BadRequestError) as info:
        await sim.client().chat.completions.create(model="tiny", messages=messages)  # type: ignore[arg-type]
    assert info.value.code == "context_length_exceeded"
    prompt = count_chat_prompt(messages)
    assert info.value.body["message"] == (  # type: ignore[index]
        f"This model's maximum context length is 50 tokens. However, your messages resulted in {prompt} "
        "tokens. Please reduce the length of the messages."
    )
    fits = [{"role": "user", "content": "word " * 30}]
    completion = await sim.client().chat.completions.create(model="tiny", messages=fits)  # type: ignore[arg-type]
    assert completion.usage and completion.usage.total_tokens <= 50
