"""Residency rules: the intersection of tenant, team, user, key and key-metadata restrictions, prefixes included."""

from __future__ import annotations

import datetime as dt

import pytest

from sluicegate.keys.policy import policy_of
from sluicegate.keys.residency import effective_regions, intersect, normalize
from sluicegate.routing.router import region_allowed
from sluicegate.store.directory import KeyRecord
from sluicegate.store.models import ApiKey, Team, Tenant, User

NOW = dt.datetime(2026, 9, 21, tzinfo=dt.UTC)
REGIONS = ["eu", "eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1", "euro-1"]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (["eu"], ["eu-west-1"], ("eu-west-1",)),
        (["eu-west-1"], ["eu"], ("eu-west-1",)),
        (["eu"], ["eu"], ("eu",)),
        (["eu"], ["us"], ()),
        (["eu"], ["euro-1"], ()),  # "eu" is a prefix only up to a dash
        (["eu", "us-east-1"], ["us", "eu-central-1"], ("eu-central-1", "us-east-1")),
        (["eu-west-1"], ["eu-central-1"], ()),
    ],
)
def test_intersection_of_names_and_prefixes(a: list[str], b: list[str], expected: tuple[str, ...]) -> None:
    assert intersect(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [(["eu"], ["eu-west-1", "us"]), (["eu", "ap"], ["us-east-1", "eu-central-1"]), (["us"], ["eu"])],
)
def test_intersection_admits_exactly_the_regions_both_admit(a: list[str], b: list[str]) -> None:
    both = intersect(a, b)
    for region in REGIONS:
        expected = region_allowed(region, frozenset(a)) and region_allowed(region, frozenset(b))
        assert (bool(both) and region_allowed(region, frozenset(both))) == expected, region


def test_unrestricted_entities_do_not_narrow_and_redundant_entries_collapse() -> None:
    assert effective_regions([None, [], None]) is None
    assert effective_regions([None, ["eu"], [], ["eu-west-1", "us-east-1"]]) == ("eu-west-1",)
    assert effective_regions([["eu"], ["us"], None]) == ()
    assert normalize(["eu-west-1", " eu ", "eu", ""]) == ("eu",)


def record(
    tenant: list[str] | None = None,
    team: list[str] | None = None,
    user: list[str] | None = None,
    key: list[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> KeyRecord:
    return KeyRecord(
        key=ApiKey(
            id="k1",
            key_hash="h",
            hint="sk-...",
            role="inference",
            tenant_id="acme",
            team_id="search",
            user_id="alice",
            models=[],
            key_metadata=metadata or {},
            enabled=True,
            allowed_regions=key,
            created_at=NOW,
        ),
        team=Team(id="search", tenant_id="acme", name="search", allowed_regions=team, created_at=NOW),
        tenant=Tenant(id="acme", name="acme", allowed_regions=tenant, created_at=NOW),
        user=User(id="alice", team_id="search", allowed_regions=user, created_at=NOW),
        via_previous=False,
    )


def test_policy_intersects_every_entity_and_the_key_metadata() -> None:
    assert policy_of(record()).principal.allowed_regions == ()
    assert policy_of(record()).region_conflict is None
    assert policy_of(record(team=["eu"])).principal.allowed_regions == ("eu",)
    narrowed = policy_of(record(tenant=["eu", "us"], team=["eu"], user=None, key=["eu-west-1", "us-east-1"]))
    assert narrowed.principal.allowed_regions == ("eu-west-1",)
    with_metadata = policy_of(record(team=["eu"], metadata={"allowed_regions": "eu-central-1,us"}))
    assert with_metadata.principal.allowed_regions == ("eu-central-1",)
    assert policy_of(record(metadata={"allowed_regions": "eu"})).principal.allowed_regions == ("eu",)


def test_policy_with_no_region_left_names_the_conflicting_entities() -> None:
    policy = policy_of(record(tenant=["eu"], user=["us-east-1"]))
    assert policy.principal.allowed_regions == ()
    assert policy.region_conflict is not None
    assert "tenant 'acme' allows eu" in policy.region_conflict
    assert "user 'alice' allows us-east-1" in policy.region_conflict
    assert "team" not in policy.region_conflict
