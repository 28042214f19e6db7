"""The same cases against SQLite and PostgreSQL: entities, key lookup, idempotent ledger, spend reports."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sluicegate.keys.service import AdminError, AdminService, KeyBody, TeamBody, TenantBody, UserBody
from sluicegate.principal import MASTER
from sluicegate.store.db import Store
from sluicegate.store.directory import Directory
from sluicegate.store.models import ApiKey
from sluicegate.store.spend import SpendFilter, SpendLedger
from tests.store.conftest import POSTGRES_URL, drop_schema, postgres_reachable, unique_schema

NOW = 1_790_000_000.0  # a fixed clock: 2026-09-21


def service(store: Store, invalidated: list[str] | None = None) -> AdminService:
    sink = invalidated if invalidated is not None else []

    async def invalidate(hashes: list[str]) -> None:
        sink.extend(hashes)

    return AdminService(Directory(store), SpendLedger(store), invalidate, clock=lambda: NOW)


def row(request_id: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "request_id": request_id,
        "ts": dt.datetime.fromtimestamp(NOW, dt.UTC),
        "day": "2026-09-21",
        "tenant_id": "acme",
        "team_id": "search",
        "user_id": None,
        "key_id": "key_a",
        "feature": None,
        "end_user": None,
        "endpoint": "chat",
        "model": "gpt-4o-mini",
        "deployment": "sim/gpt-4o-mini",
        "provider": "sim",
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "cost_micros": 100,
        "latency_ms": 1.5,
        "ttft_ms": None,
        "cache_status": None,
        "outcome": "ok",
        "status": 200,
        "stream": False,
    }
    base.update(fields)
    return base


async def test_migrations_are_idempotent(store: Store) -> None:
    await store.migrate()
    await store.migrate()


async def test_instances_starting_together_on_a_fresh_postgresql_schema_all_migrate() -> None:
    """Several gateways started at once (a rollout) against a schema that does not exist yet: each one
    creates it and migrates without failing its start (the schema is created under the migration lock, and
    waiting for another's migration is not cut at the store's query timeout)."""
    if not await postgres_reachable():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the concurrent migration test did not run")
    schema = unique_schema()
    stores = [Store(POSTGRES_URL, schema=schema, timeout=0.5) for _ in range(4)]  # a migration takes longer
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert await SpendLedger(stores[0]).count() == 0
    finally:
        for s in stores:
            await s.close()
        await drop_schema(schema)


async def test_tenant_team_user_key_and_lookup_by_hash(store: Store) -> None:
    admin = service(store)
    await admin.create_tenant(MASTER, TenantBody(id="acme", name="Acme", budget_usd="100"))
    team = await admin.create_team(MASTER, TeamBody(id="search", tenant="acme", rpm=50))
    await admin.create_user(MASTER, UserBody(id="alice", team="search", tpm=1000))
    created = await admin.create_key(MASTER, KeyBody(team="search", user="alice", models=["gpt-4o*"], max_tokens=64))
    assert team["tenant"] == "acme"
    assert created["key"].startswith("sk-sluice-") and created["tenant"] == "acme"
    stored = await Directory(store).get(ApiKey, created["key_id"])
    assert stored is not None and created["key"] not in (stored.key_hash, stored.hint)

    from sluicegate.keys.material import key_hash
    from sluicegate.keys.policy import policy_of

    record = await Directory(store).find_key(key_hash(created["key"]), dt.datetime.fromtimestamp(NOW, dt.UTC))
    assert record is not None
    policy = policy_of(record)
    principal = policy.principal
    assert [s.kind for s in principal.scopes] == ["tenant", "team", "user", "key"]
    assert (
        principal.scopes[0].limits.budget is not None and principal.scopes[0].limits.budget.amount_micros == 100_000_000
    )
    assert principal.scopes[1].limits.rpm == 50 and principal.scopes[2].limits.tpm == 1000
    assert policy.allows_model("gpt-4o-mini") and not policy.allows_model("claude-3")
    assert await Directory(store).find_key(key_hash("sk-sluice-nope"), dt.datetime.fromtimestamp(NOW, dt.UTC)) is None


async def test_rotation_keeps_the_old_secret_for_the_grace_only(store: Store) -> None:
    from sluicegate.keys.material import key_hash

    invalidated: list[str] = []
    admin = service(store, invalidated)
    old = await admin.create_key(MASTER, KeyBody(team="t1"))
    new = await admin.rotate_key(MASTER, old["key_id"], grace_seconds=60)
    assert new["key_id"] == old["key_id"] and new["key"] != old["key"]
    assert key_hash(old["key"]) in invalidated
    directory = Directory(store)
    during = dt.datetime.fromtimestamp(NOW + 30, dt.UTC)
    after = dt.datetime.fromtimestamp(NOW + 61, dt.UTC)
    found = await directory.find_key(key_hash(old["key"]), during)
    assert found is not None and found.via_previous
    assert await directory.find_key(key_hash(old["key"]), after) is None
    assert await directory.find_key(key_hash(new["key"]), after) is not None


async def test_duplicate_ids_conflict_and_unknown_tenant_is_404(store: Store) -> None:
    admin = service(store)
    await admin.create_tenant(MASTER, TenantBody(id="acme"))
    with pytest.raises(AdminError) as conflict:
        await admin.create_tenant(MASTER, TenantBody(id="acme"))
    assert conflict.value.status == 409
    with pytest.raises(AdminError) as missing:
        await admin.create_team(MASTER, TeamBody(id="x", tenant="nope"))
    assert missing.value.status == 404


async def test_ledger_insert_is_idempotent_by_request_id(store: Store) -> None:
    ledger = SpendLedger(store)
    await ledger.insert([row("r1"), row("r2")])
    await ledger.insert([row("r2"), row("r3")])  # a replayed batch overlapping the last
    await ledger.insert([row("r1")])
    assert await ledger.count() == 3


async def test_spend_report_groups_and_filters(store: Store) -> None:
    ledger = SpendLedger(store)
    await ledger.insert(
        [
            row("a", team_id="search", cost_micros=1_500_000, feature="chat"),
            row("b", team_id="search", cost_micros=250, input_tokens=7, output_tokens=3, feature="summary"),
            row("c", team_id="ads", key_id="key_b", cost_micros=None),  # unknown price
            row("d", team_id="ads", key_id="key_b", cost_micros=None, input_tokens=0, output_tokens=0, status=401),
            row("e", team_id="ads", ts=dt.datetime.fromtimestamp(NOW - 86400 * 3, dt.UTC), day="2026-09-18"),
        ]
    )
    by_team = {r.group: r for r in await ledger.report("team")}
    assert by_team["search"].requests == 2 and by_team["search"].cost_micros == 1_500_250
    assert by_team["search"].input_tokens == 17 and by_team["search"].output_tokens == 8
    assert by_team["ads"].requests == 3 and by_team["ads"].cost_micros == 100 and by_team["ads"].unpriced_requests == 1
    by_key = await ledger.report("key", SpendFilter(key_id="key_b"))
    assert [(r.group, r.requests) for r in by_key] == [("key_b", 2)]
    since = dt.datetime.fromtimestamp(NOW - 86400, dt.UTC)
    by_day = await ledger.report("day", SpendFilter(since=since))
    assert [r.group for r in by_day] == ["2026-09-21"]
    admin = service(store)
    report = await admin.spend(MASTER, "feature", team="search")
    assert {r["group"]: r["cost_usd"] for r in report["rows"]} == {"chat": "1.500000", "summary": "0.000250"}


async def test_a_bad_row_is_told_apart_from_an_outage(store: Store) -> None:
    from sqlalchemy.exc import DBAPIError

    from sluicegate.telemetry.ledger import refused_as_data

    with pytest.raises(DBAPIError) as caught:
        await SpendLedger(store).insert([row("bad", model=None)])  # NOT NULL violated
    assert refused_as_data(caught.value)


async def test_ledger_decision_columns_round_trip_and_older_records_take_their_defaults(store: Store) -> None:
    from sqlalchemy import select

    from sluicegate.store.models import LedgerEntry

    ledger = SpendLedger(store)
    decided = row(
        "new",
        requested_model="gpt-4o",
        route_tier="small",
        task_type="code",
        complexity=0.25,
        guardrail_action="redact",
        guardrail_categories="email,pii",
        cache_status="hit",
        saved_micros=1_234,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        usage_estimated=True,
    )
    await ledger.insert([decided, row("old")])  # "old": a record spooled before these columns existed
    async with store.session() as session:
        found = {e.request_id: e for e in (await session.execute(select(LedgerEntry))).scalars()}
    new, old = found["new"], found["old"]
    assert (new.requested_model, new.route_tier, new.task_type, new.complexity) == ("gpt-4o", "small", "code", 0.25)
    assert (new.guardrail_action, new.guardrail_categories, new.cache_status) == ("redact", "email,pii", "hit")
    assert (new.saved_micros, new.trace_id, new.usage_estimated) == (1_234, "4bf92f3577b34da6a3ce929d0e0e4736", True)
    assert old.usage_estimated is False
    assert [old.requested_model, old.route_tier, old.task_type, old.complexity, old.guardrail_action] == [None] * 5
    assert [old.guardrail_categories, old.cache_status, old.saved_micros, old.trace_id] == [None] * 4


async def test_rows_written_before_the_decision_columns_survive_the_migration(store: Store) -> None:
    """A database at revision 0003 with ledger rows upgrades to the head in place; the old rows read NULL."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    import sluicegate.store.db as db

    def to(revision: str) -> Any:
        def run(connection: Connection) -> None:
            config = Config()
            config.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
            config.attributes["connection"] = connection
            command.downgrade(config, revision)

        return run

    async with store.engine.begin() as conn:
        await conn.run_sync(to("0003"))
        columns = [c for c in row("before") if c not in ("ts", "day")]
        values = {**row("before"), "ts": dt.datetime.fromtimestamp(NOW, dt.UTC), "usage_estimated": False}
        await conn.execute(
            text(
                f"INSERT INTO spend_ledger ({', '.join(['ts', 'day', 'usage_estimated', *columns])}) "
                f"VALUES ({', '.join(':' + c for c in ['ts', 'day', 'usage_estimated', *columns])})"
            ),
            values,
        )
    await store.migrate()
    async with store.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT request_id, requested_model, saved_micros, trace_id, cost_micros FROM spend_ledger")
        )
        assert [tuple(r) for r in result] == [("before", None, None, None, 100)]
    await SpendLedger(store).insert([row("after", requested_model="gpt-4o")])
    assert await SpendLedger(store).count() == 2
