"""`sluicegate chaos`: run the chaos drills against a running gateway and simulator, print the figures."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sluicegate.console import add_gateway_flags, gateway_key, gateway_url, one_line
from sluicegate.routing.chaos import SCENARIOS, ChaosRunner, run_scenarios, table


def _chaos(args: argparse.Namespace) -> int:
    key = gateway_key(args)
    names = args.scenarios.split(",") if args.scenarios else None
    unknown = set(names or ()) - {s.name for s in SCENARIOS}
    if unknown:
        print(f"sluicegate chaos: unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    runner = ChaosRunner(
        gateway_url(args),
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
        print(f"sluicegate chaos: {one_line(exc)}", file=sys.stderr)
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
    add_gateway_flags(chaos)
    chaos.add_argument("--gateway", dest="url", help=argparse.SUPPRESS)  # the older name of --url
    chaos.add_argument("--simulator", default="http://127.0.0.1:9100", help="simulator base URL (its /_sim API)")
    chaos.add_argument("--model", required=True, help="the model group to drill (its deployments must be simulated)")
    chaos.add_argument("--scenarios", default=None, help="comma-separated scenario names (default: all)")
    chaos.add_argument("--concurrency", type=int, default=8)
    chaos.add_argument("--warmup", type=float, default=2.0, help="seconds of fault-free traffic first")
    chaos.add_argument("--duration", type=float, default=10.0, help="seconds of traffic under each fault")
    chaos.add_argument("--key-env", help=argparse.SUPPRESS)  # before --key: the variable holding the key
    chaos.set_defaults(func=_chaos)
