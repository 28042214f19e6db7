"""The admission stage: count the prompt, then check every rate limit and reserve the worst-case cost in
every budget that applies, all at once and all or nothing, in one call to the hot state.

Over a rate limit the request waits in a bounded fair queue, or gets 429 with `Retry-After`; over a budget
it is downgraded to a cheaper model group or refused with `budget_exceeded`. Every admitted response carries
OpenAI's `x-ratelimit-*` headers for its tightest scope.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from zoneinfo import ZoneInfo

from sluicegate.canonical import ChatRequest, EmbeddingRequest
from sluicegate.catalog import Deployment, ModelCatalog, ModelGroup
from sluicegate.errors import GatewayError, model_not_found
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.decide import PRIORITIES, choose_group, facts_of, undo_choice
from sluicegate.pipeline.fair_queue import FairQueue, QueueFull
from sluicegate.pipeline.records import Refusal
from sluicegate.pipeline.route import allowed_regions
from sluicegate.pricing import micros_to_usd
from sluicegate.principal import Principal
from sluicegate.routing.router import RoutePlan, region_allowed
from sluicegate.state.config import BudgetConfig, BudgetsConfig, LimitsConfig, Period
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import (
    PICO_PER_MICRO,
    Admission,
    AdmissionPlan,
    BudgetScope,
    HotState,
    RateScope,
    RateStatus,
)
from sluicegate.state.overrides import OverrideBook
from sluicegate.state.periods import period_bounds
from sluicegate.tokens import TokenCounter

SESSION_HEADER = "x-sluice-session-id"
OPERATOR_HEADER = "x-sluice-operator-action"
RESERVED_POLL_SECONDS = 0.25  # a request waiting for reservations retries at least this often
RESERVED_RETRY_AFTER = 1  # seconds, in a 429 `budget_reserved`
CLAMPED_HEADER = "x-sluice-max-tokens-clamped"
CLAMPED_REASON_HEADER = "x-sluice-max-tokens-clamped-reason"


@dataclass(frozen=True, slots=True)
class GroupCost:
    """What admission needs of a model group before routing: the dearest prices and output limit."""

    models: tuple[str, ...]
    input_pico: int | None  # None: some deployment's price is unknown
    output_pico: int | None
    max_output_tokens: int
    hedged: bool = False  # the group hedges every request: two calls may be paid for
    limited: bool = False  # a deployment it may reach has its own RPM/TPM: admission takes a deployment slot


@dataclass(slots=True)
class Ticket:
    """What admission reserved for a request, for the meter and for settlement."""

    plan: AdmissionPlan
    admission: Admission
    prompt_tokens: int
    prompt_exact: bool
    input_pico: int
    output_pico: int
    output_tokens: int = 0  # counted as a stream flows, every choice (with the estimate's margin for other families)
    raw_output_tokens: int = 0
    cut_off: bool = False
    settled: bool = False
    finished_choices: set[int] | None = None  # choices of a stream that already ended (for a cut-off)
    route_plan: RoutePlan | None = None  # planned by admission when deployments have their own limits
    slot: str | None = None  # the deployment whose RPM/TPM window this request holds a place in

    def may_call(self, deployment: Deployment) -> bool:
        """Whether an upstream call to this deployment is inside its own RPM/TPM: a deployment with limits
        only takes the request that holds its slot."""
        if self.route_plan is None or not (deployment.rpm or deployment.tpm):
            return True
        return deployment.name == self.slot


def _pico(value: Decimal) -> int:
    return math.ceil(value * PICO_PER_MICRO)


def format_reset(seconds: float) -> str:
    """A duration as OpenAI writes it in `x-ratelimit-reset-*`: 20ms, 1s, 8.64s, 6m0s."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 100) / 100:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def ratelimit_headers(statuses: tuple[RateStatus, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    with_rpm = [s for s in statuses if s.rpm]
    if with_rpm:
        tight = min(with_rpm, key=lambda s: s.remaining_requests / s.rpm)
        headers["x-ratelimit-limit-requests"] = str(tight.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, tight.remaining_requests))
        headers["x-ratelimit-reset-requests"] = format_reset(tight.reset_requests)
    with_tpm = [s for s in statuses if s.tpm]
    if with_tpm:
        tight = min(with_tpm, key=lambda s: s.remaining_tokens / s.tpm)
        headers["x-ratelimit-limit-tokens"] = str(tight.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tight.remaining_tokens))
        headers["x-ratelimit-reset-tokens"] = format_reset(tight.reset_tokens)
    return headers


_PRINCIPALS_KEPT = 50_000


@dataclass(frozen=True, slots=True)
class _PrincipalScopes:
    principal: Principal  # the object they were built from (a key's limits changed: a new object)
    rates: tuple[RateScope, ...]
    budgets: tuple[BudgetScope, ...]  # for a request that is not critical
    until: float  # the end of the earliest budget period among them: rebuilt after it


class _Periods:
    """Period ids, recomputed only when a period ends (no date arithmetic per request)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._cache: dict[Period, tuple[str, float | None]] = {}

    def current(self, period: Period, now: float) -> tuple[str, float | None]:
        cached = self._cache.get(period)
        if cached is None or (cached[1] is not None and now >= cached[1]):
            cached = self._cache[period] = period_bounds(period, now, self._zone)
        return cached


class AdmissionStage:
    name = "admission"

    def __init__(
        self,
        state: HotState,
        catalog: ModelCatalog,
        budgets: BudgetsConfig,
        limits: LimitsConfig,
        metrics: LimitMetrics,
        counter: TokenCounter | None = None,
        clock: Callable[[], float] = time.time,
        overrides: OverrideBook | None = None,
    ) -> None:
        self.state = state
        self.overrides = overrides
        self._catalog = catalog
        self._budgets = budgets
        self._limits = limits
        self._metrics = metrics
        self._counter = counter or TokenCounter(budgets.estimate_margin)
        self._clock = clock
        self._periods = _Periods(ZoneInfo(budgets.time_zone))
        self._groups: dict[str, GroupCost] = {}
        self._principals: dict[str, _PrincipalScopes] = {}  # key id -> the scopes of its current principal
        self._queue = FairQueue(limits.queue.max_waiters)
        self._budget_waiters = 0  # requests waiting for reservations in flight to settle
        self._released = asyncio.Event()  # set (and replaced) when this instance settles a request
        self.used: dict[str, float] = {}  # budget scope -> last known used fraction (for the downgrade tier)
        # The route stage's planner: with deployments that have their own RPM/TPM, admission plans the route
        # so that one call to the hot state also takes a place in the first deployment with room.
        self.planner: Callable[[RequestContext], RoutePlan] | None = None
        self._global_rate = (
            RateScope("global", limits.global_.rpm or 0, limits.global_.tpm or 0, limits.global_.max_concurrency or 0)
            if limits.global_ is not None
            else None
        )

    # -- plan -----------------------------------------------------------------------------------------

    def group_cost(self, group: ModelGroup) -> GroupCost:
        """The dearest prices over every deployment that may serve the group: its own and those of every
        fallback group it can reach (a fallback must not cost more than was reserved)."""
        cost = self._groups.get(group.name)
        if cost is None:
            deployments = [d for g in self._reachable(group) for d in g.deployments]
            prices = [d.price for d in deployments]
            known = [p for p in prices if p is not None]
            unknown = len(known) < len(prices)
            outputs = [d.max_output_tokens for d in deployments if d.max_output_tokens]
            cost = self._groups[group.name] = GroupCost(
                models=tuple(dict.fromkeys(d.model for d in deployments)),
                input_pico=None if unknown else max(_pico(p.top_input) for p in known),
                output_pico=None if unknown else max(_pico(p.output) for p in known),
                max_output_tokens=max(outputs) if outputs else self._budgets.default_max_output_tokens,
                hedged=group.routing.hedging.enabled,
                limited=any(d.rpm or d.tpm for d in deployments),
            )
        return cost

    def _reachable(self, group: ModelGroup) -> list[ModelGroup]:
        seen = {group.name: group}
        pending = [group]
        while pending:
            current = pending.pop()
            routing = current.routing
            names = list(routing.fallbacks) + [n for names in routing.fallbacks_by_error.values() for n in names]
            for name in names:
                other = self._catalog.get(name)
                if other is not None and other.name not in seen and other.kind == group.kind:
                    seen[name] = other
                    pending.append(other)
        return list(seen.values())

    def _scopes_of(self, principal: Principal, now: float) -> _PrincipalScopes:
        """The rate scopes and (non-critical) budget scopes of a principal, built once per principal object
        (the auth cache hands out the same object to every request of a key until it reloads the key) and
        per budget period. One entry per key."""
        known = self._principals.get(principal.key_id)
        if known is not None and known.principal is principal and now < known.until:
            return known
        rates = []
        budgets = []
        for scope in principal.scopes:
            limits = scope.limits
            if limits.rpm or limits.tpm or limits.max_concurrency:
                rates.append(
                    RateScope(f"{scope.kind}:{scope.id}", limits.rpm or 0, limits.tpm or 0, limits.max_concurrency or 0)
                )
            budget = limits.budget
            if budget is not None:
                name = f"{scope.kind}:{scope.id}"
                budgets.append(self._budget(name, budget.amount_micros, budget.period, now, False))
        ends = [b.expires_at for b in budgets if b.expires_at is not None]
        if len(self._principals) >= _PRINCIPALS_KEPT:
            self._principals.clear()  # more keys in use than this: start again rather than grow
        known = self._principals[principal.key_id] = _PrincipalScopes(
            principal, tuple(rates), tuple(budgets), min(ends, default=math.inf)
        )
        return known

    def _rates(self, principal: Principal | None, now: float) -> list[RateScope]:
        rates = list(self._scopes_of(principal, now).rates) if principal is not None else []
        if self._global_rate is not None:
            rates.append(self._global_rate)
        return rates

    def _budget(self, name: str, amount_micros: int, period: Period, now: float, critical: bool) -> BudgetScope:
        period_id, end = self._periods.current(period, now)
        reserve = 0 if critical else math.floor(amount_micros * self._budgets.emergency_reserve)
        return BudgetScope(name, period_id, amount_micros, amount_micros - reserve, end)

    def _budget_scopes(self, ctx: RequestContext, now: float, critical: bool) -> list[BudgetScope]:
        scopes: list[BudgetScope] = []
        principal = ctx.principal
        if principal is not None:
            if not critical:
                scopes.extend(self._scopes_of(principal, now).budgets)
            else:  # a critical request may use the emergency reserve: its usable amount is the whole limit
                for scope in principal.scopes:
                    budget = scope.limits.budget
                    if budget is not None:
                        name = f"{scope.kind}:{scope.id}"
                        scopes.append(self._budget(name, budget.amount_micros, budget.period, now, critical))
        config = self._budgets
        if config.global_ is not None:
            scopes.append(self._budget("global", _micros(config.global_), config.global_.period, now, critical))
        session = ctx.headers.get(SESSION_HEADER)
        if session and config.session is not None:
            name = "session:" + session[:128]
            scopes.append(self._budget(name, _micros(config.session), config.session.period, now, critical))
        return scopes

    # -- stage ----------------------------------------------------------------------------------------

    async def on_request(self, ctx: RequestContext) -> None:
        request = ctx.request
        group = ctx.group or self._catalog.get(ctx.model)  # the decide stage's choice (looked up when alone)
        if request is None:
            return
        if group is None or group.pool:  # never admitted unlimited: a name no limit could be checked against
            raise model_not_found(ctx.model)
        principal = ctx.principal
        now = self._clock()
        priority = facts_of(ctx).priority
        critical = priority >= PRIORITIES["critical"]
        rates = self._rates(principal, now)
        if self.overrides is not None and self.overrides.any and principal is not None:
            group = self._operator_actions(ctx, principal, rates) or group
        budgets = self._budget_scopes(ctx, now, critical)
        if not rates and not budgets and not (self.planner is not None and self.group_cost(group).limited):
            return
        downgrade = self._budgets.downgrade
        if (
            downgrade is not None
            and budgets
            and ctx.model != downgrade.to
            and ctx.route_tier is None  # the auto route already chose a tier lower (`downgrade_due`)
            and any(self.used.get(b.name, 0.0) >= downgrade.at for b in budgets)
        ):
            group = self._downgrade(ctx, downgrade.to) or group
        tenant = principal.tenant_id if principal is not None and principal.tenant_id else "default"
        plan, ticket = self._plan(ctx, group, tenant, rates, budgets)
        admission = await self._admit(ctx, plan, tenant, priority)
        if not admission.admitted and admission.refusal == "budget" and downgrade is not None:
            cheaper = self._catalog.get(downgrade.to)
            if cheaper is not None and cheaper is not group and self._downgrade(ctx, downgrade.to) is not None:
                plan, ticket = self._plan(ctx, cheaper, tenant, rates, budgets)
                admission = await self._admit(ctx, plan, tenant, priority)
                if not admission.admitted:
                    undo_choice(ctx, self._catalog)
        self._remember(admission)
        if not admission.admitted:
            ctx.refusal = Refusal(admission.refusal or "unavailable", admission.refused_scope, admission.retry_after)
            raise self._refusal(admission, budgets)
        ticket.admission = admission
        ctx.admission = ticket
        if ticket.route_plan is not None:
            ticket.slot = admission.deployment.name.removeprefix("dep:") if admission.deployment else None
            route = ticket.route_plan
            route.chain = [d for d in route.chain if ticket.may_call(d)]
            ctx.route_plan = route
        if (
            isinstance(request, ChatRequest)
            and budgets
            and (request.max_tokens is None or request.max_tokens > admission.output_tokens)
        ):
            # Always bound the output when a budget applies: what the remaining budget can pay for, at most
            # the deployment's limit; a provider's own default could be larger than what was reserved.
            if admission.output_tokens < ticket.plan.max_output_tokens:
                announce_clamp(ctx, request.max_tokens, admission.output_tokens, "budget")
            request.max_tokens = admission.output_tokens
        ctx.response_headers.update(ratelimit_headers(admission.rates))

    def downgrade_due(self, ctx: RequestContext) -> bool:
        """Whether a budget of this request is in its downgrade tier (the `auto` route then picks a lower tier)."""
        downgrade = self._budgets.downgrade
        if downgrade is None or not self.used:
            return False
        budgets = self._budget_scopes(ctx, self._clock(), False)
        return any(self.used.get(b.name, 0.0) >= downgrade.at for b in budgets)

    async def count_request(self, ctx: RequestContext) -> None:
        """A request answered without a provider (a response cache hit) counted against the requests-per-
        minute limits of its scopes: no tokens, no budget, no concurrency slot. Over a limit: the same 429."""
        rates = [RateScope(r.name, r.rpm) for r in self._rates(ctx.principal, self._clock()) if r.rpm]
        if not rates:
            return
        principal = ctx.principal
        tenant = principal.tenant_id if principal is not None and principal.tenant_id else "default"
        plan = AdmissionPlan(
            request_id=ctx.request_id, tenant=tenant, rates=tuple(rates), min_output_tokens=0, max_output_tokens=0
        )
        admission = await self.state.admit(plan)
        if not admission.admitted:
            ctx.refusal = Refusal(admission.refusal or "unavailable", admission.refused_scope, admission.retry_after)
            raise self._refusal(admission, [])
        ctx.response_headers.update(ratelimit_headers(admission.rates))

    def _operator_actions(self, ctx: RequestContext, principal: Principal, rates: list[RateScope]) -> ModelGroup | None:
        """Applies emergency rate limits and economy mode set by an operator; returns the economy group."""
        assert self.overrides is not None
        actions = self.overrides.active([f"{scope.kind}:{scope.id}" for scope in principal.scopes])
        if not actions:
            return None
        economy = None
        for action in actions:
            if action.rpm or action.tpm:
                rates.append(RateScope(f"emergency:{action.entity}", action.rpm or 0, action.tpm or 0))
            if action.economy:
                economy = self._cheapest(ctx)
        ctx.operator_actions = "; ".join(f"{a.entity}: {a.describe()}" for a in actions)
        ctx.response_headers[OPERATOR_HEADER] = ctx.operator_actions
        if economy is not None and economy.name != ctx.model:
            choose_group(ctx, economy, "economy")
        return economy

    def _cheapest(self, ctx: RequestContext) -> ModelGroup | None:
        kind = "embedding" if ctx.endpoint == "embeddings" else "chat"
        best: tuple[int, str] | None = None
        for group in self._catalog:
            if group.kind != kind or group.pool or not permitted(ctx.principal, group):
                continue  # an auto group has no deployments of its own to be cheap
            cost = self.group_cost(group)
            if cost.input_pico is None or cost.output_pico is None:
                continue
            key = (cost.input_pico + cost.output_pico, group.name)
            if best is None or key < best:
                best = key
        return self._catalog.get(best[1]) if best is not None else None

    def _downgrade(self, ctx: RequestContext, to: str) -> ModelGroup | None:
        cheaper = self._catalog.get(to)
        if cheaper is None or not permitted(ctx.principal, cheaper):
            return None  # a cheaper model this key may not use (or not in its regions) is no way out
        choose_group(ctx, cheaper, "budget_downgrade")
        self._metrics.downgrades.inc()
        return cheaper

    def _plan(
        self,
        ctx: RequestContext,
        group: ModelGroup,
        tenant: str,
        rates: list[RateScope],
        budgets: list[BudgetScope],
    ) -> tuple[AdmissionPlan, Ticket]:
        request = ctx.request
        cost = self.group_cost(group)
        if isinstance(request, ChatRequest):
            extra = str(request.params.get("tools") or "")
            counted = self._counter.count_prompt(cost.models, request.messages, extra)  # type: ignore[arg-type]
            max_out = cost.max_output_tokens
            if request.max_tokens is not None:
                max_out = min(max_out, request.max_tokens)
            min_out = min(self._budgets.min_output_tokens, max_out)
            choices = output_choices(request)
        else:
            assert isinstance(request, EmbeddingRequest)
            counted = self._counter.count_prompt(cost.models, [], _embedding_text(request.input))
            max_out = min_out = 0
            choices = 1
        input_pico, output_pico = cost.input_pico, cost.output_pico
        input_micros = 0
        if budgets:
            if input_pico is None or output_pico is None:
                unknown = self._budgets.unknown_price
                if unknown.policy == "refuse":
                    # 403, not 503: a configuration error that retrying cannot fix (SDKs retry every 5xx)
                    raise GatewayError(
                        403,
                        f"The model '{ctx.model}' has a deployment without a known price, so its cost cannot be "
                        "reserved against your budget. An administrator must set a price or "
                        "budgets.unknown_price.policy: ceiling.",
                        type="permission_error",
                        code="price_unknown",
                    )
                input_pico, output_pico = 0, 0
                input_micros = math.ceil(unknown.ceiling_usd * 1_000_000)
            else:
                input_micros = -(-counted.tokens * input_pico // PICO_PER_MICRO)
            if cost.hedged or facts_of(ctx).hedge:
                # a hedged request may pay for two calls: reserve for both
                input_micros, output_pico = 2 * input_micros, 2 * (output_pico or 0)
        route_plan = None
        deployments: tuple[RateScope, ...] = ()
        required = False
        if cost.limited and self.planner is not None:
            route_plan = self.planner(ctx)  # raises as the route stage would (404, 403 region, 400 context)
            chain = route_plan.chain
            deployments = tuple(RateScope("dep:" + d.name, d.rpm or 0, d.tpm or 0) for d in chain if d.rpm or d.tpm)
            # only deployments with limits could serve it: none with room is a 429 (or a wait in the queue)
            required = bool(deployments) and len(deployments) == len(chain) and not _has_fallbacks(route_plan.group)
        plan = AdmissionPlan(
            request_id=ctx.request_id,
            tenant=tenant,
            rates=tuple(rates),
            budgets=tuple(budgets),
            input_tokens=counted.tokens,
            input_micros=input_micros,
            output_pico_per_token=output_pico or 0,
            max_output_tokens=max_out,
            min_output_tokens=min_out,
            choices=choices,
            reservation_ttl=self._budgets.reservation_ttl_seconds,
            deployments=deployments,
            deployment_required=required,
        )
        ticket = Ticket(plan, Admission(False), counted.tokens, counted.exact, input_pico or 0, output_pico or 0)
        ticket.route_plan = route_plan
        return plan, ticket

    def reservations_released(self) -> None:
        """A request settled here: requests waiting for budget reservations to be released try again now."""
        if self._budget_waiters:
            released, self._released = self._released, asyncio.Event()
            released.set()

    async def _await_reservations(
        self, plan: AdmissionPlan, tenant: str, priority: int, admission: Admission
    ) -> Admission:
        """Waits, in the fair queue and at most `budgets.reserved_wait_seconds`, for requests in flight to
        release enough of their reservations. Woken by this instance's settlements; settlements on other
        instances are seen by retrying every `RESERVED_POLL_SECONDS`."""
        deadline = time.monotonic() + self._budgets.reserved_wait_seconds
        self._budget_waiters += 1
        try:
            while admission.refusal == "budget_reserved":
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    await self._queue.wait(tenant, priority, min(left, RESERVED_POLL_SECONDS), wake=self._released)
                except QueueFull:
                    self._metrics.queued.labels("full").inc()
                    return admission
                try:
                    admission = await self.state.admit(plan)
                finally:
                    self._queue.done()
        finally:
            self._budget_waiters -= 1
        self._metrics.queued.labels("admitted" if admission.admitted else "refused").inc()
        return admission

    async def _admit(self, ctx: RequestContext, plan: AdmissionPlan, tenant: str, priority: int) -> Admission:
        admission = await self.state.admit(plan)
        if admission.refusal == "budget_reserved" and self._budgets.reserved_wait_seconds > 0:
            return await self._await_reservations(plan, tenant, priority, admission)
        queue = self._limits.queue
        if admission.admitted or admission.retry_after is None or queue.max_wait_seconds <= 0:
            return admission
        if admission.refusal not in ("requests", "tokens", "concurrency"):
            return admission
        deadline = time.monotonic() + queue.max_wait_seconds
        while not admission.admitted and admission.retry_after is not None:
            left = deadline - time.monotonic()
            if admission.retry_after > left:
                self._metrics.queued.labels("refused").inc()
                return admission
            try:
                await self._queue.wait(tenant, priority, admission.retry_after)
            except QueueFull:
                self._metrics.queued.labels("full").inc()
                return admission
            try:
                admission = await self.state.admit(plan)
            finally:
                self._queue.done()
        self._metrics.queued.labels("admitted" if admission.admitted else "refused").inc()
        return admission

    def _remember(self, admission: Admission) -> None:
        used = self.used
        if len(used) > 100_000:
            used.clear()
        for status in admission.budgets:
            used[status.name] = status.used_fraction

    def _refusal(self, admission: Admission, budgets: list[BudgetScope]) -> GatewayError:
        kind = admission.refusal or "unavailable"
        self._metrics.refusals.labels(kind).inc()
        if kind == "budget":
            status = next((b for b in admission.budgets if b.name == admission.refused_scope), None)
            scope = next((b for b in budgets if b.name == admission.refused_scope), None)
            what = _describe_budget(admission.refused_scope or "", scope)
            detail = (
                f" (${micros_to_usd(status.spent_micros)} spent, ${micros_to_usd(status.reserved_micros)} reserved "
                "by requests in flight)"
                if status is not None
                else ""
            )
            return GatewayError(
                self._budgets.refuse_status,
                f"Budget exceeded: the {what} cannot pay for this request{detail}. "
                "This is the gateway's budget, not the provider's quota.",
                type="budget_exceeded",
                code="budget_exceeded",
            )
        if kind == "budget_reserved":
            status = next((b for b in admission.budgets if b.name == admission.refused_scope), None)
            scope = next((b for b in budgets if b.name == admission.refused_scope), None)
            what = _describe_budget(admission.refused_scope or "", scope)
            detail = (
                f" (${micros_to_usd(status.spent_micros)} spent, ${micros_to_usd(status.reserved_micros)} reserved)"
                if status is not None
                else ""
            )
            return GatewayError(
                429,
                f"The {what} is held by requests in flight{detail}; it can pay for this request once they "
                "finish. Please retry shortly.",
                type="budget_reserved",
                code="budget_reserved",
                headers={"retry-after": str(RESERVED_RETRY_AFTER)},
            )
        if kind == "rebuilding":
            return GatewayError(
                503,
                "The gateway is rebuilding this request's budget balances from its spend ledger (after a restart "
                "or a loss of its shared state) and cannot admit against them yet; please retry shortly.",
                type="server_error",
                code="budgets_rebuilding",
                headers={"retry-after": "1"},
            )
        if kind == "unavailable":
            return GatewayError(
                503,
                "The gateway cannot check budgets and rate limits right now (its shared state is unreachable); "
                "please retry shortly.",
                type="server_error",
                code="limits_unavailable",
                headers={"retry-after": "2"},
            )
        who = admission.refused_scope or "this key"
        if who.startswith("dep:"):
            who = "every deployment that can serve this model (each provider's own limit)"
        headers = {}
        if admission.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(admission.retry_after)))
            headers[f"x-ratelimit-reset-{'tokens' if kind == 'tokens' else 'requests'}"] = format_reset(
                admission.retry_after
            )
        if kind == "tokens" and admission.retry_after is None:
            message = (
                f"Request too large for the tokens-per-minute limit of {who}: its prompt plus max_tokens exceed "
                "the whole limit. Reduce the prompt or max_tokens."
            )
        else:
            unit = {
                "requests": "requests per minute (RPM)",
                "tokens": "tokens per minute (TPM)",
                "concurrency": "concurrent requests",
            }[kind]
            wait = f" Please try again in {format_reset(admission.retry_after)}." if admission.retry_after else ""
            message = f"Rate limit reached for {who} on {unit} (gateway limit).{wait}"
        return GatewayError(
            429,
            message,
            type="requests" if kind != "tokens" else "tokens",
            code="rate_limit_exceeded" if kind != "concurrency" else "concurrency_limit_exceeded",
            headers=headers,
        )


def _has_fallbacks(group: ModelGroup) -> bool:
    return bool(group.routing.fallbacks or group.routing.fallbacks_by_error)


def permitted(principal: Principal | None, group: ModelGroup) -> bool:
    """Whether the principal may be served by this group: its model allow-list names it, and a deployment
    of it is inside the principal's data-residency regions. Economy mode and the downgrade tier only move a
    request to a group that passes."""
    if principal is None:
        return True
    if principal.allowed_models and not any(fnmatchcase(group.name, p) for p in principal.allowed_models):
        return False
    regions = allowed_regions(principal)
    return regions is None or any(region_allowed(d.region, regions) for d in group.deployments)


def output_choices(request: ChatRequest) -> int:
    """How many answers the upstream may write for this request, each up to `max_tokens`: `n`, or
    `best_of` where a provider honours it (it generates that many candidates and bills them all)."""
    choices = 1
    for name in ("n", "best_of"):
        value = request.params.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > choices:
            choices = value
    return choices


def announce_clamp(ctx: RequestContext, asked: int | None, granted: int, reason: str) -> None:
    """Says that `max_tokens` was lowered (header and `usage.sluicegate`), so a `finish_reason: length`
    can be told apart from the model's own stop. `reason`: `key_cap` or `budget`."""
    ctx.response_headers[CLAMPED_HEADER] = str(granted)
    ctx.response_headers[CLAMPED_REASON_HEADER] = reason
    extension = ctx.usage_extension if ctx.usage_extension is not None else {}
    earlier = extension.get("max_tokens_clamped")
    if earlier is not None:  # lowered twice (key cap, then budget): the client's own value is the one to show
        asked = earlier["requested"]
    extension["max_tokens_clamped"] = {"requested": asked, "granted": granted, "reason": reason}
    ctx.usage_extension = extension


def _micros(budget: BudgetConfig) -> int:
    return int(budget.amount_usd * 1_000_000)


def _describe_budget(name: str, scope: BudgetScope | None) -> str:
    kind, _, ident = name.partition(":")
    period = ""
    if scope is not None:
        period = {"d": "daily ", "w": "weekly ", "m": "monthly "}.get(scope.period_id[0], "")
        if scope.period_id == "total":
            period = "total "
    amount = f" of ${micros_to_usd(scope.limit_micros)}" if scope is not None else ""
    if kind == "global":
        return f"gateway's global {period}budget{amount}"
    return f"{period}budget{amount} of {kind} '{ident}'"


def _embedding_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(v if isinstance(v, str) else str(v) for v in value)
    return str(value)
