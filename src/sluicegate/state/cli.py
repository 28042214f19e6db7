"""`sluicegate limits ...`: the operator's runbook for a cost spike, against a running gateway's admin API.

sluicegate limits emergency team:t1 --rpm 10 --minutes 60 --reason "cost spike"
sluicegate limits economy key:key_abc --minutes 120
sluicegate limits list
sluicegate limits clear team:t1
"""

from __future__ import annotations

import argparse
from typing import Any

from sluicegate.console import add_gateway_flags, add_output_flags, admin_request, output_of, print_json, print_rows

_PATH = "/admin/limits/overrides"


def _call(args: argparse.Namespace, method: str, body: dict[str, Any] | None) -> int:
    result = admin_request(args, method, _PATH, body, timeout=10)
    if method == "GET":
        columns = ["entity", "rpm", "tpm", "economy", "until", "reason"]
        if output_of(args) == "json":
            print_json(result)
        else:
            print_rows(result["overrides"], columns, output_of(args), times=("until",))
        return 0
    if isinstance(result, dict) and isinstance(result.get("override"), dict):
        override = result["override"]
        print_rows([override], ["entity", "rpm", "tpm", "economy", "until", "reason"], "table", times=("until",))
    else:
        print_json(result)
    return 0


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
        add_gateway_flags(parser)
        parser.add_argument("--key-env", help=argparse.SUPPRESS)  # before --key: the variable holding the key

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
    add_output_flags(listing)
    listing.set_defaults(func=_list)
