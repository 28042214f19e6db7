"""A gateway whose Redis goes away and comes back: `/health/ready` says which policy is in force while it is
away, and no request fails on connections the restart broke."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway
from tests.state.own_redis import OwnRedis

PROMPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture
def gateway_on_own_redis(simulator: Proc, tmp_path: Path) -> Iterator[tuple[Proc, OwnRedis]]:
    server = OwnRedis(tmp_path).start()
    extra = f"""
redis:
  url: {server.url}
limits:
  global: {{rpm: 100000}}
  outage: {{retry_seconds: 0.2, timeout_seconds: 1}}
"""
    try:
        gw = start_gateway(simulator, tmp_path, "gw-outage", extra)
    except BaseException:
        server.kill()
        raise
    yield gw, server
    gw.stop()
    server.kill()


def _ready(gw: Proc) -> dict[str, object]:
    response = httpx.get(f"{gw.url}/health/ready", timeout=5)
    assert response.status_code == 200  # still serving, under the outage policy
    body: dict[str, object] = response.json()
    return body


def test_ready_reports_the_policy_while_redis_is_away_and_no_request_fails_after_it_returns(
    gateway_on_own_redis: tuple[Proc, OwnRedis],
) -> None:
    gw, server = gateway_on_own_redis
    with httpx.Client(timeout=10) as client:
        for _ in range(20):
            assert client.post(f"{gw.url}/v1/chat/completions", json=PROMPT, headers=AUTH).status_code == 200
        assert _ready(gw)["status"] == "ready"
        server.kill()
        assert client.post(f"{gw.url}/v1/chat/completions", json=PROMPT, headers=AUTH).status_code == 200
        ready = _ready(gw)
        assert ready["status"] == "degraded"
        redis_state = ready["degraded"]["redis"]  # type: ignore[index]
        assert redis_state["policy"] == {
            "budgets": "refused (fail closed)",
            "rate_limits": "local counters at 50% of each limit (fail open)",
        }
        server.start()  # empty, on the same port
        time.sleep(0.3)
        statuses = [
            client.post(f"{gw.url}/v1/chat/completions", json=PROMPT, headers=AUTH).status_code for _ in range(30)
        ]
        assert statuses == [200] * 30
        assert _ready(gw)["status"] == "ready"
