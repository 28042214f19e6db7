"""Routing decision time with many deployments in a group, per strategy.

    python bench/routing.py [--deployments 50] [--decisions 20000] [--runs 5]

Times the route stage's whole decision (needs from the request, filters, strategy, chain) in-process, with
latency samples and usage recorded for every deployment, a few breakers open and one deployment at its
concurrency limit. Prints the median microseconds per decision over --runs runs, and the share of the
gateway's per-request budget at its 5,000 requests/s target (200 us) that routing takes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time

from sluicegate.canonical import ChatRequest
from sluicegate.catalog import ModelCatalog
from sluicegate.config.loader import parse_config
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.route import Route
from sluicegate.principal import MASTER
from sluicegate.routing.breaker import BreakerState
from sluicegate.routing.router import Router

STRATEGIES = ("weighted", "least_busy", "latency", "cost", "usage")
BUDGET_US = 1e6 / 5000


def config_text(strategy: str, deployments: int) -> str:
    lines = [
        "providers:",
        "  p: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}",
        "models:",
        "  - name: big",
        f"    routing: {{strategy: {strategy}}}",
        "    deployments:",
    ]
    for i in range(deployments):
        lines.append(
            f"      - {{provider: p, model: m{i}, weight: {1 + i % 5}, "
            f"region: {'eu-west-1' if i % 2 else 'us-east-1'}, "
            f"price: {{input: {0.1 + i / 10:.2f}, output: {0.4 + i / 5:.2f}}}, rpm: 10000, tpm: 2000000, "
            f"context_window: 128000, capabilities: [tools, vision]}}"
        )
    return "\n".join(lines) + "\n"


def build(strategy: str, deployments: int) -> tuple[Route, Router]:
    config = parse_config(config_text(strategy, deployments))
    catalog = ModelCatalog.from_config(config, environ={})
    router = Router(catalog, config.routing, rng=random.Random(5))
    rng = random.Random(9)
    for i, health in enumerate(router.health.values()):
        for _ in range(64):
            health.stats.observe(rng.lognormvariate(-1.5, 0.5), rng.lognormvariate(-2.5, 0.5), 100)
        health.usage.add(requests=rng.randint(0, 5000), tokens=rng.randint(0, 1_000_000))
        health.limit.in_flight = rng.randint(0, 20)
        if i % 17 == 3:
            health.breaker.force(BreakerState.OPEN)
        if i == 7:
            health.limit.limit = 1
    return Route(catalog, router), router


async def measure(route: Route, decisions: int, headers: dict[str, str]) -> float:
    request = ChatRequest(
        model="big",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Summarise the plot of Hamlet in two sentences."},
        ],
        params={"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
    )
    contexts = [RequestContext(f"r{i}", "chat", "openai", headers, request) for i in range(decisions)]
    for ctx in contexts:
        ctx.principal = MASTER
    started = time.perf_counter()
    for ctx in contexts:
        await route.on_request(ctx)
    return (time.perf_counter() - started) / decisions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"routing decision, {args.deployments} deployments in one group, median of {args.runs} runs")
    print(f"{'strategy':<12} {'us/decision':>12} {'decisions/s':>12} {'share of 200us':>15}")
    for strategy in STRATEGIES:
        route, _ = build(strategy, args.deployments)
        headers = {"x-sluice-max-latency-ms": "400"} if strategy == "cost" else {}
        runs = [asyncio.run(measure(route, args.decisions, headers)) for _ in range(args.runs)]
        median = statistics.median(runs)
        print(f"{strategy:<12} {median:>12.1f} {1e6 / median:>12,.0f} {median / BUDGET_US:>15.1%}")


if __name__ == "__main__":
    main()
