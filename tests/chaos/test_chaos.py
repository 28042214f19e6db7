"""The chaos suite: each fault scenario against a real gateway and simulator, with the figures it must meet."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sluicegate.routing.chaos import (
    AMPLIFICATION_LIMIT,
    MIN_CALLS_TO_JUDGE,
    OPEN_WITHIN_S,
    SCENARIOS,
    ChaosRunner,
    Result,
    table,
)
from tests.conftest import MASTER_KEY, Proc, free_port, start_gateway, start_process

SIMULATOR = """
seed: 11
default:
  ttft_ms: 5
  latency_ms: 10
  tokens_per_second: 0
  output_tokens: {min: 8, max: 16}
models:
  chaos-a: {ttft_ms: 5, latency_ms: 10}
  chaos-b: {ttft_ms: 40, latency_ms: 80}
  chaos-c: {ttft_ms: 40, latency_ms: 80}
"""

GROUP = """
  - name: chaos
    routing:
      strategy: latency
      breaker: {consecutive_failures: 5, minimum_calls: 10, failure_rate: 0.5, min_open_s: 30}
    deployments:
      - {provider: sim, model: chaos-a, timeouts: {first_byte: 2, total: 5}}
      - {provider: sim, model: chaos-b, timeouts: {first_byte: 2, total: 5}}
      - {provider: sim, model: chaos-c, timeouts: {first_byte: 2, total: 5}}
  - name: chaos-solo
    routing: {fallbacks: [chaos-spare], breaker: {consecutive_failures: 5, minimum_calls: 10, min_open_s: 30}}
    deployments:
      - {provider: sim, model: chaos-solo-a}
  - name: chaos-spare
    deployments:
      - {provider: sim, model: chaos-spare-a}
"""

RESULTS: list[Result] = []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Proc]]:
    workdir = tmp_path_factory.mktemp("chaos")
    config = workdir / "simulator.yaml"
    config.write_text(SIMULATOR)
    port = free_port()
    args = ["simulator", "--port", str(port), "--config", str(config)]
    simulator = start_process(args, port, workdir, "chaos-sim", ready_path="/_sim/stats")
    gateway = start_gateway(simulator, Path(workdir), "chaos-gateway", GROUP)
    yield simulator, gateway
    gateway.stop()
    simulator.stop()
    if RESULTS:
        print("\n" + table(RESULTS))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_meets_its_figures(stack: tuple[Proc, Proc], scenario: object) -> None:
    simulator, gateway = stack
    runner = ChaosRunner(gateway.url, simulator.url, MASTER_KEY, "chaos", concurrency=6, warmup_s=0.8, duration_s=2.5)
    result = asyncio.run(runner.run(scenario))  # type: ignore[arg-type]
    RESULTS.append(result)
    print("\n" + table([result]))
    assert result.requests >= 50, "steady traffic during the drill"
    assert result.unclean_failures == 0, "every failure is a readable error, never a hang or a broken body"
    s = result.scenario
    if s.healthy_remains and not s.visible_failures:
        assert result.success_rate >= 0.999, table([result])
    if s.opens_breaker and result.faulty_calls >= MIN_CALLS_TO_JUDGE:  # else routing had already moved away
        assert result.time_to_open_s is not None and result.time_to_open_s <= OPEN_WITHIN_S, table([result])
    assert result.transitions <= 2, "no flapping: at most open (and half-open) per drill"
    if s.healthy_remains:
        assert result.amplification <= AMPLIFICATION_LIMIT, table([result])
    if s.name == "all-down":
        assert result.success_rate == 0 and result.clean_failures == result.requests
    if s.name == "latency-spike":
        assert result.added_p99_ms < 1000, "routing moves away from the slow deployment"
    assert result.passed, table([result])


def test_chaos_command_prints_the_table_for_an_operator(stack: tuple[Proc, Proc]) -> None:
    simulator, gateway = stack
    # all-down has a verdict that does not depend on how fast this shared machine is in a 1.5 s drill
    args = ["--gateway", gateway.url, "--simulator", simulator.url, "--model", "chaos", "--scenarios", "all-down"]
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "chaos", *args, "--warmup", "0.5", "--duration", "1.5"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLUICEGATE_MASTER_KEY": MASTER_KEY},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    header, _, row = done.stdout.splitlines()[:3]
    assert header.split()[:4] == ["scenario", "requests", "success", "open_s"]
    assert row.startswith("all-down") and row.endswith("ok")
    unknown = subprocess.run(
        [sys.executable, "-m", "sluicegate", "chaos", *args[:-1], "no-such-drill"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SLUICEGATE_MASTER_KEY": MASTER_KEY},
    )
    assert unknown.returncode == 2 and "no-such-drill" in unknown.stderr


def test_all_down_takes_the_fallback_groups_down_too(stack: tuple[Proc, Proc]) -> None:
    simulator, gateway = stack
    all_down = next(s for s in SCENARIOS if s.name == "all-down")
    runner = ChaosRunner(
        gateway.url, simulator.url, MASTER_KEY, "chaos-solo", concurrency=4, warmup_s=0.5, duration_s=2.0
    )
    spare_before = httpx.get(f"{simulator.url}/_sim/stats").json()["models"].get("chaos-spare-a", {}).get("requests", 0)
    result = asyncio.run(runner.run(all_down))
    print("\n" + table([result]))
    # the fallback group would otherwise keep serving, and the drill would report a success rate it did not test
    assert result.requests > 0 and result.success_rate == 0, table([result])
    assert result.clean_failures == result.requests and result.passed, table([result])
    spare_after = httpx.get(f"{simulator.url}/_sim/stats").json()["models"]["chaos-spare-a"]["requests"]
    assert spare_after > spare_before, "the fallback group was reached, and failed too"
    # a drill where a healthy deployment remains leaves the fallback group alone: it serves
    outage = next(s for s in SCENARIOS if s.name == "primary-outage")
    result = asyncio.run(runner.run(outage))
    assert result.success_rate >= 0.999, table([result])
