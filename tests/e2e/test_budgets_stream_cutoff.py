"""Budgets end to end with the openai SDK: a stream that would overrun its reservation ends cleanly with
`finish_reason: "length"` and a note in the usage extension; the next request is refused with 402
`budget_exceeded`, naming the budget."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc
from tests.e2e.budgeted import budgeted_gateway

SIMULATOR = f"""
seed: 11
api_key: {UPSTREAM_KEY}
default:
  ttft_ms: 0
  latency_ms: 0
  tokens_per_second: 0
  output_tokens: 300
"""

# sim-llama is not an OpenAI family: its tokens are estimated with the 15% margin, so the meter's count
# passes the granted max_tokens before the simulator's own count does, and the gateway cuts the stream.
EXTRA = """
  - name: sim-llama
    deployments:
      - provider: sim
        model: sim-llama
        max_output_tokens: 2000
        price: {input: 1, output: 1000}
budgets:
  global: {amount_usd: "0.06", period: total}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with budgeted_gateway(tmp_path_factory.mktemp("budget-cutoff"), SIMULATOR, EXTRA) as gateway:
        yield gateway


def test_stream_is_cut_cleanly_then_the_budget_refuses(gw: Proc) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=0)
    stream = client.chat.completions.create(
        model="sim-llama",
        messages=[{"role": "user", "content": "Tell me a long story."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)  # the SDK's iterator must finish without an exception
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text) > 20
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    note = (usage.model_extra or {}).get("sluicegate", {})
    assert note.get("cut_off") == "budget_reservation", usage

    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="sim-llama", messages=[{"role": "user", "content": "More?"}])
    error = caught.value
    assert error.status_code == 402
    assert error.code == "budget_exceeded"
    assert "global total budget of $0.060000" in error.message
