"""The official openai SDK, sync and async, against the real gateway and simulator processes."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from sluicegate.tokens import count_chat_prompt, count_text
from tests.conftest import MASTER_KEY, Proc

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name three rivers in Europe."},
]


@pytest.fixture
def client(gateway: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)


@pytest.fixture
def aclient(gateway: Proc) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)


def test_chat_completion_answers_with_exact_usage(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert text
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_chat_prompt(MESSAGES)
    assert completion.usage.completion_tokens == count_text(text)
    assert raw.headers["x-sluice-request-id"].startswith("req_")
    assert raw.headers["x-sluice-deployment"] == "sim/gpt-4o-mini"


def test_stream_without_usage_request_has_no_usage_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert len(chunks) > 3
    assert all(chunk.choices for chunk in chunks), "the usage-only chunk must be stripped"
    assert all(chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert count_text(text) >= 8


def test_stream_with_include_usage_ends_with_exact_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert last.usage.completion_tokens == count_text(text)
    assert last.usage.prompt_tokens == count_chat_prompt(MESSAGES)


def test_uninterpreted_parameters_reach_the_upstream_unchanged(
    client: openai.OpenAI, sim_control: httpx.Client
) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                    "required": ["city", "days"],
                },
            },
        }
    ]
    completion = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
        seed=1234,
        logprobs=True,
        top_logprobs=2,
        n=1,
        temperature=0.3,
        response_format={"type": "text"},
        max_tokens=50,
    )
    sent = sim_control.get("/_sim/stats").json()["models"]["gpt-4o-mini"]["last_request"]
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"
    assert sent["seed"] == 1234
    assert sent["logprobs"] is True and sent["top_logprobs"] == 2
    assert sent["n"] == 1 and sent["temperature"] == 0.3
    assert sent["response_format"] == {"type": "text"}
    assert sent["max_tokens"] == 50
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    assert isinstance(arguments["city"], str) and isinstance(arguments["days"], int)


def test_upstream_rejecting_credentials_is_502_without_detail(client: openai.OpenAI) -> None:
    # The simulator requires a key; this provider has none configured (the others read it from the env).
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="no-credential", messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.code == "auth"
    assert "credentials" in info.value.message


def test_streamed_tool_call_arrives_in_fragments(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            },
        }
    ]
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=tools, stream=True))  # type: ignore[arg-type]
    fragments = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert fragments
    assert fragments[0][0].function.name == "lookup"  # type: ignore[union-attr]
    arguments = "".join(f[0].function.arguments or "" for f in fragments)  # type: ignore[union-attr]
    assert isinstance(json.loads(arguments)["q"], str)
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta gamma"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) > 8
    assert result.usage.prompt_tokens == count_text("alpha") + count_text("beta gamma")


def test_model_list_names_configured_models(client: openai.OpenAI) -> None:
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models["gpt-4o-mini"] == "openai"
    assert "text-embedding-3-small" in models


async def test_async_client_plain_and_stream(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content
    stream = await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


# -- errors --------------------------------------------------------------------------------------


def test_wrong_key_is_authentication_error(gateway: Proc) -> None:
    bad = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 401
    assert "sk-wrong" not in str(info.value.body)


def test_missing_key_is_401(gateway: Proc) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert "no-such-model" in info.value.message


def test_schema_error_is_bad_request_naming_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "wizard", "content": "hi"}])  # type: ignore[list-item]
    assert info.value.param == "messages[0].role"


def test_invalid_json_is_400_in_openai_shape(gateway: Proc) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "JSON" in error["message"]


def test_body_over_limit_is_413(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x" * 70000}])
    assert info.value.status_code == 413


def test_upstream_429_is_rate_limit_error_with_retry_after(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    sim_control.put("/_sim/faults/faulty-model", json={"faults": [{"type": "rate_limit", "retry_after": 7}]})
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="faulty", messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limited"


@pytest.mark.parametrize(("fault", "status"), [("server_error", 502), ("unavailable", 503)])
def test_upstream_failures_map_to_gateway_statuses(
    client: openai.OpenAI, sim_control: httpx.Client, fault: str, status: int
) -> None:
    sim_control.put("/_sim/faults/faulty-model", json={"faults": [{"type": fault}]})
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="faulty", messages=MESSAGES)
    assert info.value.status_code == status
    assert isinstance(info.value, openai.InternalServerError)


def test_stream_that_fails_before_first_byte_gets_a_proper_status(
    client: openai.OpenAI, sim_control: httpx.Client
) -> None:
    sim_control.put("/_sim/faults/faulty-model", json={"faults": [{"type": "server_error"}]})
    with pytest.raises(openai.InternalServerError) as info:
        list(client.chat.completions.create(model="faulty", messages=MESSAGES, stream=True))
    assert info.value.status_code == 502


def test_upstream_hang_is_504(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    sim_control.put("/_sim/faults/hang-model", json={"faults": [{"type": "hang"}]})
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="hangs", messages=MESSAGES)
    assert info.value.status_code == 504
    assert time.monotonic() - started < 5


def test_reset_mid_stream_ends_with_error_event(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    sim_control.put("/_sim/faults/faulty-model", json={"faults": [{"type": "reset", "after_tokens": 3}]})
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="faulty", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert received, "chunks before the reset reach the client"
    assert "closed the connection" in str(info.value)


def test_malformed_stream_ends_with_error_event(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    sim_control.put("/_sim/faults/faulty-model", json={"faults": [{"type": "malformed_sse", "after_tokens": 2}]})
    with pytest.raises(openai.APIError) as info:
        list(client.chat.completions.create(model="faulty", messages=MESSAGES, stream=True))
    assert "malformed" in str(info.value)


def test_client_disconnect_cancels_the_upstream_stream(gateway: Proc, sim_control: httpx.Client) -> None:
    before = sim_control.get("/_sim/stats").json()["models"].get("slow-model", {}).get("streams_cancelled", 0)
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "slow", "messages": MESSAGES, "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        stats = sim_control.get("/_sim/stats").json()["models"]["slow-model"]
        if stats["streams_cancelled"] > before:
            break
        time.sleep(0.05)
    assert stats["streams_cancelled"] == before + 1
    assert stats["in_flight"] == 0
