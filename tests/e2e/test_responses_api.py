"""The openai SDK's Responses API (`client.responses`) against every provider family, through the real
gateway and simulator processes: whole and streamed, tools, structured output, and refusals of what the
gateway cannot serve, in OpenAI's error format."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from sluicegate.tokens import count_text
from tests.conftest import MASTER_KEY, Proc
from tests.e2e.families import FAMILIES, families_gateway  # noqa: F401

ALL = list(FAMILIES)
INSTRUCTIONS = "You are terse."
QUESTION = "Name three rivers in Europe."
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "minLength": 2}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
}


@pytest.fixture
def client(families_gateway: Proc) -> openai.OpenAI:  # noqa: F811
    return openai.OpenAI(base_url=f"{families_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


@pytest.mark.parametrize("family", ALL)
def test_whole_response_has_the_text_and_the_chat_usage(client: openai.OpenAI, family: str) -> None:
    model = f"{family}-chat"
    raw = client.responses.with_raw_response.create(model=model, instructions=INSTRUCTIONS, input=QUESTION)
    response = raw.parse()
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text and response.output[0].type == "message"
    chat = client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": QUESTION}],
    )
    # The same conversation through either API: the same answer (the simulator is deterministic), the
    # same tokens, the same gateway headers.
    assert response.output_text == chat.choices[0].message.content
    assert response.usage is not None and chat.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        chat.usage.prompt_tokens,
        chat.usage.completion_tokens,
    )
    assert response.usage.output_tokens == count_text(response.output_text)
    assert raw.headers["x-sluice-deployment"].startswith(f"sim-{family}/")


@pytest.mark.parametrize("family", ALL)
def test_streamed_response_builds_the_same_response(client: openai.OpenAI, family: str) -> None:
    model = f"{family}-chat"
    whole = client.responses.create(model=model, instructions=INSTRUCTIONS, input=QUESTION)
    deltas = []
    with client.responses.stream(model=model, instructions=INSTRUCTIONS, input=QUESTION) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == whole.output_text
    assert final.usage is not None and whole.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        whole.usage.input_tokens,
        whole.usage.output_tokens,
    )


def test_stream_events_come_in_order_with_sequence_numbers(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="anthropic-chat", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1


def _weather_args(arguments: str) -> dict[str, object]:
    args = orjson.loads(arguments)
    assert isinstance(args["city"], str) and len(args["city"]) >= 2 and args["days"] >= 1
    return args


@pytest.mark.parametrize("family", ALL)
def test_function_call_and_its_output_round_trip(client: openai.OpenAI, family: str) -> None:
    model = f"{family}-chat"
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = client.responses.create(model=model, input=ask, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    _weather_args(call.arguments)
    # The agent loop: the earlier output items go back as they are, with the tool's output.
    history = [*ask, *[item.model_dump(exclude_none=True) for item in first.output]]
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 4}'})
    final = client.responses.create(model=model, input=history, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert final.status == "completed" and final.output_text
    assert final.usage is not None and first.usage is not None
    assert final.usage.input_tokens > first.usage.input_tokens


@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini", "bedrock"])
def test_streamed_function_call_arrives_whole(client: openai.OpenAI, family: str) -> None:
    with client.responses.stream(
        model=f"{family}-chat",
        input="Weather in Rome?",
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    [call] = [item for item in final.output if item.type == "function_call"]
    _weather_args(call.arguments)
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds


@pytest.mark.parametrize("family", ["openai", "gemini"])
def test_structured_output_reaches_the_provider_as_its_schema(
    client: openai.OpenAI, simulator: Proc, family: str
) -> None:
    schema = {
        "type": "object",
        "properties": {"river": {"type": "string"}, "length_km": {"type": "integer"}},
        "required": ["river", "length_km"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=f"{family}-chat",
        input="The longest river in Europe?",
        text={"format": {"type": "json_schema", "name": "river", "schema": schema, "strict": True}},
    )
    assert response.status == "completed"
    sent = httpx.get(f"{simulator.url}/_sim/stats").json()["models"][FAMILIES[family]]["last_request"]
    if family == "openai":
        assert sent["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "river", "schema": schema, "strict": True},
        }
    else:
        assert sent["generationConfig"]["responseJsonSchema"] == schema


def test_max_output_tokens_ends_an_incomplete_response(client: openai.OpenAI) -> None:
    response = client.responses.create(model="anthropic-chat", input=QUESTION, max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 3


@pytest.mark.parametrize(
    ("kwargs", "param", "says"),
    [
        ({"previous_response_id": "resp_123"}, "previous_response_id", "turns off (responses.store)"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "built-in tool 'web_search'"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0].type", "built-in tool"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "Item references are not"),
        ({"input": [{"role": "user", "content": 7}]}, "input[0].content", "expected a string or an array"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "Missing required"),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort", "extreme"),
        ({"max_output_tokens": 0}, "max_output_tokens", "max_output_tokens"),
    ],
)
def test_what_cannot_be_served_is_refused_in_openais_format(
    client: openai.OpenAI, kwargs: dict[str, object], param: str, says: str
) -> None:
    request: dict[str, object] = {"model": "openai-chat", "input": QUESTION, **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(**request)  # type: ignore[call-overload]
    assert info.value.param == param  # type: ignore[attr-defined]
    assert says in info.value.message


def test_an_unknown_model_is_a_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input=QUESTION)


def test_stored_responses_are_not_kept_and_say_so(client: openai.OpenAI, families_gateway: Proc) -> None:  # noqa: F811
    created = client.responses.create(model="openai-chat", input=QUESTION, store=True)
    assert created.store is False  # the answer says it was not stored
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.retrieve(created.id)
    assert "does not store responses" in info.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.input_items.list(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)
    anonymous = httpx.get(f"{families_gateway.url}/v1/responses/{created.id}")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["message"]


def test_an_upstream_failure_mid_stream_fails_the_response(client: openai.OpenAI, sim_control: httpx.Client) -> None:
    sim_control.put("/_sim/faults/slow-model", json={"faults": [{"type": "malformed_sse", "after_tokens": 4}]})
    events = list(client.responses.create(model="anthropic-paced", input=QUESTION, stream=True))
    kinds = [e.type for e in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
