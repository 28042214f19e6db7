"""The hot counters are a cache of the ledger: an exhausted key stays refused after its Redis is killed
and restarted empty, and after a gateway on the in-process backend is killed and started again."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import MASTER_KEY, Proc, start_gateway
from tests.state.own_redis import OwnRedis

# About $0.017 an answer (8-24 output tokens at $1,000 per million): a $0.05 budget pays for 2 or 3.
PRICEY = """
  - name: pricey
    deployments:
      - provider: sim
        model: gpt-4o-mini
        id: sim/pricey
        price: {input: 100, output: 1000}
"""
BUDGET_USD = "0.05"
PROMPT = {"model": "pricey", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24}


def _new_key(gw: Proc) -> str:
    response = httpx.post(
        f"{gw.url}/admin/keys",
        json={"team": "rebuild", "budget_usd": BUDGET_USD},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _ask(gw: Proc, key: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/chat/completions", json=PROMPT, headers={"authorization": f"Bearer {key}"}, timeout=10
    )


def _exhaust(gw: Proc, key: str) -> int:
    for served in range(20):
        response = _ask(gw, key)
        if response.status_code == 402:
            assert response.json()["error"]["code"] == "budget_exceeded"
            return served
        assert response.status_code == 200, response.text
    raise AssertionError("a $0.05 budget paid for 20 answers")


def _refused_for_budget(gw: Proc, key: str, attempts: int = 5) -> list[int]:
    """Statuses of `attempts` requests; a 503 while the balance is being rebuilt is retried, as SDKs do."""
    statuses = []
    for _ in range(attempts):
        response = _ask(gw, key)
        deadline = time.monotonic() + 10
        while response.status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            response = _ask(gw, key)
        statuses.append(response.status_code)
    return statuses


def test_an_exhausted_key_stays_refused_after_redis_is_killed_and_restarted_empty(
    simulator: Proc, tmp_path: Path
) -> None:
    server = OwnRedis(tmp_path).start()
    extra = (
        PRICEY
        + f"""
redis:
  url: {server.url}
limits:
  outage: {{retry_seconds: 0.2}}
"""
    )
    try:
        gw = start_gateway(simulator, tmp_path, "gw-rebuild-redis", extra)
        try:
            key = _new_key(gw)
            served = _exhaust(gw, key)
            assert served >= 2
            for _ in range(2):  # every time, not only the first
                server.restart()  # SIGKILL; back empty (no persistence) on the same port
                time.sleep(0.3)
                assert _refused_for_budget(gw, key) == [402] * 5
            fresh = _new_key(gw)  # a key that has spent nothing is still served at once
            assert _ask(gw, fresh).status_code == 200
        finally:
            gw.stop()
    finally:
        server.kill()


def test_an_exhausted_key_stays_refused_after_a_memory_backend_gateway_is_killed_and_restarted(
    simulator: Proc, tmp_path: Path
) -> None:
    gw = start_gateway(simulator, tmp_path, "gw-rebuild-memory", PRICEY)
    try:
        key = _new_key(gw)
        assert _exhaust(gw, key) >= 2
    finally:
        gw.process.kill()  # SIGKILL: the last rows may still be in the spool only
        gw.process.wait()
    again = start_gateway(simulator, tmp_path, "gw-rebuild-memory-2", PRICEY)
    try:
        assert _refused_for_budget(again, key) == [402] * 5
    finally:
        again.stop()
