"""Who a request belongs to, and the limits and budgets of every entity it belongs to.

The auth stage builds a `Principal`; admission enforces its scopes' limits and budgets; the ledger
attributes spend to its ids. Keys, users, teams and tenants all carry `Limits`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

BudgetPeriod = Literal["daily", "weekly", "monthly", "total"]
ScopeKind = Literal["tenant", "team", "user", "key"]
Role = Literal["master", "tenant_admin", "team_admin", "viewer", "inference"]


@dataclass(frozen=True, slots=True)
class Budget:
    amount_micros: int  # integer micro-dollars
    period: BudgetPeriod = "monthly"


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    budget: Budget | None = None


NO_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    id: str
    limits: Limits = NO_LIMITS


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: Role = "inference"
    tenant_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    allowed_models: tuple[str, ...] = ()  # names or globs; empty means every model
    max_tokens_cap: int | None = None
    allowed_regions: tuple[str, ...] = ()  # data residency: deployment regions (or prefixes like "eu"); empty: any
    # the guardrail levels set along the chain (tenant, team, key, in that order; unset ones left out): the
    # firewall applies the strictest of them
    guardrail_levels: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    scopes: tuple[Scope, ...] = ()  # every entity this request counts against, with its limits
    team_confined: bool = False  # an admin-API role confined to its team (a viewer minted by a team admin)


MASTER = Principal(key_id="master", role="master")
