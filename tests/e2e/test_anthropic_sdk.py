"""The official anthropic SDK against /v1/messages, served by OpenAI, Gemini, Anthropic, Bedrock and Azure upstreams."""

from __future__ import annotations

import anthropic
import httpx
import orjson
import pytest

from sluicegate.tokens import count_chat_prompt, count_text
from tests.conftest import MASTER_KEY, Proc
from tests.e2e.families import families_gateway  # noqa: F401

SYSTEM = "You are terse."
MESSAGES = [{"role": "user", "content": "Name three rivers in Europe."}]
TOOL = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 3}},
        "required": ["city", "days"],
    },
}
SERVED_BY = ["openai-chat", "gemini-chat", "anthropic-chat", "bedrock-chat", "azure-chat"]


@pytest.fixture
def client(families_gateway: Proc) -> anthropic.Anthropic:  # noqa: F811
    return anthropic.Anthropic(base_url=families_gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=30)


@pytest.mark.parametrize("model", SERVED_BY)
def test_plain_message(client: anthropic.Anthropic, model: str) -> None:
    message = client.messages.create(model=model, max_tokens=200, system=SYSTEM, messages=MESSAGES)  # type: ignore[arg-type]
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model, "the model that answered is named, whichever family served it"
    assert message.stop_reason == "end_turn"
    [block] = message.content
    assert block.type == "text" and block.text
    expected_prompt = count_chat_prompt([{"role": "system", "content": SYSTEM}, *MESSAGES])
    assert message.usage.input_tokens == expected_prompt
    assert message.usage.output_tokens == count_text(block.text)


@pytest.mark.parametrize("model", SERVED_BY)
def test_streamed_message_has_the_exact_event_sequence_and_final_usage(client: anthropic.Anthropic, model: str) -> None:
    whole = client.messages.create(model=model, max_tokens=200, system=SYSTEM, messages=MESSAGES)  # type: ignore[arg-type]
    with client.messages.stream(model=model, max_tokens=200, system=SYSTEM, messages=MESSAGES) as stream:  # type: ignore[arg-type]
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    raw_kinds = [k for k in kinds if k not in ("text", "input_json")]  # the SDK's own derived events
    assert raw_kinds[:2] == ["message_start", "content_block_start"]
    assert raw_kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(raw_kinds[2:-3]) == {"content_block_delta"}
    assert final.content[0].text == whole.content[0].text  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.model, "the model that answered is named, whichever family served it"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        whole.usage.input_tokens,
        whole.usage.output_tokens,
    )


@pytest.mark.parametrize("model", SERVED_BY)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_round_trip(client: anthropic.Anthropic, model: str, streamed: bool) -> None:
    ask = [{"role": "user", "content": "Weather in Lisbon for two days?"}]
    if streamed:
        with client.messages.stream(model=model, max_tokens=300, messages=ask, tools=[TOOL]) as stream:  # type: ignore[arg-type,list-item]
            first = stream.get_final_message()
    else:
        first = client.messages.create(model=model, max_tokens=300, messages=ask, tools=[TOOL])  # type: ignore[arg-type,list-item]
    assert first.stop_reason == "tool_use"
    [use] = [b for b in first.content if b.type == "tool_use"]
    assert use.name == "get_weather"
    assert isinstance(use.input["city"], str) and 1 <= use.input["days"] <= 3  # type: ignore[index]
    history = [
        *ask,
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 24C"}]},
    ]
    # OpenAI-format models keep calling while tools are offered, so the final turn there says "none".
    choice = {"tool_choice": {"type": "none"}} if model in ("openai-chat", "azure-chat") else {}
    final = client.messages.create(model=model, max_tokens=300, messages=history, tools=[TOOL], **choice)  # type: ignore[arg-type,list-item]
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text" and final.content[0].text


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(model="openai-chat", system=SYSTEM, messages=MESSAGES)  # type: ignore[arg-type]
    assert counted.input_tokens == count_chat_prompt([{"role": "system", "content": SYSTEM}, *MESSAGES])


def test_errors_are_anthropic_shaped_and_map_to_sdk_exceptions(
    client: anthropic.Anthropic, sim_control: httpx.Client
) -> None:
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(model="openai-chat", max_tokens=0, messages=MESSAGES)  # type: ignore[arg-type]
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    wrong_key = anthropic.Anthropic(base_url=str(client.base_url), api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        wrong_key.messages.create(model="openai-chat", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="no-such-model", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    sim_control.put("/_sim/faults/faulty-gemini", json={"faults": [{"type": "rate_limit", "retry_after": 1}]})
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.create(model="gemini-faulty", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.parametrize("model", ["openai-paced", "gemini-paced"])
def test_an_upstream_failure_mid_stream_is_an_anthropic_error_event(
    client: anthropic.Anthropic, sim_control: httpx.Client, model: str
) -> None:
    sim_control.put("/_sim/faults/slow-model", json={"faults": [{"type": "reset", "after_tokens": 4}]})
    text = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(model=model, max_tokens=200, messages=MESSAGES) as stream,  # type: ignore[arg-type]
    ):
        for piece in stream.text_stream:
            text.append(piece)
    assert "".join(text), "tokens before the fault reached the client"
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("model", "upstream_model"), [("anthropic-chat", "claude-fam-model"), ("openai-chat", "fam-openai-model")]
)
def test_prompt_cache_breakpoints_reach_anthropic_and_never_openai(
    client: anthropic.Anthropic, simulator: Proc, model: str, upstream_model: str
) -> None:
    system = [{"type": "text", "text": "A long, stable instruction block.", "cache_control": {"type": "ephemeral"}}]
    message = client.messages.create(model=model, max_tokens=50, system=system, messages=MESSAGES)  # type: ignore[arg-type]
    assert message.stop_reason == "end_turn"
    sent = httpx.get(f"{simulator.url}/_sim/stats").json()["models"][upstream_model]["last_request"]
    if model == "anthropic-chat":
        assert sent["system"] == system
    else:
        assert "cache_control" not in orjson.dumps(sent).decode()
