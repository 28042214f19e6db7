"""The operator commands `keys`, `teams`, `tenants`, `users`, `spend` and `db`.

With `--url` (or SLUICEGATE_URL) they call a running gateway's admin API; without, they work on the store
named by `--config` (or the defaults and SLUICEGATE_DATABASE_URL) directly, as the master.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from sluicegate.config.schema import GatewayConfig

Handler = Callable[["Admin", argparse.Namespace], Awaitable[Any]]


class CommandError(Exception):
    pass


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

        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers={"authorization": f"Bearer {key}"}, timeout=30
        )

    async def call(
        self, method: str, path: str, *, query: dict[str, Any] | None = None, body: dict[str, Any] | None = None
    ) -> Any:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        response = await self._client.request(method, path, params=params, json=body)
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

    def __init__(self, config: GatewayConfig) -> None:
        from sluicegate.keys.accounts import open_store
        from sluicegate.keys.revocation import publish
        from sluicegate.keys.service import AdminService
        from sluicegate.store.directory import Directory
        from sluicegate.store.spend import SpendLedger

        self.store = open_store(config)
        redis_url = config.redis.url

        async def invalidate(hashes: list[str]) -> None:
            if redis_url and hashes:
                await publish(redis_url, hashes)

        self.service = AdminService(Directory(self.store), SpendLedger(self.store), invalidate)
        self._migrated = False

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
        await self.store.close()


# -- output ----------------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "*"
    return str(value)


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
    if args.json:
        _print_json(created)
        return
    print(f"key_id  {created['key_id']}")
    print(f"key     {created['key']}")
    print("Store the key now: it is shown only once.", file=sys.stderr)


async def _keys_list(admin: Admin, args: argparse.Namespace) -> None:
    result = await admin.call("GET", "/admin/keys", query={"team": args.team, "user": args.user})
    _print_json(result["keys"]) if args.json else _print_table(result["keys"], _KEY_COLUMNS)


async def _keys_revoke(admin: Admin, args: argparse.Namespace) -> None:
    revoked = await admin.call("DELETE", f"/admin/keys/{args.key_id}")
    _print_json(revoked) if args.json else print(f"revoked {revoked['key_id']}")


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
    if args.json:
        _print_json(rotated)
        return
    print(f"key_id  {rotated['key_id']}")
    print(f"key     {rotated['key']}")
    print(f"The old key stays valid until {rotated['previous_valid_until'] or 'now (no grace)'}.", file=sys.stderr)


def _entity_commands(kind: str, columns: list[str]) -> tuple[Handler, Handler, Handler]:
    async def create(admin: Admin, args: argparse.Namespace) -> None:
        body: dict[str, Any] = {"id": args.id, **_limits(args)}
        for name in ("name", "tenant", "team", "email"):
            value = getattr(args, name, None)
            if value is not None:
                body[name] = value
        created = await admin.call("POST", f"/admin/{kind}", body=body)
        _print_json(created) if args.json else _print_table([created], columns)

    async def list_(admin: Admin, args: argparse.Namespace) -> None:
        query = {name: getattr(args, name, None) for name in ("tenant", "team")}
        rows = (await admin.call("GET", f"/admin/{kind}", query=query))[kind]
        _print_json(rows) if args.json else _print_table(rows, columns)

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
    if args.format == "json":
        _print_json({"rows": rows})
    elif args.format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
    else:
        _print_table(rows, columns)


# -- wiring ----------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> GatewayConfig:
    from sluicegate.config.loader import ConfigError, load_config

    if not args.config:
        return GatewayConfig()
    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def _admin_for(args: argparse.Namespace) -> Admin:
    url = args.url or os.environ.get("SLUICEGATE_URL")
    if url:
        key = args.key or os.environ.get("SLUICEGATE_ADMIN_KEY") or os.environ.get("SLUICEGATE_MASTER_KEY")
        if not key:
            raise CommandError("give --key or set SLUICEGATE_ADMIN_KEY / SLUICEGATE_MASTER_KEY to use the admin API")
        return RemoteAdmin(url, key)
    return LocalAdmin(_load(args))


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
    from sluicegate.keys.accounts import open_store

    async def go() -> None:
        store = open_store(_load(args))
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
    parser.add_argument("--url", help="a running gateway's base URL (default: SLUICEGATE_URL; else the store)")
    parser.add_argument("--key", help="admin or master key for --url (default: SLUICEGATE_ADMIN_KEY, _MASTER_KEY)")
    parser.add_argument("--config", help="gateway YAML whose store to use directly (without --url)")
    parser.add_argument("--json", action="store_true", help="print JSON")


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
    rotate = keys.add_parser("rotate", help="new secret; the old one works for --grace")
    _common(rotate)
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--grace", default="1h", help="how long the old secret stays valid: 0s, 90m, 1.5h, 7d or an ISO 8601 time"
    )
    rotate.set_defaults(func=_run(_keys_rotate))

    for kind, parent_flag, columns in (
        ("tenants", None, ["id", "name", "rpm", "tpm", "budget_usd", "budget_period", "allowed_regions"]),
        ("teams", "--tenant", ["id", "name", "tenant", "rpm", "tpm", "budget_usd", "budget_period", "allowed_regions"]),
        ("users", "--team", ["id", "team", "email", "rpm", "tpm", "budget_usd", "budget_period", "allowed_regions"]),
    ):
        group = commands.add_parser(kind, help=f"manage {kind}").add_subparsers(dest="action", required=True)
        create_entity, list_entities, delete_entity = _entity_commands(kind, columns)
        make = group.add_parser("create")
        _common(make)
        make.add_argument("id")
        if kind != "users":
            make.add_argument("--name")
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
    report.add_argument("--format", default="table", choices=["table", "csv", "json"])
    report.set_defaults(func=_run(_spend_report))

    db = commands.add_parser("db", help="the durable store").add_subparsers(dest="action", required=True)
    upgrade = db.add_parser("upgrade", help="apply the database migrations")
    upgrade.add_argument("--config", help="gateway YAML whose store to migrate")
    upgrade.set_defaults(func=_db_upgrade)
