"""Reasoning is relayed, not dropped: Anthropic thinking blocks with their signatures (so multi-turn extended
thinking with tools keeps working through the gateway), redacted thinking, reasoning text and reasoning tokens
across client formats, counted as output, through the real gateway and simulator processes.

The simulator signs its thoughts and, as Anthropic does, refuses a later turn whose thoughts come back altered
or missing: a gateway that dropped or changed them fails these tests."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, Proc
from tests.e2e.families import FAMILIES, families_gateway  # noqa: F401

THINKING = {"type": "enabled", "budget_tokens": 2048}
WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
REDACTED_TRIGGER = "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"


@pytest.fixture
def claude(families_gateway: Proc) -> anthropic.Anthropic:  # noqa: F811
    return anthropic.Anthropic(base_url=families_gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=30)


@pytest.fixture
def oai(families_gateway: Proc) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=f"{families_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def _sent(simulator: Proc, family: str) -> dict[str, Any]:
    """The last request body the simulator received for a family's model."""
    return httpx.get(f"{simulator.url}/_sim/stats").json()["models"][FAMILIES[family]]["last_request"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("family", ["anthropic", "bedrock", "gemini"])
def test_thinking_blocks_reach_the_client_whole_and_streamed_alike(claude: anthropic.Anthropic, family: str) -> None:
    ask = [{"role": "user", "content": "Why is the sky blue?"}]
    model = f"{family}-chat"
    whole = claude.messages.create(model=model, max_tokens=4096, thinking=THINKING, messages=ask)  # type: ignore[arg-type]
    thought, answer = whole.content
    assert thought.type == "thinking" and thought.thinking
    assert bool(thought.signature) is (family != "gemini")  # Gemini's thoughts are not signed
    assert answer.type == "text" and answer.text
    with claude.messages.stream(model=model, max_tokens=4096, thinking=THINKING, messages=ask) as stream:  # type: ignore[arg-type]
        kinds = [event.type for event in stream]
        streamed = stream.get_final_message()
    assert [b.model_dump() for b in streamed.content] == [b.model_dump() for b in whole.content]
    assert "thinking" in kinds and ("signature" in kinds) is (family != "gemini")
    assert streamed.usage.output_tokens == whole.usage.output_tokens
    assert streamed.usage.input_tokens == whole.usage.input_tokens


def test_message_start_carries_the_real_input_tokens(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "Count me."}]
    whole = claude.messages.create(model="anthropic-chat", max_tokens=64, messages=ask)  # type: ignore[arg-type]
    for model in ("anthropic-chat", "openai-chat", "gemini-chat"):
        with claude.messages.stream(model=model, max_tokens=64, messages=ask) as stream:  # type: ignore[arg-type]
            start = next(e for e in stream if e.type == "message_start")
            final = stream.get_final_message()
        assert start.message.usage.input_tokens > 0, model
        assert start.message.usage.input_tokens == final.usage.input_tokens, model
    assert whole.usage.input_tokens > 0


@pytest.mark.parametrize(("family", "streamed"), [("anthropic", False), ("anthropic", True), ("bedrock", True)])
def test_multi_turn_thinking_with_tools_keeps_working(claude: anthropic.Anthropic, family: str, streamed: bool) -> None:
    ask: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    request: dict[str, Any] = {"model": f"{family}-chat", "max_tokens": 4096, "thinking": THINKING, "tools": [WEATHER]}
    if streamed:
        with claude.messages.stream(messages=ask, **request) as stream:  # type: ignore[arg-type]
            first = stream.get_final_message()
    else:
        first = claude.messages.create(messages=ask, **request)  # type: ignore[arg-type]
    assert [b.type for b in first.content] == ["thinking", "tool_use"] and first.stop_reason == "tool_use"
    call = first.content[1]
    history = [
        *ask,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "4 C, grey"}]},  # type: ignore[union-attr]
    ]
    final = claude.messages.create(messages=history, **request)  # type: ignore[arg-type]
    assert final.stop_reason == "end_turn" and final.content[-1].type == "text"
    # The provider checks what comes back: thoughts altered on the way, or left out, are refused.
    tampered = [dict(b.model_dump()) for b in first.content]
    tampered[0]["thinking"] += " (edited)"
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(messages=[*ask, {"role": "assistant", "content": tampered}, history[2]], **request)  # type: ignore[arg-type]
    assert "signature" in info.value.message
    without = [b.model_dump() for b in first.content[1:]]
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.create(messages=[*ask, {"role": "assistant", "content": without}, history[2]], **request)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["anthropic", "bedrock"])
def test_redacted_thinking_is_relayed_and_accepted_back(claude: anthropic.Anthropic, family: str) -> None:
    ask = [{"role": "user", "content": REDACTED_TRIGGER}]
    for streamed in (False, True):
        request: dict[str, Any] = {"model": f"{family}-chat", "max_tokens": 4096, "thinking": THINKING, "messages": ask}
        if streamed:
            with claude.messages.stream(**request) as stream:
                first = stream.get_final_message()
        else:
            first = claude.messages.create(**request)
        assert [b.type for b in first.content] == ["thinking", "redacted_thinking", "text"], streamed
        assert first.content[1].data.startswith("c2ltLXJlZGFjdGVk")  # type: ignore[union-attr]
    history = [*ask, {"role": "assistant", "content": [b.model_dump() for b in first.content]}]
    follow_up = claude.messages.create(
        model=f"{family}-chat",
        max_tokens=4096,
        thinking=THINKING,  # type: ignore[arg-type]
        messages=[*history, {"role": "user", "content": "And then?"}],  # type: ignore[list-item]
    )
    assert follow_up.content[-1].type == "text"


def test_thoughts_count_as_output(claude: anthropic.Anthropic, simulator: Proc) -> None:
    ask = [{"role": "user", "content": "Think about rivers."}]
    plain = claude.messages.create(model="anthropic-chat", max_tokens=4096, messages=ask)  # type: ignore[arg-type]
    thinking = claude.messages.create(model="anthropic-chat", max_tokens=4096, thinking=THINKING, messages=ask)  # type: ignore[arg-type]
    # The same answer (the simulator's thoughts do not change it), plus the thoughts' tokens.
    assert thinking.content[-1].text == plain.content[0].text  # type: ignore[union-attr]
    thought_tokens = thinking.usage.output_tokens - plain.usage.output_tokens
    assert 8 <= thought_tokens <= 24
    assert _sent(simulator, "anthropic")["thinking"] == THINKING


def test_openai_clients_get_reasoning_text_and_effort_maps_to_a_thinking_budget(
    oai: openai.OpenAI, simulator: Proc
) -> None:
    ask = [{"role": "user", "content": "Why is the sea salty?"}]
    completion = oai.chat.completions.create(model="anthropic-chat", messages=ask, reasoning_effort="low")  # type: ignore[arg-type]
    message = completion.choices[0].message
    assert message.content and (message.model_extra or {}).get("reasoning_content")
    assert _sent(simulator, "anthropic")["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    chunks = list(
        oai.chat.completions.create(model="anthropic-chat", messages=ask, reasoning_effort="low", stream=True)  # type: ignore[arg-type]
    )
    streamed = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks if c.choices
    )
    assert streamed == message.model_extra["reasoning_content"]  # type: ignore[index]


@pytest.mark.parametrize("streamed", [False, True])
def test_responses_clients_get_reasoning_items(oai: openai.OpenAI, streamed: bool) -> None:
    request: dict[str, Any] = {
        "model": "anthropic-chat",
        "input": "Why is ice slippery?",
        "reasoning": {"effort": "low"},
    }
    if streamed:
        with oai.responses.stream(**request) as stream:
            response = stream.get_final_response()
    else:
        response = oai.responses.create(**request)
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.content and reasoning.content[0].text  # type: ignore[union-attr]
    assert message.type == "message" and response.output_text


def test_gemini_thoughts_reach_openai_clients_as_reasoning(oai: openai.OpenAI, simulator: Proc) -> None:
    ask = [{"role": "user", "content": "Why do cats purr?"}]
    completion = oai.chat.completions.create(model="gemini-chat", messages=ask, reasoning_effort="low")  # type: ignore[arg-type]
    assert (completion.choices[0].message.model_extra or {}).get("reasoning_content")
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert 8 <= completion.usage.completion_tokens_details.reasoning_tokens <= 24
    config = _sent(simulator, "gemini")["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingBudget": 1024, "includeThoughts": True}


def _ledger_row(gateway: Proc, request_id: str) -> dict[str, Any]:
    database = gateway.stdout.parent / ".sluicegate" / "sluicegate.db"
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(database) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM spend_ledger WHERE request_id = ?", (request_id,)).fetchone()
        if row is not None:
            return dict(row)
        assert time.monotonic() < deadline, f"no ledger row for {request_id}"
        time.sleep(0.05)


def test_the_ledger_counts_and_prices_reasoning_as_output(
    oai: openai.OpenAI,
    claude: anthropic.Anthropic,
    families_gateway: Proc,  # noqa: F811
) -> None:
    raw = oai.responses.with_raw_response.create(model="openai-priced", input="Plan.", reasoning={"effort": "high"})
    response = raw.parse()
    row = _ledger_row(families_gateway, raw.headers["x-sluice-request-id"])
    assert response.usage is not None
    assert row["reasoning_tokens"] == 512 and row["output_tokens"] == response.usage.output_tokens
    assert row["cost_micros"] == row["input_tokens"] * 1 + row["output_tokens"] * 10  # reasoning billed as output
    assert float(raw.headers["x-sluice-cost-usd"]) * 1_000_000 == pytest.approx(row["cost_micros"])
    ask = [{"role": "user", "content": "Think."}]
    with claude.messages.with_streaming_response.create(
        model="anthropic-priced",
        max_tokens=4096,
        thinking=THINKING,  # type: ignore[arg-type]
        messages=ask,  # type: ignore[arg-type]
        stream=True,
    ) as streamed:
        request_id = streamed.headers["x-sluice-request-id"]
        streamed.read()
    plain = claude.messages.create(model="anthropic-priced", max_tokens=4096, messages=ask)  # type: ignore[arg-type]
    row = _ledger_row(families_gateway, request_id)
    assert row["output_tokens"] > plain.usage.output_tokens  # the thoughts are output
    assert row["cost_micros"] == row["input_tokens"] * 1 + row["output_tokens"] * 10


def test_reasoning_tokens_are_reported_as_part_of_output(oai: openai.OpenAI, simulator: Proc) -> None:
    ask = [{"role": "user", "content": "Plan a trip."}]
    plain = oai.chat.completions.create(model="openai-chat", messages=ask)  # type: ignore[arg-type]
    reasoned = oai.chat.completions.create(model="openai-chat", messages=ask, reasoning_effort="high")  # type: ignore[arg-type]
    assert reasoned.usage is not None and plain.usage is not None
    assert reasoned.usage.completion_tokens_details.reasoning_tokens == 512  # type: ignore[union-attr]
    assert reasoned.usage.completion_tokens == plain.usage.completion_tokens + 512
    response = oai.responses.create(model="openai-chat", input="Plan a trip.", reasoning={"effort": "high"})
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 512
    assert _sent(simulator, "openai")["reasoning_effort"] == "high"
