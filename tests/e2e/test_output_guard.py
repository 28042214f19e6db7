"""The output guard end to end, with the official openai and anthropic SDKs against real gateway and
simulator processes: a card number streamed across chunks reaches the client redacted; a request the
firewall redacted reaches the provider with placeholders only and the answer carries the originals back
(guardrails.restore); an answer that should be JSON and is not is asked for again, then becomes an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, start_gateway, start_process

CARD = "4111 1111 1111 1111"
CARD_REPLY = f"Your card {CARD} is on file, thanks."
SIMULATOR = f"""
seed: 3
api_key: {UPSTREAM_KEY}
default: {{ttft_ms: 0, latency_ms: 0, tokens_per_second: 0, output_tokens: {{min: 8, max: 24}}}}
models:
  card-model: {{tokens_per_second: 400, reply: {{type: fixed, text: "{CARD_REPLY}"}}}}
  echo-model: {{reply: echo}}
  prose-model: {{reply: {{type: fixed, text: "Sure, here it is: name = Ann"}}}}
"""
GATEWAY = """
  - name: card
    deployments: [{provider: sim, model: card-model}]
  - name: echo
    deployments: [{provider: sim, model: echo-model}]
  - name: prose
    deployments: [{provider: sim, model: prose-model}]
pipeline: {stages: [firewall, output_guard]}
guardrails:  # the firewall redacts personal data in requests and hands its placeholders to the output guard
  default_level: pii-redact
  restore: true
  policies:
    pii-redact: {extends: standard, actions: {"pii_*": redact}}
output_guard: {json_check: retry}
"""
ASK = "Book it for jane.doe@example.com, card " + CARD + ", please."


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    workdir: Path = tmp_path_factory.mktemp("output-guard")
    (workdir / "simulator.yaml").write_text(SIMULATOR)
    port = free_port()
    simulator = start_process(
        ["simulator", "--port", str(port), "--config", str(workdir / "simulator.yaml")],
        port,
        workdir,
        "simulator",
        ready_path="/_sim/stats",
    )
    try:
        gateway = start_gateway(simulator, workdir, extra=GATEWAY)
    except Exception:
        simulator.stop()
        raise
    yield gateway, simulator
    gateway.stop()
    simulator.stop()


def test_a_card_number_streamed_across_chunks_reaches_an_openai_client_redacted(guarded: tuple[Proc, Proc]) -> None:
    gateway, _ = guarded
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    stream = client.chat.completions.create(model="card", messages=[{"role": "user", "content": "hi"}], stream=True)
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(pieces) == "Your card <CARD_1> is on file, thanks."
    assert not any(group in piece for piece in pieces for group in ("4111", "1111", "111 1"))
    assert sum(1 for piece in pieces if piece) > 3, "the answer came in several chunks"


def test_a_card_number_streamed_across_chunks_reaches_an_anthropic_client_redacted(
    guarded: tuple[Proc, Proc],
) -> None:
    gateway, _ = guarded
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    with client.messages.stream(model="card", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
        deltas = [e.delta.text for e in s if e.type == "content_block_delta" and e.delta.type == "text_delta"]
        final = s.get_final_message()
    assert "".join(deltas) == "Your card <CARD_1> is on file, thanks."
    assert not any("1111" in d for d in deltas)
    assert final.stop_reason == "end_turn"


def test_the_provider_sees_placeholders_and_the_openai_client_gets_its_values_back(guarded: tuple[Proc, Proc]) -> None:
    gateway, simulator = guarded
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="echo", messages=[{"role": "user", "content": ASK}])
    sent = httpx.get(f"{simulator.url}/_sim/stats").json()["models"]["echo-model"]["last_request"]["messages"]
    assert sent[-1]["content"] == "Book it for <EMAIL_1>, card <CARD_1>, please."
    assert raw.parse().choices[0].message.content == ASK  # the echo, with the originals put back
    assert raw.headers["x-sluice-guardrail"] == "redacted; categories=pii_card,pii_email"


def test_restore_works_on_a_stream_to_an_anthropic_client(guarded: tuple[Proc, Proc]) -> None:
    gateway, simulator = guarded
    client = anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=30)
    with client.messages.stream(model="echo", max_tokens=200, messages=[{"role": "user", "content": ASK}]) as s:
        text = "".join(s.text_stream)
    sent = httpx.get(f"{simulator.url}/_sim/stats").json()["models"]["echo-model"]["last_request"]["messages"]
    assert "jane.doe@example.com" not in str(sent) and "1111" not in str(sent)
    assert text == ASK


def test_an_answer_that_should_be_json_and_is_not_is_asked_again_then_becomes_an_error(
    guarded: tuple[Proc, Proc],
) -> None:
    gateway, simulator = guarded

    def asked() -> int:
        return int(httpx.get(f"{simulator.url}/_sim/stats").json()["models"].get("prose-model", {}).get("requests", 0))

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    before = asked()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="prose",
            messages=[{"role": "user", "content": "json please"}],
            response_format={"type": "json_object"},
        )
    assert info.value.status_code == 502
    assert info.value.body["code"] == "invalid_json_output"  # type: ignore[index]
    assert asked() - before == 2, "json_check: retry asked the provider once more"
    plain = client.chat.completions.create(model="prose", messages=[{"role": "user", "content": "hi"}])
    assert plain.choices[0].message.content == "Sure, here it is: name = Ann"


def test_a_card_number_streamed_to_a_responses_api_client_is_redacted(guarded: tuple[Proc, Proc]) -> None:
    gateway, _ = guarded
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    events = list(client.responses.create(model="card", input="hi", stream=True))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Your card <CARD_1> is on file, thanks."
    assert not any("1111" in d for d in deltas)
    done = [e for e in events if e.type == "response.completed"]
    assert done and done[0].response.output_text == "Your card <CARD_1> is on file, thanks."
