"""A key's row and the rows it belongs to -> the `Principal` the pipeline reads, and the checks on it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import translate
from types import MappingProxyType
from typing import cast

from sluicegate.keys.clock import as_utc
from sluicegate.keys.residency import effective_regions, metadata_regions
from sluicegate.principal import Budget, BudgetPeriod, Limits, Principal, Role, Scope
from sluicegate.store.directory import KeyRecord
from sluicegate.store.models import LimitsColumns


def limits_of(row: LimitsColumns) -> Limits:
    budget = None
    if row.budget_micros is not None:
        budget = Budget(row.budget_micros, cast(BudgetPeriod, row.budget_period or "monthly"))
    return Limits(rpm=row.rpm, tpm=row.tpm, max_concurrency=row.max_concurrency, budget=budget)


def model_matcher(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """One compiled regex for all of a key's model globs (None: every model is allowed)."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """What the auth stage caches per key hash: the principal and what to check on every request."""

    principal: Principal
    models: re.Pattern[str] | None
    enabled: bool
    revoked: bool
    expires_at: float | None  # epoch seconds; for a rotated-out secret, the end of its grace period
    region_conflict: str | None = None  # why no region is left when the restrictions do not overlap

    def allows_model(self, model: str) -> bool:
        return self.models is None or self.models.fullmatch(model) is not None


def policy_of(record: KeyRecord) -> KeyPolicy:
    key, team, tenant, user = record.key, record.team, record.tenant, record.user
    scopes: list[Scope] = [
        Scope("tenant", tenant.id, limits_of(tenant)),
        Scope("team", team.id, limits_of(team)),
    ]
    if user is not None:
        scopes.append(Scope("user", user.id, limits_of(user)))
    scopes.append(Scope("key", key.id, limits_of(key)))
    restrictions: list[tuple[str, Sequence[str] | None]] = [
        (f"tenant '{tenant.id}'", tenant.allowed_regions),
        (f"team '{team.id}'", team.allowed_regions),
        (f"user '{user.id}'" if user else "user", user.allowed_regions if user else None),
        (f"key '{key.id}'", key.allowed_regions),
        (f"key '{key.id}' metadata", metadata_regions(key.key_metadata)),
    ]
    regions = effective_regions(r for _, r in restrictions)
    conflict = None
    if regions == ():
        conflict = "; ".join(f"{who} allows {', '.join(r)}" for who, r in restrictions if r)
    principal = Principal(
        key_id=key.id,
        role=cast(Role, key.role),
        tenant_id=tenant.id,
        team_id=team.id,
        user_id=user.id if user else None,
        allowed_models=tuple(key.models or ()),
        max_tokens_cap=key.max_tokens,
        allowed_regions=regions or (),
        guardrail_levels=tuple(
            level for level in (tenant.guardrail_level, team.guardrail_level, key.guardrail_level) if level
        ),
        metadata=MappingProxyType(dict(key.key_metadata or {})),
        scopes=tuple(scopes),
        team_confined=key.scope == "team",
    )
    deadlines = [as_utc(d).timestamp() for d in (key.expires_at,) if d is not None]
    if record.via_previous and key.previous_expires_at is not None:
        deadlines.append(as_utc(key.previous_expires_at).timestamp())
    return KeyPolicy(
        principal=principal,
        models=model_matcher(principal.allowed_models),
        enabled=key.enabled,
        revoked=key.revoked_at is not None,
        expires_at=min(deadlines) if deadlines else None,
        region_conflict=conflict,
    )
