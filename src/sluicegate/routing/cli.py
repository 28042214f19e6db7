"""`sluicegate chaos`: run the chaos drills against a running gateway and simulator, print the figures."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from sluicegate.routing.chaos import SCENARIOS, ChaosRunner, run_scenarios, table


def _chaos(args: argparse.Namespace) -> int:
    key = os.environ.get(args.key_env)
    if not key:
        print(f"sluicegate chaos: set {args.key_env} to the gateway's master key", file=sys.stderr)
        return 2
    names = args.scenarios.split(",") if args.scenarios else None
    unknown = set(names or ()) - {s.name for s in SCENARIOS}
    if unknown:
        print(f"sluicegate chaos: unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    runner = ChaosRunner(
        args.gateway,
        args.simulator,
        key,
        args.model,
        concurrency=args.concurrency,
        warmup_s=args.warmup,
        duration_s=args.duration,
    )
    try:
        results = asyncio.run(run_scenarios(runner, names))
    except Exception as exc:  # an unreachable URL or a model group that does not exist: say so, briefly
        print(f"sluicegate chaos: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(table(results))
    return 0 if all(r.passed for r in results) else 1


def add_chaos_command(commands: Any) -> None:
    chaos = commands.add_parser(
        "chaos",
        help="fault drills against a running gateway + simulator",
        description="Injects faults into the simulator deployments of one model group, drives traffic through "
        "the gateway and prints success rate, time to breaker open, breaker transitions, added p99 and upstream "
        "calls per request. Exit status 1 if a scenario misses its target. Scenarios: "
        + ", ".join(s.name for s in SCENARIOS),
    )
    chaos.add_argument("--gateway", default="http://127.0.0.1:4000", help="gateway base URL")
    chaos.add_argument("--simulator", default="http://127.0.0.1:9100", help="simulator base URL (its /_sim API)")
    chaos.add_argument("--model", required=True, help="the model group to drill (its deployments must be simulated)")
    chaos.add_argument("--scenarios", default=None, help="comma-separated scenario names (default: all)")
    chaos.add_argument("--concurrency", type=int, default=8)
    chaos.add_argument("--warmup", type=float, default=2.0, help="seconds of fault-free traffic first")
    chaos.add_argument("--duration", type=float, default=10.0, help="seconds of traffic under each fault")
    chaos.add_argument("--key-env", default="SLUICEGATE_MASTER_KEY", help="environment variable with the master key")
    chaos.set_defaults(func=_chaos)
