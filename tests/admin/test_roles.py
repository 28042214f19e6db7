"""Tenant isolation in the admin service: a tenant admin sees and changes only its own tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.keys.service import AdminError, AdminService, KeyBody, TeamBody, TeamUpdate, TenantBody
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
    assert await status_of(admin.list_keys(ACME_ADMIN, team="globex-eng")) == 404  # as if it did not exist
    assert await status_of(admin.spend(ACME_ADMIN, "team", tenant="globex")) == 403


async def test_tenant_admin_creates_within_its_tenant_and_below_its_role(admin: AdminService) -> None:
    team = await admin.create_team(ACME_ADMIN, TeamBody(id="acme-new"))
    assert team["tenant"] == "acme"
    assert await status_of(admin.create_team(ACME_ADMIN, TeamBody(id="x", tenant="globex"))) == 403
    assert await status_of(admin.create_key(ACME_ADMIN, KeyBody(team="globex-eng"))) == 404
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
    assert await status_of(admin.get_user(ACME_ADMIN, "gus")) == 404
    assert await status_of(admin.get_team(ACME_ADMIN, "globex-eng")) == 404
    assert (await admin.get_tenant(ACME_ADMIN, "acme"))["id"] == "acme"


async def _principal(admin: AdminService, created: dict[str, object]) -> Principal:
    """The principal the auth stage builds for a key made through the service."""
    from sluicegate.keys.clock import utc
    from sluicegate.keys.material import key_hash
    from sluicegate.keys.policy import policy_of

    record = await admin._directory.find_key(key_hash(str(created["key"])), utc(0))
    assert record is not None
    return policy_of(record).principal


async def test_a_team_admin_cannot_take_over_a_higher_key_in_its_team(admin: AdminService) -> None:
    from sluicegate.keys.service import KeyUpdate

    boss = await admin.create_key(MASTER, KeyBody(team="acme-eng", role="tenant_admin"))
    team_admin = await _principal(admin, await admin.create_key(MASTER, KeyBody(team="acme-eng", role="team_admin")))
    peer = await _principal(admin, await admin.create_key(MASTER, KeyBody(team="acme-eng", role="tenant_admin")))
    for caller in (team_admin, peer):
        assert await status_of(admin.rotate_key(caller, str(boss["key_id"]))) == 403
        assert await status_of(admin.update_key(caller, str(boss["key_id"]), KeyUpdate(enabled=False))) == 403
        assert await status_of(admin.revoke_key(caller, str(boss["key_id"]))) == 403
    assert (await admin.get_key(MASTER, str(boss["key_id"])))["enabled"] is True


async def test_a_viewer_minted_by_a_team_admin_reads_only_its_team(admin: AdminService) -> None:
    await admin.create_team(MASTER, TeamBody(id="acme-ops", tenant="acme"))
    team_admin = await _principal(admin, await admin.create_key(MASTER, KeyBody(team="acme-eng", role="team_admin")))
    viewer = await _principal(admin, await admin.create_key(team_admin, KeyBody(role="viewer")))
    assert viewer.team_confined
    assert await status_of(admin.spend(viewer, "team")) == 200
    assert await status_of(admin.spend(viewer, "team", team="acme-ops")) == 403
    tenant_viewer = await _principal(admin, await admin.create_key(MASTER, KeyBody(team="acme-eng", role="viewer")))
    assert await status_of(admin.spend(tenant_viewer, "team", team="acme-ops")) == 200


async def test_nobody_raises_a_limit_above_its_own(admin: AdminService) -> None:
    from sluicegate.keys.service import KeyUpdate, UserBody, UserUpdate

    made = await admin.create_key(
        MASTER, KeyBody(team="acme-eng", role="team_admin", user="tam", rpm=100, budget_usd="10", models=["gpt-4o*"])
    )
    team_admin = await _principal(admin, made)
    # its own key: not even a lower value (it does not outrank itself)
    assert await status_of(admin.update_key(team_admin, str(made["key_id"]), KeyUpdate(rpm=10**6))) == 403
    # its own user holds its key: not outranked either
    assert await status_of(admin.update_user(team_admin, "tam", UserUpdate(rpm=10**6))) == 403
    # a key it mints: at most its own limits, and without any it inherits them
    assert await status_of(admin.create_key(team_admin, KeyBody(rpm=101))) == 403
    assert await status_of(admin.create_key(team_admin, KeyBody(budget_usd="10.01"))) == 403
    assert await status_of(admin.create_key(team_admin, KeyBody(budget_usd="5", budget_period="daily"))) == 403
    assert await status_of(admin.create_key(team_admin, KeyBody(models=["*"]))) == 403
    child = await admin.create_key(team_admin, KeyBody())
    assert (child["rpm"], child["budget_usd"], child["budget_period"], child["models"]) == (
        100,
        "10.000000",
        "monthly",
        ["gpt-4o*"],
    )
    # within its limits it may raise and lower what it outranks; never beyond them
    assert await status_of(admin.update_key(team_admin, str(child["key_id"]), KeyUpdate(rpm=50))) == 200
    assert await status_of(admin.update_key(team_admin, str(child["key_id"]), KeyUpdate(rpm=100))) == 200
    assert await status_of(admin.update_key(team_admin, str(child["key_id"]), KeyUpdate(rpm=101))) == 403
    assert await status_of(admin.update_key(team_admin, str(child["key_id"]), KeyUpdate(rpm=None))) == 403
    assert await status_of(admin.update_key(team_admin, str(child["key_id"]), KeyUpdate(models=["gpt-4o-mini"]))) == 200
    await admin.create_user(MASTER, UserBody(id="plain", team="acme-eng", tpm=1000))
    assert await status_of(admin.create_user(team_admin, UserBody(id="u2", team="acme-eng", rpm=1000))) == 403
    assert await status_of(admin.update_user(team_admin, "plain", UserUpdate(tpm=2000))) == 200  # no tpm cap
    # the tenant admin whose own team is held to a budget cannot raise that team
    await admin.update_team(MASTER, "acme-eng", TeamUpdate(budget_usd="100"))
    made = await admin.create_key(MASTER, KeyBody(team="acme-eng", role="tenant_admin"))
    tenant_admin = await _principal(admin, made)
    assert await status_of(admin.update_team(tenant_admin, "acme-eng", TeamUpdate(budget_usd="1000"))) == 403
    assert await status_of(admin.update_team(tenant_admin, "acme-eng", TeamUpdate(budget_usd="50"))) == 200
    assert await status_of(admin.update_team(MASTER, "acme-eng", TeamUpdate(budget_usd="1000"))) == 200


async def test_nobody_lets_data_go_where_its_own_requests_may_not(admin: AdminService) -> None:
    from sluicegate.keys.service import KeyUpdate

    made = await admin.create_key(MASTER, KeyBody(team="acme-eng", role="team_admin", allowed_regions=["eu"]))
    team_admin = await _principal(admin, made)
    child = await admin.create_key(team_admin, KeyBody())
    assert child["allowed_regions"] == ["eu"]  # inherited
    assert await status_of(admin.create_key(team_admin, KeyBody(allowed_regions=["us"]))) == 403
    narrow = await admin.create_key(team_admin, KeyBody(allowed_regions=["eu-west-1"]))
    assert narrow["allowed_regions"] == ["eu-west-1"]
    key_id = str(child["key_id"])
    assert await status_of(admin.update_key(team_admin, key_id, KeyUpdate(allowed_regions=None))) == 403
    assert await status_of(admin.update_key(team_admin, key_id, KeyUpdate(allowed_regions=["us-east-1"]))) == 403
    assert await status_of(admin.update_key(team_admin, key_id, KeyUpdate(allowed_regions=["eu-west-1"]))) == 200
