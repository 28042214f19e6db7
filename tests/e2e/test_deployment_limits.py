"""Per-deployment `rpm`/`tpm` are the provider's hard limits, enforced exactly through the shared Redis state:
a request goes to a deployment with room, and gets 429 with `Retry-After` when none is left."""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import MASTER_KEY, Proc, start_gateway

PREFIX = "sgtest-deplimits-" + secrets.token_hex(4)

EXTRA = f"""
  - name: one-limited
    deployments:
      - {{provider: sim, model: gpt-4o-mini, id: solo, rpm: 3}}
  - name: two-limited
    deployments:
      - {{provider: sim, model: gpt-4o-mini, id: left, rpm: 2}}
      - {{provider: sim, model: gpt-4o-mini, id: right, rpm: 2}}
  - name: limited-then-free
    deployments:
      - {{provider: sim, model: gpt-4o-mini, id: capped, rpm: 1, weight: 100}}
      - {{provider: sim, model: gpt-4o-mini, id: open}}
  - name: limited-failover
    routing: {{strategy: cost, breaker: {{enabled: false}}}}  # the failing deployment stays first in the chain
    deployments:
      - {{provider: sim, model: dl-down, id: down, rpm: 100, price: {{input: 1, output: 1}}}}
      - {{provider: sim, model: dl-spare, id: spare, rpm: 1, price: {{input: 2, output: 2}}}}
      - {{provider: sim, model: dl-open, id: open-fallback, price: {{input: 3, output: 3}}}}
  - name: token-limited
    deployments:
      - {{provider: sim, model: gpt-4o-mini, id: tokens, tpm: 300}}
redis:
  url: redis://127.0.0.1:6379/0
limits:
  key_prefix: {PREFIX}
"""


@pytest.fixture(scope="module")
def gw(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("deployment-limits"), "deplimits", EXTRA)
    yield proc
    proc.stop()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(match=f"{PREFIX}:*"):
        client.delete(key)
    client.close()


def post(gw: Proc, model: str, **body: object) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
    return httpx.post(
        f"{gw.url}/v1/chat/completions", json=payload, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=20
    )


def test_a_deployment_with_rpm_3_takes_3_requests_in_a_minute(gw: Proc) -> None:
    responses = [post(gw, "one-limited") for _ in range(8)]
    assert [r.status_code for r in responses] == [200] * 3 + [429] * 5
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "every deployment" in refused.json()["error"]["message"]


def test_a_full_deployment_sends_the_request_to_another(gw: Proc) -> None:
    responses = [post(gw, "two-limited") for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 4 + [429] * 2
    assert Counter(r.headers["x-sluice-deployment"] for r in responses[:4]) == {"left": 2, "right": 2}


def test_a_deployment_without_limits_takes_what_the_limited_one_cannot(gw: Proc) -> None:
    responses = [post(gw, "limited-then-free") for _ in range(5)]
    assert all(r.status_code == 200 for r in responses)
    served = Counter(r.headers["x-sluice-deployment"] for r in responses)
    assert served["capped"] <= 1 and served["open"] >= 4


def test_a_failover_never_goes_to_a_second_deployment_with_limits(gw: Proc, sim_control: httpx.Client) -> None:
    """Each request holds a place in the first deployment's window only; when that deployment fails, the
    next one with limits (rpm: 1) would be a call outside its own window, so failover passes over it to the
    deployment without limits."""
    sim_control.put("/_sim/faults/dl-down", json={"faults": [{"type": "outage"}]})
    responses = [post(gw, "limited-failover") for _ in range(5)]
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    assert {r.headers["x-sluice-deployment"] for r in responses} == {"open-fallback"}
    reached = sim_control.get("/_sim/stats").json()["models"]
    assert reached["dl-down"]["requests"] >= 5  # every request was tried on the deployment it held a place in
    assert "dl-spare" not in reached, "a failover called a deployment with limits it held no place in"


def test_tpm_counts_prompt_and_granted_output_then_the_actual_tokens(gw: Proc) -> None:
    assert post(gw, "token-limited", max_tokens=200).status_code == 200  # charged ~210 of 300 at admission
    time.sleep(0.3)  # settled after the reply: corrected to its usage (at most ~35 tokens)
    refused = post(gw, "token-limited", max_tokens=400)  # more than the whole TPM on its own
    assert refused.status_code == 429 and "retry-after" not in refused.headers
    assert post(gw, "token-limited", max_tokens=200).status_code == 200  # fits only after the correction
