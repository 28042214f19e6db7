"""What the official SDKs ask about models: `models.retrieve`, token counting for an unknown model, and the
`model` every response names, whichever provider family served it."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, Proc
from tests.e2e.families import FAMILIES, families_gateway  # noqa: F401

MESSAGES = [{"role": "user", "content": "Name three rivers in Europe."}]


@pytest.fixture
def oai(gateway: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)


def test_models_retrieve_answers_for_a_listed_model(oai: openai.OpenAI) -> None:
    model = oai.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini" and model.object == "model" and model.owned_by == "openai"
    listed = {m.id: m for m in oai.models.list().data}
    assert model == listed["gpt-4o-mini"]


def test_models_retrieve_without_the_v1_prefix(gateway: Proc) -> None:
    response = httpx.get(f"{gateway.url}/models/gpt-4o-mini", headers={"authorization": f"Bearer {MASTER_KEY}"})
    assert response.status_code == 200 and response.json()["id"] == "gpt-4o-mini"


def test_models_retrieve_of_an_unknown_model_is_a_404_in_openai_shape(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.retrieve("no-such-model")
    error = caught.value.body
    assert isinstance(error, dict) and error["code"] == "model_not_found" and error["type"] == "invalid_request_error"
    assert "no-such-model" in error["message"]


def test_models_retrieve_needs_a_key(gateway: Proc) -> None:
    response = httpx.get(f"{gateway.url}/v1/models/gpt-4o-mini")
    assert response.status_code == 401 and response.json()["error"]["type"] == "authentication_error"


def test_models_retrieve_hides_what_the_keys_allow_list_hides(gateway: Proc) -> None:
    created = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"team": "retrieve", "models": ["gpt-4o*"]},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=created.json()["key"], max_retries=0, timeout=30)
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("slow")


def test_count_tokens_for_an_unknown_model_is_a_404_in_anthropic_shape(gateway: Proc) -> None:
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    assert client.messages.count_tokens(model="gpt-4o-mini", messages=MESSAGES).input_tokens > 0  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["type"] == "not_found_error"
    assert "no-such-model" in body["error"]["message"]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_response_names_its_model(families_gateway: Proc, family: str) -> None:  # noqa: F811
    model = f"{family}-chat"
    oai = openai.OpenAI(base_url=f"{families_gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30)
    assert oai.chat.completions.create(model=model, messages=MESSAGES).model  # type: ignore[arg-type]
    chunks = list(oai.chat.completions.create(model=model, messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    assert chunks and all(chunk.model for chunk in chunks), [chunk.model for chunk in chunks]
    ant = anthropic.Anthropic(base_url=families_gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    assert ant.messages.create(model=model, max_tokens=200, messages=MESSAGES).model  # type: ignore[arg-type]
    with ant.messages.stream(model=model, max_tokens=200, messages=MESSAGES) as stream:  # type: ignore[arg-type]
        events = list(stream)
    starts = [event.message.model for event in events if event.type == "message_start"]
    assert starts and all(starts), starts
