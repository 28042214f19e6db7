"""The openai SDK against every provider family, through the real gateway and simulator processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from sluicegate.tokens import count_chat_prompt, count_text
from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, start_process
from tests.e2e.families import FAMILIES, families_gateway  # noqa: F401

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three rivers in Europe."},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 2},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                },
                "required": ["city", "unit", "days"],
            },
        },
    }
]
ALL = list(FAMILIES)


@pytest.fixture
def client(families_gateway: Proc) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=f"{families_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def _valid_weather(arguments: str) -> None:
    args = orjson.loads(arguments)
    assert isinstance(args["city"], str) and len(args["city"]) >= 2
    assert args["unit"] in ("celsius", "fahrenheit")
    assert 1 <= args["days"] <= 7


def test_models_lists_every_family_as_owner(client: openai.OpenAI) -> None:
    owners = {m.id: m.owned_by for m in client.models.list().data}
    for family in FAMILIES:
        assert owners[f"{family}-chat"] == family


@pytest.mark.parametrize("family", ALL)
def test_plain_completion_with_exact_usage(client: openai.OpenAI, family: str) -> None:
    raw = client.chat.completions.with_raw_response.create(model=f"{family}-chat", messages=MESSAGES)  # type: ignore[arg-type]
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_chat_prompt(MESSAGES)
    assert completion.usage.completion_tokens == count_text(text)
    assert raw.headers["x-sluice-deployment"].startswith(f"sim-{family}/")


@pytest.mark.parametrize("family", ALL)
def test_stream_usage_equals_the_whole_responses_and_the_text(client: openai.OpenAI, family: str) -> None:
    whole = client.chat.completions.create(model=f"{family}-chat", messages=MESSAGES)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model=f"{family}-chat",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content  # the simulator is deterministic per request
    usage = chunks[-1].usage
    assert usage is not None and not chunks[-1].choices
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def _native_usage(simulator: Proc, family: str) -> tuple[int, int]:
    """What the simulator itself reports, in its own format, for the same conversation."""
    model = FAMILIES[family]
    headers = {"authorization": f"Bearer {UPSTREAM_KEY}", "x-api-key": UPSTREAM_KEY, "x-goog-api-key": UPSTREAM_KEY}
    if family == "anthropic":
        body = {"model": model, "max_tokens": 4096, "system": MESSAGES[0]["content"], "messages": MESSAGES[1:]}
        usage = httpx.post(f"{simulator.url}/v1/messages", json=body, headers=headers).json()["usage"]
        return usage["input_tokens"], usage["output_tokens"]
    if family == "gemini":
        body = {
            "systemInstruction": {"parts": [{"text": MESSAGES[0]["content"]}]},
            "contents": [{"role": "user", "parts": [{"text": MESSAGES[1]["content"]}]}],
        }
        usage = httpx.post(f"{simulator.url}/v1beta/models/{model}:generateContent", json=body, headers=headers).json()
        return usage["usageMetadata"]["promptTokenCount"], usage["usageMetadata"]["candidatesTokenCount"]
    body = {
        "system": [{"text": MESSAGES[0]["content"]}],
        "messages": [{"role": "user", "content": [{"text": MESSAGES[1]["content"]}]}],
    }
    usage = httpx.post(f"{simulator.url}/model/{model}/converse", json=body, headers=headers).json()["usage"]
    return usage["inputTokens"], usage["outputTokens"]


@pytest.mark.parametrize("family", ["anthropic", "gemini", "bedrock"])
def test_final_stream_chunk_usage_equals_the_simulators_own(
    client: openai.OpenAI, simulator: Proc, family: str
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=f"{family}-chat",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == _native_usage(simulator, family)


@pytest.mark.parametrize("family", ALL)
def test_tool_call_round_trip(client: openai.OpenAI, family: str) -> None:
    model = f"{family}-chat"
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.chat.completions.create(model=model, messages=ask, tools=TOOLS)  # type: ignore[arg-type]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    _valid_weather(call.function.arguments)  # type: ignore[union-attr]
    history = [
        *ask,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 4, "sky": "grey"}'},
    ]
    # Tools are still offered, as an agent loop offers them: given the result, the model answers in text.
    final = client.chat.completions.create(model=model, messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert final.choices[0].finish_reason == "stop"
    assert final.choices[0].message.content
    assert final.usage is not None and final.usage.prompt_tokens > first.usage.prompt_tokens  # type: ignore[union-attr]


@pytest.mark.parametrize("family", ALL)
def test_streamed_tool_call_reassembles_under_one_index(client: openai.OpenAI, family: str) -> None:
    stream = client.chat.completions.create(
        model=f"{family}-chat",
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
    )
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    finish = []
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")  # type: ignore[union-attr]
                if call.function and call.function.name:
                    names[call.index] = call.function.name
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert list(arguments) == [0] and names == {0: "get_weather"}
    _valid_weather(arguments[0])
    assert finish == ["tool_calls"]


@pytest.mark.parametrize(
    ("family", "fault", "error"),
    [
        ("anthropic", "unavailable", openai.InternalServerError),  # Anthropic's 529 overloaded_error -> 503
        ("gemini", "rate_limit", openai.RateLimitError),  # RESOURCE_EXHAUSTED
        ("bedrock", "rate_limit", openai.RateLimitError),  # ThrottlingException
        ("azure", "server_error", openai.APIStatusError),
    ],
)
def test_provider_errors_reach_the_client_classified(
    client: openai.OpenAI, sim_control: httpx.Client, family: str, fault: str, error: type[Exception]
) -> None:
    rule = {"type": fault, "retry_after": 1} if fault != "server_error" else {"type": fault}
    sim_control.put(f"/_sim/faults/faulty-{family}", json={"faults": [rule]}).raise_for_status()
    with pytest.raises(error) as info:
        client.chat.completions.create(model=f"{family}-faulty", messages=MESSAGES)  # type: ignore[arg-type]
    expected = {"unavailable": "overloaded", "rate_limit": "rate_limited", "server_error": "server_error"}[fault]
    assert info.value.code == expected  # type: ignore[attr-defined]


def test_context_window_errors_are_recognised_per_family(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    long_prompt = [{"role": "user", "content": "word " * 140_000}]
    for family in ("anthropic", "gemini", "bedrock"):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=f"{family}-faulty", messages=long_prompt)  # type: ignore[arg-type]
        assert info.value.code == "context_window", family


def test_embeddings_model_is_listed_and_served(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embed-fam", input="hello world")
    assert len(result.data[0].embedding) > 0


@pytest.mark.parametrize("family", ["anthropic", "gemini", "bedrock"])
def test_an_upstream_failure_mid_stream_ends_the_stream_with_an_error(
    client: openai.OpenAI, sim_control: httpx.Client, family: str
) -> None:
    sim_control.put("/_sim/faults/slow-model", json={"faults": [{"type": "malformed_sse", "after_tokens": 4}]})
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model=f"{family}-paced", messages=MESSAGES, stream=True):  # type: ignore[arg-type]
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received), "tokens before the fault reached the client"
    assert "server_error" in str(info.value.body) or "Upstream" in info.value.message


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def _image_in(family: str, request: dict[str, Any]) -> object:
    """Where the image sits in the upstream request the simulator received."""
    if family == "gemini":
        return request["contents"][0]["parts"][1]
    return request["messages"][0]["content"][1]


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("anthropic", {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}),
        ("gemini", {"inlineData": {"mimeType": "image/png", "data": PNG}}),
        ("bedrock", {"image": {"format": "png", "source": {"bytes": PNG}}}),
        ("azure", {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}),
    ],
)
def test_images_reach_each_provider_in_its_own_shape(
    client: openai.OpenAI, simulator: Proc, family: str, expected: dict[str, object]
) -> None:
    content = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    completion = client.chat.completions.create(model=f"{family}-chat", messages=[{"role": "user", "content": content}])  # type: ignore[arg-type,misc]
    assert completion.choices[0].message.content
    stats = httpx.get(f"{simulator.url}/_sim/stats").json()["models"][FAMILIES[family]]
    assert _image_in(family, stats["last_request"]) == expected


def test_the_demo_serves_every_family_with_its_owner(tmp_path: Path) -> None:
    port = free_port()
    demo = start_process(["serve", "--demo", "--port", str(port)], port, tmp_path, "demo", ready_path="/health/ready")
    try:
        client = openai.OpenAI(base_url=f"{demo.url}/v1", api_key="sk-sluice-demo", max_retries=0, timeout=30)
        owners = {m.id: m.owned_by for m in client.models.list().data}
        assert set(owners.values()) >= {"openai", "anthropic", "gemini", "bedrock", "azure"}
        for model, owner in owners.items():
            if model.startswith("text-embedding"):
                assert client.embeddings.create(model=model, input="hi").data
                continue
            reply = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=8
            )
            assert reply.choices[0].message.content, (model, owner)
    finally:
        demo.stop()
