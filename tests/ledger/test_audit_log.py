"""The audit log end to end on SQLite: admin changes with before and after, key lifecycle without secrets,
operator actions, breaker transitions, firewall blocks, tallies of failed authentication and budget
refusals, PII masked; and `sluicegate audit verify` naming an edited record."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from sluicegate.cli import main
from sluicegate.clock import ManualClock
from sluicegate.events import BreakerTransition, EventBus, OperatorAction, StageVerdict
from sluicegate.keys.service import AdminService, KeyBody, KeyUpdate, TeamBody, UserBody
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.records import ModelChoice, Refusal
from sluicegate.principal import MASTER, Principal
from sluicegate.store.audit import AuditTable
from sluicegate.store.db import Store
from sluicegate.store.directory import Directory
from sluicegate.store.models import AuditRecord
from sluicegate.store.spend import SpendLedger
from sluicegate.telemetry.audit import AuditLog, mask_text

KEY = b"k" * 32


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Store, AuditLog, EventBus, AdminService, ManualClock]]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    await store.migrate()
    clock = ManualClock()
    audit = AuditLog(AuditTable(store, KEY), "inst1", clock, window_seconds=60)
    events = EventBus()
    audit.listen(events)

    async def invalidate(_: list[str]) -> None:
        return None

    service = AdminService(Directory(store), SpendLedger(store), invalidate, clock=clock.now)
    service.changed = events.publish
    yield store, audit, events, service, clock
    await store.close()


async def records(audit: AuditLog) -> list[dict[str, Any]]:
    await audit.flush()
    return [r async for r in audit._table.export()]


async def test_admin_changes_and_key_lifecycle_with_before_and_after(setup: Any) -> None:
    store, audit, _, service, _ = setup
    await service.create_team(MASTER, TeamBody(id="search", rpm=10))
    await service.create_user(MASTER, UserBody(id="ann", team="search", email="ann.lee@example.com"))
    created = await service.create_key(MASTER, KeyBody(team="search", user="ann"))
    await service.update_key(MASTER, created["key_id"], KeyUpdate(rpm=5))
    rotated = await service.rotate_key(MASTER, created["key_id"])
    await service.revoke_key(MASTER, created["key_id"])
    rows = await records(audit)
    assert [(r["kind"], r["action"]) for r in rows] == [
        ("admin_change", "create"),
        ("admin_change", "create"),
        ("key_lifecycle", "create"),
        ("key_lifecycle", "update"),
        ("key_lifecycle", "rotate"),
        ("key_lifecycle", "revoke"),
    ]
    update_row = rows[3]
    assert update_row["target"] == f"key:{created['key_id']}" and update_row["actor"] == "master"
    assert (update_row["before"]["rpm"], update_row["after"]["rpm"]) == (None, 5)
    assert rows[5]["before"]["enabled"] is True and rows[5]["after"]["enabled"] is False
    assert rows[1]["after"]["email"] == "a***@example.com"  # PII masked
    dump = Path(store.url.split("///")[1]).read_bytes()
    for secret in (created["key"], rotated["key"]):
        assert secret.encode() not in dump and secret[-20:].encode() not in dump
    assert (await audit._table.verify()).ok


async def test_operator_breaker_and_firewall_events(setup: Any) -> None:
    _, audit, events, _, _ = setup
    events.publish(OperatorAction("set", "team:search", "economy mode for 30 min (reason: bill)"))
    events.publish(BreakerTransition("sim/gpt-4o", "open", "5 consecutive failures", 30.0))
    events.publish(StageVerdict("req_1", "firewall", "block", "prompt_injection"))
    events.publish(StageVerdict("req_2", "firewall", "allow"))  # not security-relevant: not recorded
    events.publish(StageVerdict("req_3", "firewall", "redact", "email bob@corp.io"))
    rows = await records(audit)
    assert [(r["kind"], r["action"], r["target"]) for r in rows] == [
        ("operator_action", "set", "team:search"),
        ("breaker", "open", "deployment:sim/gpt-4o"),
        ("firewall", "block", "stage:firewall"),
        ("firewall", "redact", "stage:firewall"),
    ]
    assert rows[1]["detail"] == {"reason": "5 consecutive failures", "open_for": 30.0}
    assert rows[3]["detail"] == {"request_id": "req_3", "detail": "email b***@corp.io"}


def _ctx(n: int, status: int, client: str = "203.0.113.77", **fields: Any) -> RequestContext:
    ctx = RequestContext(f"req_{n}", "chat", "openai", {}, None, client)
    ctx.status = status
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


async def test_failed_auth_and_budget_refusals_are_tallied_per_window(setup: Any) -> None:
    _, audit, _, _, clock = setup
    key = Principal(key_id="key_a", team_id="search")
    for n in range(5):
        await audit.on_finish(_ctx(n, 401, error_code="invalid_api_key"))
    await audit.on_finish(_ctx(9, 401, client="198.51.100.2"))
    for n in range(3):
        await audit.on_finish(_ctx(10 + n, 402, principal=key, refusal=Refusal("budget", "team:search", None)))
    await audit.on_finish(_ctx(20, 429, principal=key, refusal=Refusal("requests", "key:key_a", 1.0)))  # a limit
    downgrade = (ModelChoice("gpt-4o", "gpt-4o-mini", "budget_downgrade"),)
    await audit.on_finish(_ctx(21, 200, principal=key, choices=downgrade))
    await audit.on_finish(_ctx(22, 200))
    audit._close_window()
    assert await records(audit) == []  # the window is still open
    clock.advance(61)
    audit._close_window()
    rows = {(r["kind"], r["actor"], r["target"]): r["detail"] for r in await records(audit)}
    assert set(rows) == {
        ("auth_failures", "203.0.113.x", "invalid_api_key"),
        ("auth_failures", "198.51.100.x", "unauthorized"),
        ("budget_refusals", "key_a", "budget:team:search"),
        ("budget_downgrades", "key_a", "gpt-4o->gpt-4o-mini"),
    }
    first = rows[("auth_failures", "203.0.113.x", "invalid_api_key")]
    assert first["count"] == 5 and first["sample_requests"] == ["req_0", "req_1", "req_2"]
    assert rows[("budget_refusals", "key_a", "budget:team:search")]["count"] == 3


async def test_a_full_queue_drops_instead_of_waiting(setup: Any) -> None:
    _, audit, events, _, _ = setup
    audit._max_queue = 100
    for i in range(150):
        events.publish(BreakerTransition(f"d{i}", "open", "x", 1.0))
    assert audit.dropped == 50
    assert len(await records(audit)) == 100


def test_masking() -> None:
    assert mask_text("ann@example.com from 10.1.2.3 with sk-sluice-abcdefghijklmnopqrstuv1234") == (
        "a***@example.com from 10.1.2.x with sk-sluice-...1234"
    )


async def test_cli_verify_names_an_edited_record(
    setup: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store, audit, events, _, _ = setup
    for i in range(4):
        events.publish(BreakerTransition(f"d{i}", "open", "x", 1.0))
    await audit.flush()
    monkeypatch.setenv("SLUICEGATE_DATABASE_URL", store.url)
    monkeypatch.setenv("SLUICEGATE_AUDIT_KEY", KEY.decode())
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 0
    assert "audit log OK: 1 chain(s), 4 record(s)" in capsys.readouterr().out
    async with store.engine.begin() as conn:
        await conn.execute(update(AuditRecord).where(AuditRecord.seq == 3).values(target="deployment:other"))
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "record inst1#3 (breaker open deployment:other) was edited or inserted" in out
    export = tmp_path / "audit.jsonl"
    assert await asyncio.to_thread(main, ["audit", "export", "-o", str(export)]) == 0
    assert len(export.read_text().splitlines()) == 4


async def test_changes_made_by_the_cli_on_the_store_are_audited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("SLUICEGATE_DATABASE_URL", url)
    monkeypatch.setenv("SLUICEGATE_AUDIT_KEY", KEY.decode())
    assert await asyncio.to_thread(main, ["teams", "create", "search", "--rpm", "10"]) == 0
    assert await asyncio.to_thread(main, ["keys", "create", "--team", "search"]) == 0
    secret = next(line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("key "))
    store = Store(url)
    try:
        table = AuditTable(store, KEY)
        rows = [r async for r in table.export()]
        assert [(r["kind"], r["action"], r["target"].split(":")[0]) for r in rows] == [
            ("admin_change", "create", "team"),
            ("key_lifecycle", "create", "key"),
        ]
        assert rows[0]["instance"].startswith("cli_") and rows[0]["instance"] != rows[1]["instance"]  # one per run
        assert rows[0]["after"]["rpm"] == 10
        assert (await table.verify()).ok
    finally:
        await store.close()
    assert secret.encode() not in (tmp_path / "cli.db").read_bytes()


async def test_refused_admin_api_calls_are_tallied(tmp_path: Path) -> None:
    import httpx

    from sluicegate.config.loader import parse_config
    from sluicegate.server.admin import create_admin_app
    from sluicegate.server.gateway import Gateway

    config = parse_config(
        f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/gw.db", spool_dir: "{tmp_path}/spool"}}
server: {{access_log: {{enabled: false}}}}
""",
        "<test>",
    )
    gateway = Gateway(config, master_key="sk-master-test-key", environ={})
    assert gateway.audit is not None
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=create_admin_app(gateway), client=("198.51.100.23", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            for _ in range(4):
                assert (await client.get("/admin/keys", headers={"authorization": "Bearer wrong"})).status_code == 401
            assert (await client.get("/admin/keys")).status_code == 401
        gateway.audit._close_window(force=True)
        await gateway.audit.flush()
        rows = [r async for r in gateway.audit._table.export(kind="auth_failures")]
    finally:
        await gateway.stop()
    assert [(r["actor"], r["target"], r["detail"]["count"]) for r in rows] == [
        ("198.51.100.x", "admin:authentication_error", 5)
    ]
