"""`sluicegate response-cache invalidate ...`: drops cached answers through a running gateway's admin API.

sluicegate response-cache invalidate --namespace tenant:acme
sluicegate response-cache invalidate --group gpt-4o-mini
sluicegate response-cache invalidate --cache-key 3f2a...   (an answer's x-sluice-cache-key)
sluicegate response-cache invalidate --all
"""

from __future__ import annotations

import argparse
from typing import Any

from sluicegate.console import CommandError, add_gateway_flags, admin_request, print_json


def _invalidate(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"namespace": args.namespace, "group": args.group, "key": args.cache_key, "all": args.all}
    body = {k: v for k, v in body.items() if v not in (None, False)}
    if not body:
        raise CommandError("name --namespace, --group or --cache-key, or --all")
    print_json(admin_request(args, "POST", "/admin/response-cache/invalidate", body))
    return 0


def add_response_cache_command(commands: Any) -> None:
    cache = commands.add_parser("response-cache", help="the response cache: drop cached answers")
    actions = cache.add_subparsers(dest="action", required=True)
    invalidate = actions.add_parser("invalidate", help="drop the answers of a namespace, a group, one entry, or all")
    invalidate.add_argument(
        "--namespace", help="tenant:<id> (all of it), or tenant:<id>/team:<id>, tenant:<id>/key:<id>"
    )
    invalidate.add_argument("--group", help="a model group")
    invalidate.add_argument("--cache-key", dest="cache_key", help="one answer's x-sluice-cache-key")
    invalidate.add_argument("--all", action="store_true", help="every answer")
    add_gateway_flags(invalidate)
    invalidate.add_argument("--key-env", help=argparse.SUPPRESS)
    invalidate.set_defaults(func=_invalidate)
