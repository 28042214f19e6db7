"""The operator commands `keys`, `teams`, `tenants`, `users`, `spend` and `db`.

With `--url` (or SLUICEGATE_URL) they call a running gateway's admin API; with `--database-url` (or
SLUICEGATE_DATABASE_URL, or a `--config` that names its database) they work on that database directly, as
the master. With neither they refuse: a store made up in the current directory would hold keys no gateway
knows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sluicegate.config.schema import GatewayConfig
from sluicegate.console import (
    URL_ENV,
    CommandError,
    add_database_flag,
    add_gateway_flags,
    add_output_flags,
    database_url,
    gateway_key,
    output_of,
    print_json,
    print_rows,
    unreachable,
    when,
)

__all__ = ["CommandError", "add_commands", "grace_seconds"]

Handler = Callable[["Admin", argparse.Namespace], Awaitable[Any]]


class Admin:
    """One admin operation = (HTTP method, path, query, body); run remotely or on the store directly."""

    async def call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass


class RemoteAdmin(Admin):
    def __init__(self, url: str, key: str) -> None:
        import httpx

        self._url = url.rstrip("/")
        self._errors = httpx.HTTPError
        self._client = httpx.AsyncClient(base_url=self._url, headers={"authorization": f"Bearer {key}"}, timeout=30)

    async def call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        try:
            response = await self._client.request(method, path, params=params, json=body)
        except self._errors as exc:
            raise unreachable(self._url, exc) from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except Exception:
                message = response.text[:300]
            raise CommandError(f"{response.status_code}: {message}")
        return response.json() if response.content else None

    async def close(self) -> None:
        await self._client.aclose()


class LocalAdmin(Admin):
    """The same operations through `AdminService`, acting as the master."""

    def __init__(self, config: GatewayConfig, url: str) -> None:
        from sluicegate.keys.revocation import publish
        from sluicegate.keys.service import AdminService
        from sluicegate.store.db import Store
        from sluicegate.store.directory import Directory
        from sluicegate.store.spend import SpendLedger

        self.store = Store(url, schema=config.store.db_schema, timeout=config.store.timeout_seconds)
        redis_url = config.redis.url

        async def invalidate(hashes: list[str]) -> None:
            if redis_url and hashes:
                await publish(redis_url, hashes)

        self.service = AdminService(Directory(self.store), SpendLedger(self.store), invalidate)
        self._migrated = False
        self._audit = self._audit_log(config)

    def _audit_log(self, config: GatewayConfig) -> Any:
        """Changes made here bypass the gateways, so they are audited here: a chain of their own per run."""
        if not config.audit.enabled:
            return None
        import secrets

        from sluicegate.clock import SystemClock
        from sluicegate.events import EventBus
        from sluicegate.store.audit import AuditTable
        from sluicegate.telemetry.audit import AuditLog

        key = os.environ.get(config.audit.key_env)
        audit = AuditLog(
            AuditTable(self.store, key.encode() if key else None), "cli_" + secrets.token_hex(6), SystemClock()
        )
        events = EventBus()
        audit.listen(events)
        self.service.changed = events.publish
        return audit

    async def call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        from sluicegate.keys import service as s
        from sluicegate.principal import MASTER

        if not self._migrated:
            await self.store.migrate()
            self._migrated = True
        q = {k: v for k, v in (query or {}).items() if v is not None}
        svc = self.service
        parts = path.strip("/").split("/")[1:]  # drop "admin"
        route = (method, parts[0], len(parts))
        try:
            if route == ("POST", "keys", 1):
                return await svc.create_key(MASTER, s.KeyBody(**(body or {})))
            if route == ("GET", "keys", 1):
                return {"keys": await svc.list_keys(MASTER, q.get("team"), q.get("user"))}
            if route == ("GET", "keys", 2):
                return await svc.get_key(MASTER, parts[1])
            if route == ("DELETE", "keys", 2):
                return await svc.revoke_key(MASTER, parts[1])
            if route == ("PATCH", "keys", 2):
                return await svc.update_key(MASTER, parts[1], s.KeyUpdate(**(body or {})))
            if route == ("POST", "keys", 3):
                return await svc.rotate_key(MASTER, parts[1], float(q.get("grace_seconds", 3600)))
            if route == ("POST", "tenants", 1):
                return await svc.create_tenant(MASTER, s.TenantBody(**(body or {})))
            if route == ("GET", "tenants", 1):
                return {"tenants": await svc.list_tenants(MASTER)}
            if route == ("DELETE", "tenants", 2):
                return await svc.delete_tenant(MASTER, parts[1])
            if route == ("POST", "teams", 1):
                return await svc.create_team(MASTER, s.TeamBody(**(body or {})))
            if route == ("GET", "teams", 1):
                return {"teams": await svc.list_teams(MASTER, q.get("tenant"))}
            if route == ("DELETE", "teams", 2):
                return await svc.delete_team(MASTER, parts[1])
            if route == ("POST", "users", 1):
                return await svc.create_user(MASTER, s.UserBody(**(body or {})))
            if route == ("GET", "users", 1):
                return {"users": await svc.list_users(MASTER, q.get("team"))}
            if route == ("DELETE", "users", 2):
                return await svc.delete_user(MASTER, parts[1])
            if route == ("GET", "spend", 1):
                by = q.pop("by", "team")
                return await svc.spend(MASTER, by, **q)
        except s.AdminError as exc:
            raise CommandError(f"{exc.status}: {exc.message}") from None
        except ValueError as exc:  # pydantic's ValidationError
            raise CommandError(str(exc).splitlines()[0] if str(exc) else "invalid input") from None
        raise CommandError(f"unsupported operation {method} {path}")

    async def close(self) -> None:
        try:
            if self._audit is not None and self._migrated:
                await self._audit.flush()
        finally:
            await self.store.close()


# -- output ----------------------------------------------------------------------------------------

_TIMES = ("expires_at", "created_at", "previous_valid_until")


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("rpm", "tpm", "max_concurrency", "budget_period"):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    if getattr(args, "budget_usd", None) is not None:
        body["budget_usd"] = args.budget_usd
    if getattr(args, "regions", None) is not None:
        body["allowed_regions"] = [r.strip() for r in args.regions.split(",") if r.strip()]
    return body


# -- commands --------------------------------------------------------------------------------------

_KEY_COLUMNS = [
    "key_id",
    "hint",
    "role",
    "team",
    "user",
    "models",
    "max_tokens",
    "budget_usd",
    "allowed_regions",
    "enabled",
    "expires_at",
]


async def _keys_create(admin: Admin, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"team": args.team, **_limits(args)}
    for name, value in (
        ("user", args.user),
        ("name", args.name),
        ("max_tokens", args.max_tokens),
        ("expires", args.expires),
        ("guardrail_level", args.guardrail_level),
    ):
        if value is not None:
            body[name] = value
    if args.role:
        body["role"] = args.role
    if args.models:
        body["models"] = [m.strip() for part in args.models for m in part.split(",") if m.strip()]
    created = await admin.call("POST", "/admin/keys", body=body)
    if output_of(args) != "table":
        print_rows([created], list(created), output_of(args)) if output_of(args) == "csv" else print_json(created)
        return
    print(f"key_id  {created['key_id']}")
    print(f"key     {created['key']}")
    print("Store the key now: it is shown only once.", file=sys.stderr)


async def _keys_list(admin: Admin, args: argparse.Namespace) -> None:
    result = await admin.call("GET", "/admin/keys", query={"team": args.team, "user": args.user})
    print_rows(result["keys"], _KEY_COLUMNS, output_of(args), _TIMES)


async def _keys_revoke(admin: Admin, args: argparse.Namespace) -> None:
    revoked = await admin.call("DELETE", f"/admin/keys/{args.key_id}")
    print_json(revoked) if output_of(args) == "json" else print(f"revoked {revoked['key_id']}")


def _key_changes(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = _limits(args)
    for name in ("name", "max_tokens", "expires", "guardrail_level"):
        value = getattr(args, name, None)
        if value is not None:
            body[name] = value
    if getattr(args, "models", None):
        body["models"] = [m.strip() for part in args.models for m in part.split(",") if m.strip()]
    return body


async def _keys_update(admin: Admin, args: argparse.Namespace) -> None:
    changes = _key_changes(args)
    if not changes:
        raise CommandError("nothing to change: give at least one of the flags (see --help)")
    _show_key(await admin.call("PATCH", f"/admin/keys/{args.key_id}", body=changes), args)


def _set_enabled(enabled: bool) -> Handler:
    async def set_enabled(admin: Admin, args: argparse.Namespace) -> None:
        _show_key(await admin.call("PATCH", f"/admin/keys/{args.key_id}", body={"enabled": enabled}), args)

    return set_enabled


def _show_key(key: dict[str, Any], args: argparse.Namespace) -> None:
    if output_of(args) == "json":
        print_json(key)
    else:
        print_rows([key], _KEY_COLUMNS, output_of(args), _TIMES)


def grace_seconds(text: str, now: float) -> float:
    """`--grace`: a duration (0s, 90m, 1.5h, 7d), plain seconds, or the ISO 8601 time the old secret ends."""
    from sluicegate.keys.service import AdminError, parse_duration, parse_moment

    text = text.strip()
    try:
        if text.replace(".", "", 1).isdigit():
            return float(text)
        seconds = parse_duration(text, "--grace")
        if seconds is not None:
            return seconds
        until = parse_moment(text, "--grace", "0s, 90m, 1.5h, 7d").timestamp()
    except AdminError as exc:
        raise CommandError(exc.message) from None
    if until <= now:
        raise CommandError(f"'--grace' is in the past: {text}")
    return until - now


async def _keys_rotate(admin: Admin, args: argparse.Namespace) -> None:
    grace = grace_seconds(args.grace, time.time()) if args.grace else 3600.0
    rotated = await admin.call("POST", f"/admin/keys/{args.key_id}/rotate", query={"grace_seconds": grace})
    if output_of(args) == "json":
        print_json(rotated)
        return
    print(f"key_id  {rotated['key_id']}")
    print(f"key     {rotated['key']}")
    until = when(rotated["previous_valid_until"]) if rotated["previous_valid_until"] else "now (no grace)"
    print(f"The old key stays valid until {until}.", file=sys.stderr)


def _entity_commands(kind: str, columns: list[str]) -> tuple[Handler, Handler, Handler]:
    async def create(admin: Admin, args: argparse.Namespace) -> None:
        body: dict[str, Any] = {"id": args.id, **_limits(args)}
        for name in ("name", "tenant", "team", "email", "guardrail_level"):
            value = getattr(args, name, None)
            if value is not None:
                body[name] = value
        created = await admin.call("POST", f"/admin/{kind}", body=body)
        print_json(created) if output_of(args) == "json" else print_rows([created], columns, output_of(args), _TIMES)

    async def list_(admin: Admin, args: argparse.Namespace) -> None:
        query = {name: getattr(args, name, None) for name in ("tenant", "team")}
        rows = (await admin.call("GET", f"/admin/{kind}", query=query))[kind]
        print_rows(rows, columns, output_of(args), _TIMES)

    async def delete(admin: Admin, args: argparse.Namespace) -> None:
        await admin.call("DELETE", f"/admin/{kind}/{args.id}")
        print(f"deleted {args.id}")

    return create, list_, delete


async def _spend_report(admin: Admin, args: argparse.Namespace) -> None:
    query = {
        "by": args.by,
        "since": args.since,
        "until": args.until,
        "key_id": args.key_id,
        "team": args.team,
        "user": args.user,
        "model": args.model,
        "feature": args.feature,
    }
    rows = (await admin.call("GET", "/admin/spend", query=query))["rows"]
    columns = ["group", "requests", "input_tokens", "output_tokens", "cost_usd", "unpriced_requests"]
    output = args.format or output_of(args)
    if output == "json":
        print_json({"rows": rows})
    else:
        print_rows(rows, columns, output)


# -- wiring ----------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> GatewayConfig:
    from sluicegate.config.loader import ConfigError, load_config

    if not getattr(args, "config", None):
        return GatewayConfig()
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc).splitlines()[0]) from None


def _database(args: argparse.Namespace, config: GatewayConfig) -> str:
    """The database to work on directly; one the `--config` file names counts, the built-in default not."""
    named = config.store.database_url if "database_url" in config.store.model_fields_set else None
    return database_url(args, named)


def _admin_for(args: argparse.Namespace) -> Admin:
    url = args.url or os.environ.get(URL_ENV)
    if url:
        return RemoteAdmin(url, gateway_key(args))
    config = _load(args)
    return LocalAdmin(config, _database(args, config))


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def go() -> None:
            admin = _admin_for(args)
            try:
                await handler(admin, args)
            finally:
                await admin.close()

        try:
            asyncio.run(go())
        except CommandError as exc:
            print(f"sluicegate {args.command}: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def _db_upgrade(args: argparse.Namespace) -> int:
    from sluicegate.store.db import Store

    async def go() -> None:
        config = _load(args)
        store = Store(_database(args, config), schema=config.store.db_schema, timeout=config.store.timeout_seconds)
        try:
            await store.migrate()
        finally:
            await store.close()

    try:
        asyncio.run(go())
    except CommandError as exc:
        print(f"sluicegate db: {exc}", file=sys.stderr)
        return 1
    print("database schema is up to date")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    add_gateway_flags(parser, url_default=False)
    add_database_flag(parser)
    parser.add_argument("--config", help="gateway YAML: its database (if it names one) and Redis, for direct work")
    add_output_flags(parser)


def _limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rpm", type=int)
    parser.add_argument("--tpm", type=int)
    parser.add_argument("--max-concurrency", dest="max_concurrency", type=int)
    parser.add_argument("--budget-usd", dest="budget_usd", help="exact dollars, e.g. 25.50")
    parser.add_argument("--budget-period", dest="budget_period", choices=["daily", "weekly", "monthly", "total"])
    parser.add_argument("--regions", help="data residency: allowed regions or prefixes, comma separated (eu,us-east-1)")


def add_commands(commands: Any) -> None:
    """Adds the subcommands to the `sluicegate` parser."""
    keys = commands.add_parser("keys", help="virtual API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create a key (printed once)")
    _common(create)
    create.add_argument("--team", required=True)
    create.add_argument("--user")
    create.add_argument("--name")
    create.add_argument("--role", choices=["inference", "viewer", "team_admin", "tenant_admin"])
    create.add_argument("--models", action="append", help="allowed model names or globs, comma separated")
    create.add_argument("--max-tokens", dest="max_tokens", type=int, help="cap on max_tokens per request")
    create.add_argument("--expires", help="30d, 12h or an ISO 8601 time")
    create.add_argument("--guardrail-level", dest="guardrail_level")
    _limit_flags(create)
    create.set_defaults(func=_run(_keys_create))
    listing = keys.add_parser("list", help="list keys (never their secrets)")
    _common(listing)
    listing.add_argument("--team")
    listing.add_argument("--user")
    listing.set_defaults(func=_run(_keys_list))
    revoke = keys.add_parser("revoke", help="revoke a key on every instance")
    _common(revoke)
    revoke.add_argument("key_id")
    revoke.set_defaults(func=_run(_keys_revoke))
    update = keys.add_parser("update", help="change a key's models, limits, expiry or name")
    _common(update)
    update.add_argument("key_id")
    update.add_argument("--name")
    update.add_argument("--models", action="append", help="allowed model names or globs, comma separated")
    update.add_argument("--max-tokens", dest="max_tokens", type=int, help="cap on max_tokens per request")
    update.add_argument("--expires", help="30d, 12h or an ISO 8601 time")
    update.add_argument("--guardrail-level", dest="guardrail_level")
    _limit_flags(update)
    update.set_defaults(func=_run(_keys_update))
    toggles = (("disable", False, "stop a key working (reversible)"), ("enable", True, "undo disable"))
    for action, enabled, what in toggles:
        toggle = keys.add_parser(action, help=what)
        _common(toggle)
        toggle.add_argument("key_id")
        toggle.set_defaults(func=_run(_set_enabled(enabled)))
    rotate = keys.add_parser("rotate", help="new secret; the old one works for --grace")
    _common(rotate)
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--grace", default="1h", help="how long the old secret stays valid: 0s, 90m, 1.5h, 7d or an ISO 8601 time"
    )
    rotate.set_defaults(func=_run(_keys_rotate))

    for kind, parent_flag, columns in (
        (
            "tenants",
            None,
            ["id", "name", "rpm", "tpm", "budget_usd", "budget_period", "allowed_regions", "guardrail_level"],
        ),
        (
            "teams",
            "--tenant",
            ["id", "name", "tenant", "rpm", "tpm", "budget_usd", "budget_period", "allowed_regions", "guardrail_level"],
        ),
        ("users", "--team", ["id", "team", "email", "rpm", "tpm", "budget_usd", "budget_period", "allowed_regions"]),
    ):
        group = commands.add_parser(kind, help=f"manage {kind}").add_subparsers(dest="action", required=True)
        create_entity, list_entities, delete_entity = _entity_commands(kind, columns)
        make = group.add_parser("create")
        _common(make)
        make.add_argument("id")
        if kind != "users":
            make.add_argument("--name")
            make.add_argument("--guardrail-level", dest="guardrail_level", help="off, standard, strict or a policy")
        else:
            make.add_argument("--email")
        if parent_flag:
            make.add_argument(parent_flag, required=kind == "users")
        _limit_flags(make)
        make.set_defaults(func=_run(create_entity))
        show = group.add_parser("list")
        _common(show)
        if parent_flag:
            show.add_argument(parent_flag)
        show.set_defaults(func=_run(list_entities))
        remove = group.add_parser("delete")
        _common(remove)
        remove.add_argument("id")
        remove.set_defaults(func=_run(delete_entity))

    spend = commands.add_parser("spend", help="spend reports").add_subparsers(dest="action", required=True)
    report = spend.add_parser("report", help="spend grouped by team, user, key, model, feature or day")
    _common(report)
    report.add_argument("--by", default="team", choices=["tenant", "team", "user", "key", "model", "feature", "day"])
    report.add_argument("--since", help="7d, 24h or an ISO 8601 date")
    report.add_argument("--until")
    report.add_argument("--key-id", dest="key_id")
    report.add_argument("--team")
    report.add_argument("--user")
    report.add_argument("--model")
    report.add_argument("--feature")
    report.add_argument("--format", default=None, choices=["table", "csv", "json"], help="the same as --output")
    report.set_defaults(func=_run(_spend_report))

    db = commands.add_parser("db", help="the durable store").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", help="apply the database migrations")
    add_database_flag(upgrade)
    upgrade.add_argument("--config", help="gateway YAML whose database to migrate (if it names one)")
    upgrade.set_defaults(func=_db_upgrade)
