"""Data residency end to end: a key restricted to EU regions is only ever served in the EU, or refused."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

GROUPS = """
  - name: rt-geo
    routing: {strategy: cost}
    deployments:
      - {provider: sim, model: rt-geo-us, region: us-east-1, price: {input: 1, output: 1}}
      - {provider: sim, model: rt-geo-eu, region: eu-west-1, price: {input: 5, output: 5}}
  - name: rt-us-only
    deployments:
      - {provider: sim, model: rt-geo-us, region: us-east-1}
"""
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("residency"), "residency-gateway", GROUPS)
    yield proc
    proc.stop()


def eu_key(gateway: Proc) -> str:
    response = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"team": "geo", "metadata": {"allowed_regions": "eu"}},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def chat(gateway: Proc, key: str, model: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_restricted_key_stays_in_region_even_when_it_costs_more_or_fails(
    gateway: Proc, sim_control: httpx.Client
) -> None:
    key = eu_key(gateway)
    assert chat(gateway, MASTER_KEY, "rt-geo").headers["x-sluice-deployment"] == "sim/rt-geo-us", "cheapest"
    for _ in range(3):
        assert chat(gateway, key, "rt-geo").headers["x-sluice-deployment"] == "sim/rt-geo-eu"
    sim_control.put("/_sim/faults/rt-geo-eu", json={"faults": [{"type": "outage"}]})
    down = chat(gateway, key, "rt-geo")
    assert down.status_code == 503, "no failover out of the region"
    assert down.headers["x-sluice-deployment"] == "sim/rt-geo-eu"
    refused = chat(gateway, key, "rt-us-only")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "region_not_allowed"
