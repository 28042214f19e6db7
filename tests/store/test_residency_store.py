"""allowed_regions on tenants, teams, users and keys: stored, shown, changed and cleared on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from sluicegate.keys.material import key_hash
from sluicegate.keys.policy import policy_of
from sluicegate.keys.service import AdminService, KeyBody, KeyUpdate, TeamBody, TenantBody, UserBody, UserUpdate
from sluicegate.principal import MASTER
from sluicegate.store.db import Store
from sluicegate.store.directory import Directory
from sluicegate.store.spend import SpendLedger

NOW = 1_790_000_000.0


def service(store: Store, invalidated: list[str]) -> AdminService:
    async def invalidate(hashes: list[str]) -> None:
        invalidated.extend(hashes)

    return AdminService(Directory(store), SpendLedger(store), invalidate, clock=lambda: NOW)


async def test_regions_round_trip_on_every_entity_and_reach_the_principal(store: Store) -> None:
    invalidated: list[str] = []
    admin = service(store, invalidated)
    tenant = await admin.create_tenant(MASTER, TenantBody(id="acme", allowed_regions=["eu", "us"]))
    team = await admin.create_team(MASTER, TeamBody(id="gdpr", tenant="acme", allowed_regions=["eu"]))
    user = await admin.create_user(MASTER, UserBody(id="alice", team="gdpr"))
    key = await admin.create_key(MASTER, KeyBody(team="gdpr", user="alice", allowed_regions=["eu-west-1", "eu"]))
    assert tenant["allowed_regions"] == ["eu", "us"] and team["allowed_regions"] == ["eu"]
    assert user["allowed_regions"] is None
    assert key["allowed_regions"] == ["eu"], "an entry another one covers is dropped"
    assert (await admin.get_team(MASTER, "gdpr"))["allowed_regions"] == ["eu"]

    updated = await admin.update_user(MASTER, "alice", UserUpdate(allowed_regions=["eu-central-1"]))
    assert updated["allowed_regions"] == ["eu-central-1"]
    directory = Directory(store)
    found = await directory.find_key(key_hash(key["key"]), dt.datetime.fromtimestamp(NOW, dt.UTC))
    assert found is not None
    assert policy_of(found).principal.allowed_regions == ("eu-central-1",)

    invalidated.clear()
    cleared = await admin.update_key(MASTER, key["key_id"], KeyUpdate(allowed_regions=[]))
    assert cleared["allowed_regions"] is None and invalidated, "a change evicts the cached key"
    await admin.update_team(MASTER, "gdpr", TeamBody(allowed_regions=None))
    await admin.update_user(MASTER, "alice", UserUpdate(allowed_regions=["ap-south-1"]))
    found = await directory.find_key(key_hash(key["key"]), dt.datetime.fromtimestamp(NOW, dt.UTC))
    assert found is not None
    policy = policy_of(found)
    assert policy.principal.allowed_regions == ()
    assert policy.region_conflict is not None and "tenant 'acme' allows eu, us" in policy.region_conflict
    unchanged = await admin.update_tenant(MASTER, "acme", TenantBody(rpm=5))
    assert unchanged["allowed_regions"] == ["eu", "us"], "a PATCH without the field keeps it"


def test_region_entries_are_validated() -> None:
    with pytest.raises(ValidationError):
        KeyBody(team="t", allowed_regions=["eu,us"])
    with pytest.raises(ValidationError):
        TeamBody(allowed_regions=[""])
