"""Tenant isolation in the admin service: a tenant admin sees and changes only its own tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.keys.service import AdminError, AdminService, KeyBody, TeamBody, TenantBody
from sluicegate.principal import MASTER, Principal
from sluicegate.store.db import Store
from sluicegate.store.directory import Directory
from sluicegate.store.spend import SpendLedger


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[AdminService]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/roles.db")
    await store.migrate()

    async def invalidate(_: list[str]) -> None:
        return None

    service = AdminService(Directory(store), SpendLedger(store), invalidate)
    for tenant in ("acme", "globex"):
        await service.create_tenant(MASTER, TenantBody(id=tenant))
        await service.create_team(MASTER, TeamBody(id=f"{tenant}-eng", tenant=tenant))
        await service.create_key(MASTER, KeyBody(team=f"{tenant}-eng"))
    yield service
    await store.close()


ACME_ADMIN = Principal(key_id="key_ta", role="tenant_admin", tenant_id="acme", team_id="acme-eng")


async def status_of(call: object) -> int:
    try:
        await call  # type: ignore[misc]
    except AdminError as exc:
        return exc.status
    return 200


async def test_tenant_admin_sees_only_its_tenant(admin: AdminService) -> None:
    assert [t["id"] for t in await admin.list_tenants(ACME_ADMIN)] == ["acme"]
    assert [t["id"] for t in await admin.list_teams(ACME_ADMIN)] == ["acme-eng"]
    assert {k["tenant"] for k in await admin.list_keys(ACME_ADMIN)} == {"acme"}
    assert await status_of(admin.list_keys(ACME_ADMIN, team="globex-eng")) == 403
    assert await status_of(admin.spend(ACME_ADMIN, "team", tenant="globex")) == 403


async def test_tenant_admin_creates_within_its_tenant_and_below_its_role(admin: AdminService) -> None:
    team = await admin.create_team(ACME_ADMIN, TeamBody(id="acme-new"))
    assert team["tenant"] == "acme"
    assert await status_of(admin.create_team(ACME_ADMIN, TeamBody(id="x", tenant="globex"))) == 403
    assert await status_of(admin.create_key(ACME_ADMIN, KeyBody(team="globex-eng"))) == 403
    assert await status_of(admin.create_key(ACME_ADMIN, KeyBody(team="acme-eng", role="tenant_admin"))) == 403
    made = await admin.create_key(ACME_ADMIN, KeyBody(team="acme-auto"))  # a new team lands in its tenant
    assert made["tenant"] == "acme"
    assert await status_of(admin.create_tenant(ACME_ADMIN, TenantBody(id="mine"))) == 403


async def test_users_read_and_update_within_the_tenant(admin: AdminService) -> None:
    from sluicegate.keys.service import UserBody, UserUpdate

    await admin.create_user(MASTER, UserBody(id="ann", team="acme-eng"))
    await admin.create_user(MASTER, UserBody(id="gus", team="globex-eng"))
    updated = await admin.update_user(ACME_ADMIN, "ann", UserUpdate(tpm=500, budget_usd="3.5"))
    assert (updated["tpm"], updated["budget_usd"], updated["budget_period"]) == (500, "3.500000", "monthly")
    assert (await admin.get_user(ACME_ADMIN, "ann"))["tpm"] == 500
    assert await status_of(admin.get_user(ACME_ADMIN, "gus")) == 403
    assert await status_of(admin.get_team(ACME_ADMIN, "globex-eng")) == 403
    assert (await admin.get_tenant(ACME_ADMIN, "acme"))["id"] == "acme"
