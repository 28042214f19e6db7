"""Active health probes: an idle deployment that dies leaves rotation, and comes back, without user traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

GROUP = """
  - name: rt-probe
    routing: {breaker: {consecutive_failures: 2, min_open_s: 2, max_open_s: 3, half_open_probes: 1}}
    deployments:
      - {provider: sim, model: rt-probe-a}
      - {provider: sim, model: rt-probe-b}
routing:
  health_probe_interval_s: 0.2
"""


@pytest.fixture(scope="module")
def gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("probes"), "probe-gateway", GROUP)
    yield proc
    proc.stop()


def breaker_state(gateway: Proc, deployment: str) -> str:
    return str(httpx.get(f"{gateway.url}/health/ready").json()["breakers"][deployment])


def wait_for(gateway: Proc, deployment: str, state: str, timeout: float = 6.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if breaker_state(gateway, deployment) == state:
            return True
        time.sleep(0.05)
    return False


def test_probes_take_a_dead_idle_deployment_out_and_bring_it_back(gateway: Proc, sim_control: httpx.Client) -> None:
    before = sim_control.get("/_sim/stats").json()["models"].get("rt-probe-a", {}).get("requests", 0)
    assert wait_for(gateway, "sim/rt-probe-a", "closed")
    sim_control.put("/_sim/faults/rt-probe-a", json={"faults": [{"type": "outage"}]})
    assert wait_for(gateway, "sim/rt-probe-a", "open"), "probes found the outage with no user traffic"
    assert sim_control.get("/_sim/stats").json()["models"]["rt-probe-a"]["requests"] > before
    for _ in range(5):  # users are routed around it, never trying it
        response = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "rt-probe", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            timeout=10,
        )
        assert response.headers["x-sluice-deployment"] == "sim/rt-probe-b"
        assert response.headers["x-sluice-attempts"] == "1"
    sim_control.delete("/_sim/faults")
    assert wait_for(gateway, "sim/rt-probe-a", "closed", timeout=10), "a probe closed it once it recovered"
