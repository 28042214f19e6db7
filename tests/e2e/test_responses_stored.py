"""Stored responses (`responses.store: true`): `previous_response_id` chains a conversation (text and tool
calls, whole and streamed), `GET`/`DELETE /v1/responses/{id}` and `input_items` answer per tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def gw(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(
        simulator, tmp_path_factory.mktemp("stored"), "stored", "responses: {store: true, ttl_days: 1}\n"
    )
    yield proc
    proc.stop()


@pytest.fixture
def client(gw: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def _sent_messages(simulator: Proc) -> list[dict[str, Any]]:
    stats = httpx.get(f"{simulator.url}/_sim/stats").json()["models"]["gpt-4o-mini"]
    return stats["last_request"]["messages"]  # type: ignore[no-any-return]


def test_previous_response_id_carries_the_conversation(client: openai.OpenAI, simulator: Proc) -> None:
    first = client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="My name is Ada.")
    assert first.store is True and first.id.startswith("resp_")
    second = client.responses.create(model="gpt-4o-mini", previous_response_id=first.id, input="What is my name?")
    sent = _sent_messages(simulator)
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]  # instructions are not carried over
    assert sent[0]["content"] == "My name is Ada." and sent[1]["content"] == first.output_text
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    with client.responses.stream(model="gpt-4o-mini", previous_response_id=second.id, input="And again?") as stream:
        third = stream.get_final_response()
    assert len(_sent_messages(simulator)) == 5 and third.store is True
    fourth = client.responses.create(model="gpt-4o-mini", previous_response_id=third.id, input="Once more.")
    assert len(_sent_messages(simulator)) == 7 and fourth.output_text  # a streamed answer was kept too


def test_an_agent_loop_through_previous_response_id(client: openai.OpenAI) -> None:
    first = client.responses.create(model="gpt-4o-mini", input="Weather in Oslo?", tools=[WEATHER])  # type: ignore[list-item]
    [call] = [item for item in first.output if item.type == "function_call"]
    done = client.responses.create(
        model="gpt-4o-mini",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "4 C"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert done.status == "completed" and done.output_text  # the model saw its call and the result


def test_retrieve_list_input_items_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="Keep this.")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == created.output_text
    items = client.responses.input_items.list(created.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "Keep this."  # type: ignore[union-attr]
    deleted = client.responses.delete(created.id)
    assert deleted is None or getattr(deleted, "deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError) as info:
        client.responses.create(model="gpt-4o-mini", previous_response_id=created.id, input="Hello?")
    assert info.value.param == "previous_response_id"  # type: ignore[attr-defined]


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    created = client.responses.create(model="gpt-4o-mini", input="Forget this.", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)


def test_another_tenant_cannot_see_or_chain_a_stored_response(client: openai.OpenAI, gw: Proc) -> None:
    for path, body in (
        ("tenants", {"id": "st-other"}),
        ("teams", {"id": "st-other-team", "tenant": "st-other"}),
    ):
        assert httpx.post(f"{gw.url}/admin/{path}", json=body, headers=MASTER, timeout=10).status_code == 201
    key = httpx.post(f"{gw.url}/admin/keys", json={"team": "st-other-team"}, headers=MASTER, timeout=10).json()["key"]
    other = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=30)
    mine = client.responses.create(model="gpt-4o-mini", input="A secret of the default tenant.")
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(model="gpt-4o-mini", previous_response_id=mine.id, input="Tell me.")
    theirs = other.responses.create(model="gpt-4o-mini", input="Theirs.")
    assert other.responses.retrieve(theirs.id).id == theirs.id
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(theirs.id)
