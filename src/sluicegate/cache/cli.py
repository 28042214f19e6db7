"""`sluicegate response-cache invalidate ...`: drops cached answers through a running gateway's admin API.

sluicegate response-cache invalidate --namespace tenant:acme
sluicegate response-cache invalidate --group gpt-4o-mini
sluicegate response-cache invalidate --key 3f2a...   (an answer's x-sluice-cache-key)
sluicegate response-cache invalidate --all
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def _invalidate(args: argparse.Namespace) -> int:
    key = os.environ.get(args.key_env)
    if not key:
        print(f"set {args.key_env} to the gateway's master key", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"namespace": args.namespace, "group": args.group, "key": args.key, "all": args.all}
    body = {k: v for k, v in body.items() if v not in (None, False)}
    if not body:
        print("name --namespace, --group or --key, or --all", file=sys.stderr)
        return 2
    request = urllib.request.Request(
        args.url.rstrip("/") + "/admin/response-cache/invalidate",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(json.dumps(json.loads(response.read()), indent=2))
            return 0
    except urllib.error.HTTPError as error:
        print(error.read().decode(errors="replace"), file=sys.stderr)
        return 1
    except OSError as error:
        print(f"cannot reach the gateway at {args.url}: {error}", file=sys.stderr)
        return 1


def add_response_cache_command(commands: Any) -> None:
    cache = commands.add_parser("response-cache", help="the response cache: drop cached answers")
    actions = cache.add_subparsers(dest="action", required=True)
    invalidate = actions.add_parser("invalidate", help="drop the answers of a namespace, a group, one entry, or all")
    invalidate.add_argument(
        "--namespace", help="tenant:<id> (all of it), or tenant:<id>/team:<id>, tenant:<id>/key:<id>"
    )
    invalidate.add_argument("--group", help="a model group")
    invalidate.add_argument("--key", help="one answer's x-sluice-cache-key")
    invalidate.add_argument("--all", action="store_true", help="every answer")
    invalidate.add_argument("--url", default="http://127.0.0.1:4000", help="the gateway (default %(default)s)")
    invalidate.add_argument("--key-env", default="SLUICEGATE_MASTER_KEY", help="variable holding the master key")
    invalidate.set_defaults(func=_invalidate)
