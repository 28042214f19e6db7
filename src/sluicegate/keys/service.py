"""The admin operations on tenants, teams, users, keys and spend, each checked against the caller's role.

The admin API and the CLI's direct mode both call this, so a rule holds the same through either door.
Roles: master (everything), tenant_admin (its tenant), team_admin (its team's users, keys and spend),
viewer (spend reports of its tenant). An inference key is refused everywhere here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sluicegate.events import AdminChange
from sluicegate.keys.clock import Clock, as_utc, system_clock, utc
from sluicegate.keys.material import hint, key_hash, new_id, new_key
from sluicegate.keys.policy import model_matcher
from sluicegate.keys.residency import covers, normalize
from sluicegate.pricing import micros_to_usd
from sluicegate.principal import Budget, Principal
from sluicegate.store.directory import Conflict, Directory
from sluicegate.store.models import ApiKey, LimitsColumns, Team, Tenant, User
from sluicegate.store.spend import GROUPS, SpendFilter, SpendLedger

Invalidate = Callable[[list[str]], Awaitable[None]]
DEFAULT_TENANT = "default"
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_DURATION = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_REGION = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # a region name or a prefix of one, e.g. "eu", "us-east-1"
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # free text: no control characters (PostgreSQL refuses NUL in text)

# Every admin number and string is bounded here, so the OpenAPI document states the bounds and the store
# never sees a value it cannot hold (rpm and friends are 32-bit columns in PostgreSQL).
MAX_INT = 2**31 - 1
MAX_BUDGET_USD = Decimal(10**9)
MAX_GRACE_SECONDS = 90 * 86400
MAX_SPAN_SECONDS = 100 * 365 * 86400  # the longest duration anything accepts (100 years)
Id = Annotated[str, Field(pattern=_ID, max_length=64)]
Count = Annotated[int, Field(ge=1, le=MAX_INT)]
Time = Annotated[str, Field(min_length=1, max_length=64, pattern=_PRINTABLE)]


def _encodable(text: str) -> str:
    text.encode()  # lone surrogates (valid in JSON, not in UTF-8) fail here: 400, not a store error
    return text


Name = Annotated[str, Field(max_length=200, pattern=_PRINTABLE), AfterValidator(_encodable)]
Email = Annotated[str, Field(max_length=320, pattern=_PRINTABLE), AfterValidator(_encodable)]
ModelName = Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE), AfterValidator(_encodable)]
MetadataKey = Annotated[str, Field(min_length=1, max_length=64, pattern=_PRINTABLE), AfterValidator(_encodable)]
MetadataValue = Annotated[str, Field(max_length=512, pattern=_PRINTABLE), AfterValidator(_encodable)]
Models = Annotated[list[ModelName], Field(max_length=256)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=64)]
GuardrailLevel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def forbidden(what: str) -> AdminError:
    return AdminError(403, f"This key may not {what}.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsBody(_Body):
    rpm: Count | None = None
    tpm: Count | None = None
    max_concurrency: Count | None = None
    budget_usd: Decimal | None = Field(None, ge=0, le=MAX_BUDGET_USD, decimal_places=6, allow_inf_nan=False)
    budget_period: Literal["daily", "weekly", "monthly", "total"] | None = None
    # data residency: region names or prefixes ("eu" admits "eu-west-1"); null or [] lifts the restriction
    allowed_regions: list[Annotated[str, Field(pattern=_REGION)]] | None = Field(None, max_length=64)


class TenantBody(LimitsBody):
    id: Id | None = None
    name: Name | None = None
    guardrail_level: GuardrailLevel | None = None


class TenantUpdate(LimitsBody):
    """A tenant's id never changes (a body naming it is refused)."""

    name: Name | None = None
    guardrail_level: GuardrailLevel | None = None


class TeamBody(LimitsBody):
    id: Id | None = None
    name: Name | None = None
    tenant: Id | None = None
    guardrail_level: GuardrailLevel | None = None


class TeamUpdate(LimitsBody):
    """A team's id and tenant never change (a body naming them is refused)."""

    name: Name | None = None
    guardrail_level: GuardrailLevel | None = None


class UserBody(LimitsBody):
    id: Id
    team: Id
    email: Email | None = None


class UserUpdate(LimitsBody):
    email: Email | None = None


class KeyBody(LimitsBody):
    team: Id | None = None
    user: Id | None = None
    name: Name | None = None
    role: Literal["inference", "viewer", "team_admin", "tenant_admin"] = "inference"
    models: Models = Field(default_factory=list)
    max_tokens: Count | None = None
    guardrail_level: GuardrailLevel | None = None
    metadata: Metadata = Field(default_factory=dict)
    expires: Time | None = None  # "30d", "12h", or an ISO 8601 time, in the future


class KeyUpdate(LimitsBody):
    name: Name | None = None
    # no null for these three: the key always has a model list (empty: every model), metadata and a state
    models: Models = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]
    enabled: bool = None  # type: ignore[assignment]
    max_tokens: Count | None = None
    guardrail_level: GuardrailLevel | None = None
    expires: Time | None = None


def parse_duration(text: str, name: str) -> float | None:
    """`30d`, `1.5h`, `90m`, `0s` -> seconds, or None if `text` is not a duration."""
    match = _DURATION.match(text.strip())
    if match is None:
        return None
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_SPAN_SECONDS:
        raise AdminError(400, f"'{name}' is too far away: at most {MAX_SPAN_SECONDS // 86400}d")
    return seconds


def parse_moment(text: str, name: str, example: str) -> dt.datetime:
    try:
        return as_utc(dt.datetime.fromisoformat(text.strip()))
    except (ValueError, OverflowError):
        raise AdminError(400, f"'{name}' must be like {example} or an ISO 8601 time, not {text!r}") from None


def _span(text: str, name: str, now: float, sign: int) -> dt.datetime | None:
    """A duration counted from `now`, forwards or backwards (None if `text` is not a duration)."""
    seconds = parse_duration(text, name)
    return None if seconds is None else utc(now + sign * seconds)


def parse_expiry(text: str, now: float, name: str = "expires") -> dt.datetime:
    """When a key (or a rotated-out secret) stops working; it must be in the future."""
    moment = _span(text, name, now, 1) or parse_moment(text, name, "30d, 12h, 1.5h")
    if moment.timestamp() <= now:
        raise AdminError(400, f"'{name}' is in the past: {moment.isoformat()}")
    return moment


def parse_since(text: str, now: float, name: str = "since") -> dt.datetime:
    return _span(text, name, now, -1) or parse_moment(text, name, "7d")


def _micros(usd: Decimal | None) -> int | None:
    if usd is None:
        return None
    try:
        return int((usd * 1_000_000).to_integral_value())
    except InvalidOperation:
        raise AdminError(400, "budget_usd is not a number") from None


def _limits_changes(body: LimitsBody) -> dict[str, Any]:
    fields = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in ("rpm", "tpm", "max_concurrency") if name in fields
    }
    if "budget_usd" in fields:
        changes["budget_micros"] = _micros(body.budget_usd)
        changes["budget_period"] = body.budget_period or "monthly" if body.budget_usd is not None else None
    elif "budget_period" in fields:
        changes["budget_period"] = body.budget_period
    if "allowed_regions" in fields:
        changes["allowed_regions"] = list(normalize(body.allowed_regions or ())) or None
    return changes


def _iso(moment: dt.datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def _limits_view(row: LimitsColumns) -> dict[str, Any]:
    return {
        "rpm": row.rpm,
        "tpm": row.tpm,
        "max_concurrency": row.max_concurrency,
        "budget_usd": micros_to_usd(row.budget_micros) if row.budget_micros is not None else None,
        "budget_period": row.budget_period,
        "allowed_regions": list(row.allowed_regions) if row.allowed_regions else None,
    }


def tenant_view(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        **_limits_view(t),
        "guardrail_level": t.guardrail_level,
        "created_at": _iso(t.created_at),
    }


def team_view(t: Team) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "tenant": t.tenant_id,
        **_limits_view(t),
        "guardrail_level": t.guardrail_level,
        "created_at": _iso(t.created_at),
    }


def user_view(u: User) -> dict[str, Any]:
    return {"id": u.id, "team": u.team_id, "email": u.email, **_limits_view(u), "created_at": _iso(u.created_at)}


def key_view(k: ApiKey) -> dict[str, Any]:
    return {
        "key_id": k.id,
        "name": k.name,
        "hint": k.hint,
        "role": k.role,
        "tenant": k.tenant_id,
        "team": k.team_id,
        "user": k.user_id,
        "models": list(k.models or []),
        "max_tokens": k.max_tokens,
        **_limits_view(k),
        "guardrail_level": k.guardrail_level,
        "metadata": dict(k.key_metadata or {}),
        "enabled": k.enabled,
        "expires_at": _iso(k.expires_at),
        "revoked_at": _iso(k.revoked_at),
        "previous_valid_until": _iso(k.previous_expires_at) if k.previous_hash else None,
        "created_at": _iso(k.created_at),
    }


_ROLE_RANK = {"inference": 0, "viewer": 1, "team_admin": 2, "tenant_admin": 3, "master": 4}
# how long a budget lasts before it resets; a shorter period is a looser budget for the same amount
_PERIOD_DAYS = {"daily": 1, "weekly": 7, "monthly": 31, "total": 1 << 40}
_RATE_LIMITS = ("rpm", "tpm", "max_concurrency")


def _rank(role: str) -> int:
    return _ROLE_RANK.get(role, 0)


def _not_found(kind: str, entity_id: str) -> AdminError:
    return AdminError(404, f"{kind} '{entity_id}' does not exist")


def _widens(before: int | None, after: int | None) -> bool:
    """Whether a limit goes up (None is no limit at all)."""
    return before is not None and (after is None or after > before)


def _budget_within(amount: int, period: str, cap: Budget) -> bool:
    return amount <= cap.amount_micros and _PERIOD_DAYS[period] >= _PERIOD_DAYS[cap.period]


def _glob_within(pattern: str, allowed: tuple[str, ...]) -> bool:
    """Whether every model `pattern` admits is admitted by one of `allowed` (conservatively)."""
    if pattern in allowed:
        return True
    matcher = model_matcher(allowed)
    if not any(c in pattern for c in "*?["):
        return matcher is not None and matcher.fullmatch(pattern) is not None
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return any(p.endswith("*") and not any(c in p[:-1] for c in "*?[") and head.startswith(p[:-1]) for p in allowed)


@dataclass(frozen=True, slots=True)
class _Caps:
    """What an admin's own principal is held to, from the scopes that do not already bound the target."""

    rates: dict[str, int]
    budgets: tuple[Budget, ...]
    max_tokens: int | None
    models: tuple[str, ...]


def _caps(actor: Principal, ancestors: set[str]) -> _Caps:
    rates: dict[str, int] = {}
    budgets: list[Budget] = []
    for scope in actor.scopes:
        if f"{scope.kind}:{scope.id}" in ancestors:
            continue  # its limits keep applying to the target: no need to copy them down
        for name in _RATE_LIMITS:
            value = getattr(scope.limits, name)
            if value is not None:
                rates[name] = min(value, rates.get(name, value))
        if scope.limits.budget is not None:
            budgets.append(scope.limits.budget)
    own_key = f"key:{actor.key_id}" in ancestors
    return _Caps(
        rates,
        tuple(budgets),
        None if own_key else actor.max_tokens_cap,
        () if own_key else actor.allowed_models,
    )


def hold_to_caps(
    actor: Principal, ancestors: set[str], changes: dict[str, Any], old: Any | None, *, key: bool = False
) -> None:
    """Nobody sets a limit looser than the one its own principal is held to.

    `old` is the entity being changed, or None for a new one; a new entity without a limit that the actor is
    held to inherits the actor's (scope is inherited downward). `changes` may be completed in place.
    """
    caps = _caps(actor, ancestors)
    rates = dict(caps.rates)
    if key and caps.max_tokens is not None:
        rates["max_tokens"] = caps.max_tokens
    for name, cap in rates.items():
        if old is None:
            if changes.get(name) is None:
                changes[name] = cap
            elif changes[name] > cap:
                raise forbidden(f"set {name} above {cap}, the limit its own key is held to")
        elif (
            name in changes
            and _widens(getattr(old, name), changes[name])
            and (changes[name] is None or changes[name] > cap)
        ):
            raise forbidden(f"raise {name} above {cap}, the limit its own key is held to")
    if caps.budgets:
        _hold_budget(caps.budgets, changes, old)
    if key and caps.models and (old is None or "models" in changes):
        _hold_models(caps.models, changes, old)
    if actor.allowed_regions and (old is None or "allowed_regions" in changes):
        _hold_regions(actor.allowed_regions, changes, old)


def _hold_regions(allowed: tuple[str, ...], changes: dict[str, Any], old: Any | None) -> None:
    """Data residency is a limit too: nobody lets data go where its own requests may not."""
    regions = changes.get("allowed_regions") or []
    if old is None and not regions:
        changes["allowed_regions"] = list(allowed)
        return
    before = (old.allowed_regions or []) if old is not None else []
    if old is not None and before and regions and all(any(covers(b, r) for b in before) for r in regions):
        return  # narrowing
    if not regions or not all(any(covers(a, r) for a in allowed) for r in regions):
        raise forbidden(f"allow regions beyond {', '.join(allowed)}, the regions its own key may use")


def _hold_budget(caps: tuple[Budget, ...], changes: dict[str, Any], old: Any | None) -> None:
    if old is None:
        amount, period = changes.get("budget_micros"), changes.get("budget_period") or "monthly"
        if amount is None:
            strictest = min(caps, key=lambda b: (b.amount_micros, -_PERIOD_DAYS[b.period]))
            changes["budget_micros"], changes["budget_period"] = strictest.amount_micros, strictest.period
            return
    else:
        if "budget_micros" not in changes and "budget_period" not in changes:
            return
        amount = changes.get("budget_micros", old.budget_micros)
        period = changes.get("budget_period", old.budget_period) or "monthly"
        before = old.budget_micros
        looser = before is not None and (
            amount is None or amount > before or _PERIOD_DAYS[period] < _PERIOD_DAYS[old.budget_period or "monthly"]
        )
        if not looser:
            return
    if amount is None or not all(_budget_within(amount, period, cap) for cap in caps):
        limit = ", ".join(f"{micros_to_usd(c.amount_micros)} USD {c.period}" for c in caps)
        raise forbidden(f"set a budget looser than {limit}, the budget its own key is held to")


def _hold_models(allowed: tuple[str, ...], changes: dict[str, Any], old: Any | None) -> None:
    models = changes.get("models") or []
    if old is None and not models:
        changes["models"] = list(allowed)
        return
    if old is not None and models and set(models) <= set(old.models or ()):
        return  # narrowing is always allowed
    if not models or not all(_glob_within(m, allowed) for m in models):
        raise forbidden(f"allow models beyond {', '.join(allowed)}, the models its own key may use")


class AdminService:
    def __init__(
        self,
        directory: Directory,
        ledger: SpendLedger,
        invalidate: Invalidate,
        clock: Clock = system_clock,
        guardrail_levels: tuple[str, ...] = ("off",),
    ) -> None:
        # the levels this gateway knows (off only, while it runs no firewall): a level it cannot apply is
        # refused, never stored and silently ignored
        self._guardrail_levels = guardrail_levels
        self._directory = directory
        self._ledger = ledger
        self._invalidate = invalidate
        self._clock = clock
        self.changed: Callable[[AdminChange], None] | None = None  # the event bus's publish, for the audit log

    def _changed(
        self, actor: Principal, action: str, target: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        if self.changed is not None:
            self.changed(AdminChange(actor.key_id, action, target, before, after))

    def _now(self) -> dt.datetime:
        return utc(self._clock())

    def _level(self, body: BaseModel, changes: dict[str, Any]) -> None:
        """The body's guardrail level, checked against the levels this gateway knows, into `changes`."""
        if "guardrail_level" not in body.model_fields_set:
            return
        level = getattr(body, "guardrail_level", None)
        if level is not None and level not in self._guardrail_levels:
            if self._guardrail_levels == ("off",):
                raise AdminError(
                    400,
                    f"guardrail_level '{level}' cannot apply: this gateway runs no firewall "
                    "(add `firewall` to pipeline.stages)",
                )
            known = ", ".join(self._guardrail_levels)
            raise AdminError(400, f"unknown guardrail_level '{level}' (expected one of: {known})")
        changes["guardrail_level"] = level

    # -- who may do what ------------------------------------------------------------------------------
    # Reach: master everything; tenant_admin and viewer their tenant; team_admin (and a key minted by one)
    # its team. An entity in another tenant is answered as if it did not exist. Changing an entity also
    # needs a role that outranks it (a key's role; a user's highest key; team_admin for a team).

    @staticmethod
    def _require(actor: Principal, role: str, what: str) -> None:
        if _rank(actor.role) < _ROLE_RANK[role]:
            raise forbidden(what)

    @staticmethod
    def _outrank(actor: Principal, level: str, what: str) -> None:
        if actor.role != "master" and _rank(actor.role) <= _rank(level):
            raise forbidden(what)

    @staticmethod
    def _team_reach(actor: Principal) -> bool:
        return actor.role == "team_admin" or actor.team_confined

    def _within(self, actor: Principal, tenant_id: str, team_id: str | None, what: str, missing: AdminError) -> None:
        if actor.role == "master":
            return
        if actor.tenant_id != tenant_id:
            raise missing
        if self._team_reach(actor) and team_id != actor.team_id:
            raise forbidden(what)

    def _check_tenant(self, actor: Principal, tenant_id: str, what: str) -> None:
        if actor.role != "master" and actor.tenant_id != tenant_id:
            raise forbidden(what)

    async def _team_for(self, actor: Principal, team_id: str, what: str) -> Team:
        team = await self._directory.get(Team, team_id)
        if team is None:
            raise _not_found("team", team_id)
        self._within(actor, team.tenant_id, team.id, what, _not_found("team", team_id))
        return team

    async def _user_level(self, user_id: str) -> str:
        """A user ranks as its highest-ranking live key: changing the user changes what that key may do."""
        keys = await self._directory.list(ApiKey, user_id=user_id)
        roles = [k.role for k in keys if k.revoked_at is None] or ["inference"]
        return max(roles, key=_rank)

    # -- tenants --------------------------------------------------------------------------------------

    async def create_tenant(self, actor: Principal, body: TenantBody) -> dict[str, Any]:
        self._require(actor, "master", "create tenants")
        tenant_id = body.id or new_id("tenant")
        tenant = Tenant(id=tenant_id, name=body.name or tenant_id, created_at=self._now())
        changes = _limits_changes(body)
        self._level(body, changes)
        _apply(tenant, changes)
        view = tenant_view(await self._add(tenant))
        self._changed(actor, "create", f"tenant:{tenant_id}", None, view)
        return view

    async def list_tenants(self, actor: Principal) -> list[dict[str, Any]]:
        self._require(actor, "tenant_admin", "list tenants")
        rows = await self._directory.list(Tenant, id=None if actor.role == "master" else actor.tenant_id)
        return [tenant_view(t) for t in rows]

    async def update_tenant(self, actor: Principal, tenant_id: str, body: TenantUpdate) -> dict[str, Any]:
        self._require(actor, "master", "change tenants")
        changes = _limits_changes(body)
        self._level(body, changes)
        if body.name:
            changes["name"] = body.name
        old = await self._directory.get(Tenant, tenant_id) if self.changed is not None else None
        tenant = await self._directory.update(Tenant, tenant_id, **changes)
        if tenant is None:
            raise _not_found("tenant", tenant_id)
        await self._invalidate_scope(tenant_id=tenant_id)
        view = tenant_view(tenant)
        self._changed(actor, "update", f"tenant:{tenant_id}", tenant_view(old) if old else None, view)
        return view

    async def get_tenant(self, actor: Principal, tenant_id: str) -> dict[str, Any]:
        self._require(actor, "tenant_admin", "read tenants")
        if actor.role != "master" and actor.tenant_id != tenant_id:
            raise _not_found("tenant", tenant_id)
        tenant = await self._directory.get(Tenant, tenant_id)
        if tenant is None:
            raise _not_found("tenant", tenant_id)
        return tenant_view(tenant)

    async def delete_tenant(self, actor: Principal, tenant_id: str) -> None:
        self._require(actor, "master", "delete tenants")
        old = await self._directory.get(Tenant, tenant_id) if self.changed is not None else None
        await self._delete(Tenant, tenant_id)
        self._changed(actor, "delete", f"tenant:{tenant_id}", tenant_view(old) if old else None, None)

    # -- teams ----------------------------------------------------------------------------------------

    async def create_team(self, actor: Principal, body: TeamBody) -> dict[str, Any]:
        self._require(actor, "tenant_admin", "create teams")
        tenant_id = body.tenant or (actor.tenant_id if actor.role != "master" else None) or DEFAULT_TENANT
        if actor.role != "master" and tenant_id != actor.tenant_id:
            raise forbidden("create teams in another tenant")
        if tenant_id == DEFAULT_TENANT:
            await self._ensure_default_tenant()
        elif await self._directory.get(Tenant, tenant_id) is None:
            raise _not_found("tenant", tenant_id)
        team_id = body.id or new_id("team")
        changes = _limits_changes(body)
        self._level(body, changes)
        hold_to_caps(actor, {f"tenant:{tenant_id}"}, changes, None)
        team = Team(id=team_id, tenant_id=tenant_id, name=body.name or team_id, created_at=self._now())
        _apply(team, changes)
        view = team_view(await self._add(team))
        self._changed(actor, "create", f"team:{team_id}", None, view)
        return view

    async def list_teams(self, actor: Principal, tenant: str | None = None) -> list[dict[str, Any]]:
        self._require(actor, "team_admin", "list teams")
        if actor.role != "master":
            if tenant is not None and tenant != actor.tenant_id:
                raise forbidden("list another tenant's teams")
            tenant = actor.tenant_id
        if self._team_reach(actor):
            return [team_view(await self._team_for(actor, actor.team_id or "", "list teams"))]
        return [team_view(t) for t in await self._directory.list(Team, tenant_id=tenant)]

    async def update_team(self, actor: Principal, team_id: str, body: TeamUpdate) -> dict[str, Any]:
        self._require(actor, "team_admin", "change teams")
        team = await self._team_for(actor, team_id, "change this team")
        self._outrank(actor, "team_admin", "change teams")
        changes = _limits_changes(body)
        self._level(body, changes)
        hold_to_caps(actor, {f"tenant:{team.tenant_id}"}, changes, team)
        if body.name:
            changes["name"] = body.name
        updated = await self._directory.update(Team, team_id, **changes)
        if updated is None:
            raise _not_found("team", team_id)
        await self._invalidate_scope(team_id=team_id)
        view = team_view(updated)
        self._changed(actor, "update", f"team:{team_id}", team_view(team), view)
        return view

    async def get_team(self, actor: Principal, team_id: str) -> dict[str, Any]:
        self._require(actor, "team_admin", "read teams")
        return team_view(await self._team_for(actor, team_id, "read this team"))

    async def delete_team(self, actor: Principal, team_id: str) -> None:
        self._require(actor, "team_admin", "delete teams")
        team = await self._team_for(actor, team_id, "delete this team")
        self._outrank(actor, "team_admin", "delete teams")
        await self._delete(Team, team_id)
        self._changed(actor, "delete", f"team:{team_id}", team_view(team), None)

    # -- users ----------------------------------------------------------------------------------------

    async def create_user(self, actor: Principal, body: UserBody) -> dict[str, Any]:
        self._require(actor, "team_admin", "create users")
        team = await self._team_for(actor, body.team, "create users in this team")
        changes = _limits_changes(body)
        hold_to_caps(actor, {f"tenant:{team.tenant_id}", f"team:{team.id}"}, changes, None)
        user = User(id=body.id, team_id=body.team, email=body.email, created_at=self._now())
        _apply(user, changes)
        view = user_view(await self._add(user))
        self._changed(actor, "create", f"user:{body.id}", None, view)
        return view

    async def list_users(self, actor: Principal, team: str | None = None) -> list[dict[str, Any]]:
        self._require(actor, "team_admin", "list users")
        if self._team_reach(actor):
            team = team or actor.team_id
        if team is not None:
            await self._team_for(actor, team, "list this team's users")
            return [user_view(u) for u in await self._directory.list(User, team_id=team)]
        users = await self._directory.list(User)
        if actor.role == "master":
            return [user_view(u) for u in users]
        teams = {t.id for t in await self._directory.list(Team, tenant_id=actor.tenant_id)}
        return [user_view(u) for u in users if u.team_id in teams]

    async def _user_for(self, actor: Principal, user_id: str, what: str) -> tuple[User, Team]:
        self._require(actor, "team_admin", what)
        user = await self._directory.get(User, user_id)
        if user is None:
            raise _not_found("user", user_id)
        team = await self._directory.get(Team, user.team_id)
        if team is None:
            raise _not_found("user", user_id)
        self._within(actor, team.tenant_id, team.id, what, _not_found("user", user_id))
        return user, team

    async def get_user(self, actor: Principal, user_id: str) -> dict[str, Any]:
        return user_view((await self._user_for(actor, user_id, "read this user"))[0])

    async def update_user(self, actor: Principal, user_id: str, body: UserUpdate) -> dict[str, Any]:
        user, team = await self._user_for(actor, user_id, "change this user")
        self._outrank(actor, await self._user_level(user_id), "change a user holding a key of its rank or above")
        changes = _limits_changes(body)
        hold_to_caps(actor, {f"tenant:{team.tenant_id}", f"team:{team.id}"}, changes, user)
        if "email" in body.model_fields_set:
            changes["email"] = body.email
        updated = await self._directory.update(User, user_id, **changes)
        if updated is None:
            raise _not_found("user", user_id)
        await self._invalidate_scope(user_id=user_id)
        view = user_view(updated)
        self._changed(actor, "update", f"user:{user_id}", user_view(user), view)
        return view

    async def delete_user(self, actor: Principal, user_id: str) -> None:
        user, _ = await self._user_for(actor, user_id, "delete this user")
        self._outrank(actor, await self._user_level(user_id), "delete a user holding a key of its rank or above")
        await self._delete(User, user_id)
        self._changed(actor, "delete", f"user:{user_id}", user_view(user), None)

    # -- keys -----------------------------------------------------------------------------------------

    async def create_key(self, actor: Principal, body: KeyBody) -> dict[str, Any]:
        self._require(actor, "team_admin", "create keys")
        self._outrank(actor, body.role, f"create {body.role} keys")
        team_id = body.team or (actor.team_id if self._team_reach(actor) else None)
        if team_id is None:
            raise AdminError(400, "a key belongs to a team: give 'team'")
        team = await self._directory.get(Team, team_id)
        if team is None:
            if self._team_reach(actor):
                raise _not_found("team", team_id)
            # master and tenant admins may name a new team; it is created in their tenant
            await self.create_team(actor, TeamBody(id=team_id))
            team = await self._directory.get(Team, team_id)
            assert team is not None
        else:
            await self._team_for(actor, team_id, "create keys for this team")
        ancestors = {f"tenant:{team.tenant_id}", f"team:{team.id}"}
        if body.user is not None:
            ancestors.add(f"user:{body.user}")
            user = await self._directory.get(User, body.user)
            if user is None:
                await self._add(User(id=body.user, team_id=team.id, created_at=self._now()))
            elif user.team_id != team.id:
                raise AdminError(400, f"user '{body.user}' is not in team '{team.id}'")
            elif body.user != actor.user_id:
                level = await self._user_level(body.user)
                self._outrank(actor, level, "give keys to a user holding a key of its rank or above")
        changes = _limits_changes(body)
        self._level(body, changes)
        changes["max_tokens"] = body.max_tokens
        changes["models"] = list(body.models)
        hold_to_caps(actor, ancestors, changes, None, key=True)
        secret = new_key()
        now = self._now()
        key = ApiKey(
            id=new_id("key"),
            key_hash=key_hash(secret),
            hint=hint(secret),
            name=body.name,
            role=body.role,
            # a key minted by a team-bound admin is bound to the team too, whatever its role
            scope="team" if body.role != "inference" and self._team_reach(actor) else None,
            tenant_id=team.tenant_id,
            team_id=team.id,
            user_id=body.user,
            guardrail_level=body.guardrail_level,
            key_metadata=dict(body.metadata),
            enabled=True,
            expires_at=parse_expiry(body.expires, self._clock()) if body.expires else None,
            created_at=now,
        )
        _apply(key, changes)
        await self._add(key)
        view = key_view(key)
        self._changed(actor, "create", f"key:{key.id}", None, view)
        return {"key": secret, **view}

    async def list_keys(
        self, actor: Principal, team: str | None = None, user: str | None = None
    ) -> list[dict[str, Any]]:
        self._require(actor, "team_admin", "list keys")
        if self._team_reach(actor):
            team = team or actor.team_id
        if team is not None:
            await self._team_for(actor, team, "list this team's keys")
        tenant = None if actor.role == "master" else actor.tenant_id
        keys = await self._directory.list(ApiKey, team_id=team, user_id=user, tenant_id=tenant)
        return [key_view(k) for k in keys]

    async def _key_for(self, actor: Principal, key_id: str, what: str) -> ApiKey:
        """The key, if `actor` reaches it."""
        self._require(actor, "team_admin", what)
        key = await self._directory.get(ApiKey, key_id)
        if key is None:
            raise _not_found("key", key_id)
        self._within(actor, key.tenant_id, key.team_id, what, _not_found("key", key_id))
        return key

    def _may_change(self, actor: Principal, key: ApiKey, what: str, *, own: bool) -> None:
        """Changing a key needs a role above the key's; with `own`, a key may also act on itself."""
        if own and key.id == actor.key_id:
            return
        self._outrank(actor, key.role, f"{what} (a {key.role} key)")

    async def get_key(self, actor: Principal, key_id: str) -> dict[str, Any]:
        return key_view(await self._key_for(actor, key_id, "read this key"))

    async def update_key(self, actor: Principal, key_id: str, body: KeyUpdate) -> dict[str, Any]:
        old = await self._key_for(actor, key_id, "change this key")
        self._may_change(actor, old, "change this key", own=False)
        fields = body.model_fields_set
        changes = _limits_changes(body)
        self._level(body, changes)
        for name in ("name", "models", "max_tokens", "enabled"):
            if name in fields:
                changes[name] = getattr(body, name)
        ancestors = {f"tenant:{old.tenant_id}", f"team:{old.team_id}", f"user:{old.user_id}"}
        hold_to_caps(actor, ancestors, changes, old, key=True)
        if "metadata" in fields:
            changes["key_metadata"] = body.metadata or {}
        if "expires" in fields:
            changes["expires_at"] = parse_expiry(body.expires, self._clock()) if body.expires else None
        key = await self._directory.update(ApiKey, key_id, **changes)
        if key is None:
            raise _not_found("key", key_id)
        await self._invalidate(_hashes(key))
        view = key_view(key)
        self._changed(actor, "update", f"key:{key_id}", key_view(old), view)
        return view

    async def rotate_key(self, actor: Principal, key_id: str, grace_seconds: float = 3600.0) -> dict[str, Any]:
        """A new secret; the current one keeps working for `grace_seconds`.

        A grace promised by an earlier rotation is never cut short: while it runs, another rotation must
        end the current secret at once (grace 0) and the earlier one keeps its grace.
        """
        key = await self._key_for(actor, key_id, "rotate this key")
        self._may_change(actor, key, "rotate this key", own=True)
        if key.revoked_at is not None:
            raise AdminError(409, f"key '{key_id}' is revoked")
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise AdminError(400, f"'grace_seconds' must be between 0 and {MAX_GRACE_SECONDS}")
        now = self._clock()
        earlier = key.previous_expires_at if key.previous_hash else None
        if earlier is not None and as_utc(earlier).timestamp() > now:
            if grace_seconds > 0:
                raise AdminError(
                    409,
                    f"key '{key_id}' still accepts its secret from before the last rotation until "
                    f"{as_utc(earlier).isoformat()}; rotate with grace_seconds=0 (that secret keeps its grace) "
                    "or after that time",
                )
            previous = {"previous_hash": key.previous_hash, "previous_expires_at": earlier}
        elif grace_seconds > 0:
            previous = {"previous_hash": key.key_hash, "previous_expires_at": utc(now + grace_seconds)}
        else:
            previous = {"previous_hash": None, "previous_expires_at": None}
        old = _hashes(key)
        secret = new_key()
        rotated = await self._directory.update(ApiKey, key_id, key_hash=key_hash(secret), hint=hint(secret), **previous)
        if rotated is None:
            raise _not_found("key", key_id)
        await self._invalidate(old)
        view = key_view(rotated)
        self._changed(actor, "rotate", f"key:{key_id}", key_view(key), view)
        return {"key": secret, **view}

    async def revoke_key(self, actor: Principal, key_id: str) -> dict[str, Any]:
        key = await self._key_for(actor, key_id, "revoke this key")
        self._may_change(actor, key, "revoke this key", own=True)
        revoked = await self._directory.update(ApiKey, key_id, revoked_at=self._now(), enabled=False)
        if revoked is None:
            raise _not_found("key", key_id)
        await self._invalidate(_hashes(revoked))
        view = key_view(revoked)
        self._changed(actor, "revoke", f"key:{key_id}", key_view(key), view)
        return view

    # -- spend ----------------------------------------------------------------------------------------

    async def spend(
        self,
        actor: Principal,
        by: str,
        *,
        key_id: str | None = None,
        team: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        model: str | None = None,
        feature: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> dict[str, Any]:
        self._require(actor, "viewer", "read spend reports")
        if by not in GROUPS:
            raise AdminError(400, f"'by' must be one of {', '.join(GROUPS)}, not {by!r}")
        if actor.role != "master":
            if tenant is not None and tenant != actor.tenant_id:
                raise forbidden("read another tenant's spend")
            tenant = actor.tenant_id
        if team is not None and actor.role != "master":
            await self._team_for(actor, team, "read another team's spend")
        if self._team_reach(actor):
            team = actor.team_id
        now = self._clock()
        where = SpendFilter(
            tenant_id=tenant,
            team_id=team,
            user_id=user,
            key_id=key_id,
            model=model,
            feature=feature,
            since=parse_since(since, now) if since else None,
            until=parse_since(until, now, "until") if until else None,
        )
        rows = await self._ledger.report(by, where)
        return {
            "by": by,
            "rows": [
                {
                    "group": r.group,
                    "requests": r.requests,
                    "input_tokens": r.input_tokens,
                    "output_tokens": r.output_tokens,
                    "cost_usd": micros_to_usd(r.cost_micros),
                    "unpriced_requests": r.unpriced_requests,
                    **({"saved_usd": micros_to_usd(r.saved_micros)} if by == "cache" else {}),
                }
                for r in rows
            ],
        }

    # -- helpers --------------------------------------------------------------------------------------

    async def _ensure_default_tenant(self) -> None:
        if await self._directory.get(Tenant, DEFAULT_TENANT) is None:
            try:
                await self._directory.add(Tenant(id=DEFAULT_TENANT, name="Default", created_at=self._now()))
            except Conflict:
                pass

    async def _add(self, entity: Any) -> Any:
        try:
            return await self._directory.add(entity)
        except Conflict:
            raise AdminError(409, f"{entity.__tablename__[:-1]} '{entity.id}' already exists") from None

    async def _delete(self, kind: type[Any], entity_id: str) -> None:
        try:
            found = await self._directory.delete(kind, entity_id)
        except Conflict as exc:
            raise AdminError(409, str(exc)) from None
        if not found:
            raise AdminError(404, f"{kind.__tablename__[:-1]} '{entity_id}' does not exist")

    async def _invalidate_scope(self, **where: str) -> None:
        """A tenant's or team's limits changed: drop every cached key under it."""
        keys = await self._directory.list(ApiKey, **where)
        await self._invalidate([h for k in keys for h in _hashes(k)])


def _apply(entity: Any, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(entity, name, value)


def _hashes(key: ApiKey) -> list[str]:
    return [h for h in (key.key_hash, key.previous_hash) if h]
