"""`sluicegate limits ...`: the operator's runbook for a cost spike, against a running gateway's admin API.

sluicegate limits emergency team:t1 --rpm 10 --minutes 60 --reason "cost spike"
sluicegate limits economy key:key_abc --minutes 120
sluicegate limits list
sluicegate limits clear team:t1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def _call(args: argparse.Namespace, method: str, body: dict[str, Any] | None) -> int:
    key = os.environ.get(args.key_env)
    if not key:
        print(f"set {args.key_env} to the gateway's master key", file=sys.stderr)
        return 2
    request = urllib.request.Request(
        args.url.rstrip("/") + "/admin/limits/overrides",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(json.dumps(json.loads(response.read()), indent=2))
            return 0
    except urllib.error.HTTPError as error:
        print(error.read().decode(errors="replace"), file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot reach the gateway at {args.url}: {error}", file=sys.stderr)
        return 1


def _emergency(args: argparse.Namespace) -> int:
    body = {"entity": args.entity, "minutes": args.minutes, "rpm": args.rpm, "tpm": args.tpm, "reason": args.reason}
    return _call(args, "PUT", {k: v for k, v in body.items() if v is not None})


def _economy(args: argparse.Namespace) -> int:
    body = {"entity": args.entity, "minutes": args.minutes, "economy": True, "reason": args.reason}
    return _call(args, "PUT", {k: v for k, v in body.items() if v is not None})


def _clear(args: argparse.Namespace) -> int:
    return _call(args, "DELETE", {"entity": args.entity})


def _list(args: argparse.Namespace) -> int:
    return _call(args, "GET", None)


def add_limits_command(commands: Any) -> None:
    limits = commands.add_parser("limits", help="operator actions: emergency rate limits and economy mode")
    actions = limits.add_subparsers(dest="action", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:4000", help="the gateway (default %(default)s)")
        parser.add_argument("--key-env", default="SLUICEGATE_MASTER_KEY", help="variable holding the master key")

    emergency = actions.add_parser("emergency", help="put an entity on an emergency rate limit")
    emergency.add_argument("entity", help="key:<id>, user:<id>, team:<id> or tenant:<id>")
    emergency.add_argument("--rpm", type=int)
    emergency.add_argument("--tpm", type=int)
    emergency.add_argument("--minutes", type=float, required=True)
    emergency.add_argument("--reason")
    common(emergency)
    emergency.set_defaults(func=_emergency)

    economy = actions.add_parser("economy", help="only the cheapest model group for an entity, for a while")
    economy.add_argument("entity")
    economy.add_argument("--minutes", type=float, required=True)
    economy.add_argument("--reason")
    common(economy)
    economy.set_defaults(func=_economy)

    clear = actions.add_parser("clear", help="end an entity's operator action now")
    clear.add_argument("entity")
    common(clear)
    clear.set_defaults(func=_clear)

    listing = actions.add_parser("list", help="the operator actions in force")
    common(listing)
    listing.set_defaults(func=_list)
