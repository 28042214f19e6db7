"""Budgets against a running gateway with virtual keys: `n` choices never overspend, a `max_tokens` lowered
to fit the budget is announced in the header and in `usage.sluicegate`, and a burst waits for reservations
in flight instead of being refused while the budget is unspent."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc
from tests.e2e.budgeted import budgeted_gateway

MASTER = {"authorization": f"Bearer {MASTER_KEY}"}

SIMULATOR = f"""
seed: 12
api_key: {UPSTREAM_KEY}
default:
  ttft_ms: 0
  latency_ms: 0
  tokens_per_second: 0
  output_tokens: 1000
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    # a generous wait for reservations: the burst below must not time out on a loaded machine
    extra = "budgets:\n  reserved_wait_seconds: 30\n"
    with budgeted_gateway(tmp_path_factory.mktemp("budget-overspend"), SIMULATOR, extra) as gateway:
        yield gateway


def create_key(gw: Proc, **body: Any) -> dict[str, Any]:
    response = httpx.post(f"{gw.url}/admin/keys", json=body, headers=MASTER, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def ledger_micros(gw: Proc, key_id: str, requests: int) -> int:
    """The key's spend in the ledger, in micro-dollars, once it holds `requests` rows."""
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(f"{gw.url}/admin/spend", params={"by": "key", "key_id": key_id}, headers=MASTER)
        assert response.status_code == 200, response.text
        rows = response.json()["rows"]
        if sum(r["requests"] for r in rows) >= requests or time.monotonic() > deadline:
            return sum(int(Decimal(r["cost_usd"]) * 1_000_000) for r in rows)
        time.sleep(0.1)


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def chat(gw: Proc, key: str, **body: Any) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me about rivers."}], **body}
    return httpx.post(
        f"{gw.url}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {key}"}, timeout=30
    )


@pytest.mark.parametrize("stream", [False, True])
def test_n_choices_never_take_a_key_over_its_budget(gw: Proc, stream: bool) -> None:
    created = create_key(gw, team="money", budget_usd="0.001")
    served = 0
    for _ in range(12):
        extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
        response = chat(gw, created["key"], max_tokens=300, n=8, **extra)
        if response.status_code != 200:
            assert response.status_code == 402, response.text
            assert response.json()["error"]["code"] == "budget_exceeded"
            break
        served += 1
        if stream:  # every one of the 8 answers ends (none is starved by the others' tokens)
            ended = {c["index"] for e in _events(response.text) for c in e.get("choices", []) if c["finish_reason"]}
            assert ended == set(range(8))
        else:
            body = response.json()
            assert len(body["choices"]) == 8
            assert body["usage"]["completion_tokens"] <= 8 * 300
    else:
        raise AssertionError("a $0.001 key served 12 requests of 8 x 300 tokens")
    assert served >= 1
    assert ledger_micros(gw, created["key_id"], served) <= 1000  # not one micro-dollar over


def test_a_max_tokens_lowered_to_fit_the_budget_is_announced(gw: Proc) -> None:
    created = create_key(gw, team="money", budget_usd="0.0001")  # gpt-4o-mini output: $0.60 per million, ~160 tokens
    response = chat(gw, created["key"], max_tokens=500)
    assert response.status_code == 200, response.text
    granted = int(response.headers["x-sluice-max-tokens-clamped"])
    assert 16 <= granted < 500
    assert response.headers["x-sluice-max-tokens-clamped-reason"] == "budget"
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["sluicegate"]["max_tokens_clamped"] == {
        "requested": 500,
        "granted": granted,
        "reason": "budget",
    }


async def test_a_burst_waits_for_reservations_instead_of_a_premature_402(gw: Proc) -> None:
    created = create_key(gw, team="money", budget_usd="0.02")
    budget = 20_000
    headers = {"authorization": f"Bearer {created['key']}"}
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Tell me about rivers."}]}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=gw.url, headers=headers, timeout=60, limits=limits) as client:

        async def one() -> httpx.Response:
            return await client.post("/v1/chat/completions", json={**payload, "max_tokens": 400})

        burst = await asyncio.gather(*(one() for _ in range(150)))
        served = sum(r.status_code == 200 for r in burst)
        refused = [r for r in burst if r.status_code == 402]
        assert {r.status_code for r in burst} <= {200, 402}, [r.text for r in burst if r.status_code not in (200, 402)]
        assert served >= 60  # a $0.02 budget pays ~80 answers of 400 tokens: most of the burst is served
        for response in refused:  # a 402 only once spending alone leaves no room for this request's least cost
            error = response.json()["error"]
            assert error["code"] == "budget_exceeded"
            spent = Decimal(re.search(r"\$([0-9.]+) spent", error["message"]).group(1))  # type: ignore[union-attr]
            assert spent * 1_000_000 > budget - 50, error["message"]
        for _ in range(100):  # traffic continues until the budget is spent
            response = await one()
            if response.status_code == 402:
                break
            assert response.status_code == 200, response.text
            served += 1
    spent_micros = ledger_micros(gw, created["key_id"], served)
    assert budget * 0.99 <= spent_micros <= budget, spent_micros
