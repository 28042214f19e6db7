"""`sluicegate audit verify | export | prune`: the audit log, straight from the database named by
--database-url (or SLUICEGATE_DATABASE_URL, or a --config that names one), with the audit key from the
environment variable the configuration names."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from sluicegate.config.schema import GatewayConfig
from sluicegate.console import CommandError, add_database_flag, database_url

if TYPE_CHECKING:  # the store is imported when an audit command runs, not for every `sluicegate` command
    from sluicegate.store.audit import AuditTable
    from sluicegate.store.db import Store


class _Failed(Exception):
    pass


def _config(args: argparse.Namespace) -> GatewayConfig:
    from sluicegate.config.loader import ConfigError, load_config

    if not args.config:
        return GatewayConfig()
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise _Failed(str(exc)) from None


def _open(args: argparse.Namespace, config: GatewayConfig) -> tuple[Store, AuditTable]:
    from sluicegate.store.audit import AuditTable
    from sluicegate.store.db import Store

    named = config.store.database_url if "database_url" in config.store.model_fields_set else None
    try:
        url = database_url(args, named)
    except CommandError as exc:
        raise _Failed(str(exc)) from None
    key = os.environ.get(config.audit.key_env)
    store = Store(url, schema=config.store.db_schema, timeout=config.store.timeout_seconds)
    return store, AuditTable(store, key.encode() if key else None)


async def _verify(args: argparse.Namespace) -> int:
    config = _config(args)
    store, table = _open(args, config)
    try:
        await store.migrate()
        report = await table.verify()
    finally:
        await store.close()
    for problem in report.problems:
        print(problem)
    summary = f"{report.chains} chain(s), {report.records} record(s)"
    if report.unsigned_chains:
        summary += f", {report.unsigned_chains} unsigned (set {config.audit.key_env} to sign new chains)"
    if report.ok:
        print(f"audit log OK: {summary}")
        return 0
    print(f"audit log NOT intact: {len(report.problems)} problem(s) in {summary}", file=sys.stderr)
    return 1


async def _export(args: argparse.Namespace) -> int:
    from sluicegate.keys.service import AdminError, parse_since

    config = _config(args)
    since = None
    if args.since:
        try:
            since = round(parse_since(args.since, time.time()).timestamp() * 1_000_000)
        except AdminError as exc:
            raise _Failed(exc.message) from None
    store, table = _open(args, config)
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115 - closed below
    count = 0
    try:
        await store.migrate()
        async for record in table.export(since, args.kind):
            out.write(orjson.dumps(record) + b"\n")
            count += 1
    finally:
        await store.close()
        if args.output:
            out.close()
        else:
            out.flush()
    print(f"{count} record(s) exported", file=sys.stderr)
    return 0


async def _prune(args: argparse.Namespace) -> int:
    config = _config(args)
    days = args.older_than_days if args.older_than_days is not None else config.audit.retention_days
    store, table = _open(args, config)
    try:
        await store.migrate()
        pruned = await table.prune(round((time.time() - days * 86400) * 1_000_000))
    finally:
        await store.close()
    print(f"{pruned} record(s) older than {days:g} days pruned (each chain keeps a signed anchor)")
    return 0


def _run(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            result: int = asyncio.run(handler(args))
        except _Failed as exc:
            print(f"sluicegate audit: {exc}", file=sys.stderr)
            return 2
        return result

    return run


def add_audit_command(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident audit log").add_subparsers(
        dest="action", required=True
    )
    verify = audit.add_parser("verify", help="check every chain; name each edited, inserted or deleted record")
    verify.add_argument("--config", help="gateway YAML whose store to read")
    add_database_flag(verify)
    verify.set_defaults(func=_run(_verify))
    export = audit.add_parser("export", help="the records as JSON lines, oldest first")
    export.add_argument("--config", help="gateway YAML whose store to read")
    add_database_flag(export)
    export.add_argument("--since", help="7d, 24h or an ISO 8601 time")
    export.add_argument("--kind", help="only this kind (admin_change, key_lifecycle, breaker, firewall, ...)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.set_defaults(func=_run(_export))
    prune = audit.add_parser("prune", help="delete records past retention, keeping the chains verifiable")
    prune.add_argument("--config", help="gateway YAML whose store to prune")
    add_database_flag(prune)
    prune.add_argument("--older-than-days", dest="older_than_days", type=float)
    prune.set_defaults(func=_run(_prune))
