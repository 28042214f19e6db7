"""Two gateway instances sharing one Redis: a breaker opened by one instance's traffic holds on the other."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import MASTER_KEY, Proc, start_gateway

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def pair(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc, str]]:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - .ci/run starts Redis
        pytest.skip(f"REDIS IS NOT REACHABLE at 127.0.0.1:6379: {exc}")
    prefix = "sgtest-rt-" + secrets.token_hex(4)
    extra = f"""
  - name: rt-shared
    routing: {{strategy: cost, breaker: {{consecutive_failures: 3}}}}
    deployments:
      - {{provider: sim, model: rt-shared-a, price: {{input: 1, output: 1}}}}
      - {{provider: sim, model: rt-shared-b, price: {{input: 2, output: 2}}}}
redis:
  url: redis://127.0.0.1:6379/0
limits:
  key_prefix: {prefix}
"""
    first = start_gateway(simulator, tmp_path_factory.mktemp("rt-a"), "rt-a", extra)
    try:
        second = start_gateway(simulator, tmp_path_factory.mktemp("rt-b"), "rt-b", extra)
    except BaseException:
        first.stop()
        raise
    yield first, second, prefix
    first.stop()
    second.stop()
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_breaker_opened_on_one_instance_keeps_the_other_off_the_deployment(
    pair: tuple[Proc, Proc, str], sim_control: httpx.Client
) -> None:
    first, second, _ = pair
    sim_control.put("/_sim/faults/rt-shared-a", json={"faults": [{"type": "outage"}]})
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "rt-shared", "messages": MESSAGES}
    for _ in range(3):
        response = httpx.post(f"{first.url}/v1/chat/completions", json=body, headers=headers, timeout=10)
        assert response.status_code == 200 and response.headers["x-sluice-attempts"] == "2"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if httpx.get(f"{second.url}/health/ready").json()["breakers"]["sim/rt-shared-a"] == "open":
            break
        time.sleep(0.05)
    assert httpx.get(f"{second.url}/health/ready").json()["breakers"]["sim/rt-shared-a"] == "open"
    before = sim_control.get("/_sim/stats").json()["models"]["rt-shared-a"]["requests"]
    response = httpx.post(f"{second.url}/v1/chat/completions", json=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-sluice-attempts"] == "1", "the second instance never tried the dead deployment"
    assert response.headers["x-sluice-deployment"] == "sim/rt-shared-b"
    assert sim_control.get("/_sim/stats").json()["models"]["rt-shared-a"]["requests"] == before
