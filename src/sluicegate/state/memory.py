"""The in-process backend: exact sliding windows and budget reservations in this process's memory.

Each operation runs without an `await` inside, so on one event loop it is atomic, as the Redis
script is on the server.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from sluicegate.state.clock import Clock, SystemClock
from sluicegate.state.model import (
    Admission,
    AdmissionPlan,
    BudgetScope,
    BudgetStatus,
    Headroom,
    RateScope,
    RateStatus,
    RefusalKind,
    RoundTrips,
    Settled,
    Settlement,
    output_micros,
)
from sluicegate.state.rebuild import BudgetRebuild, RebuildPending


@dataclass(slots=True)
class _Window:
    """The entries of one token window, oldest first: (when, request id) and each request's amount.
    Plain tuples and a dict of strings to ints, which the garbage collector stops tracking, rather than an
    object per entry: a window holds a minute of requests, and a collector that scans them all pauses the
    event loop for as long (the tail latency of a busy gateway)."""

    entries: deque[tuple[float, str]] = field(default_factory=deque)
    amounts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def purge(self, edge: float) -> None:
        entries, amounts = self.entries, self.amounts
        while entries and entries[0][0] <= edge:
            _, request_id = entries.popleft()
            self.total -= amounts.pop(request_id, 0)

    def add(self, now: float, request_id: str, amount: int) -> None:
        self.entries.append((now, request_id))
        amounts = self.amounts
        amounts[request_id] = amounts.get(request_id, 0) + amount  # once per request: the sum if not
        self.total += amount

    def correct(self, request_id: str, amount: int) -> None:
        amounts = self.amounts
        previous = amounts.get(request_id)
        if previous is not None:
            self.total += amount - previous
            amounts[request_id] = amount

    def oldest(self) -> float | None:
        return self.entries[0][0] if self.entries else None

    def time_until_fits(self, limit: int, amount: int, window: float, now: float) -> float:
        """Seconds until `amount` more fits under `limit` as the oldest entries leave the window."""
        excess = self.total + amount - limit
        amounts = self.amounts
        for when, request_id in self.entries:
            excess -= amounts.get(request_id, 0)
            if excess <= 0:
                return max(0.0, when + window - now)
        return window


@dataclass(slots=True)
class _Counts:
    """A requests-per-minute window: only when each request came (oldest first). A request's place is never
    corrected, so no entry objects and no index by request id."""

    entries: deque[float] = field(default_factory=deque)

    def purge(self, edge: float) -> None:
        entries = self.entries
        while entries and entries[0] <= edge:
            entries.popleft()

    def add(self, now: float) -> None:
        self.entries.append(now)

    def oldest(self) -> float | None:
        return self.entries[0] if self.entries else None

    def time_until_fits(self, limit: int, window: float, now: float) -> float:
        """Seconds until one more request fits under `limit` as the oldest leave the window."""
        excess = len(self.entries) + 1 - limit
        if excess <= 0:
            return 0.0
        if excess <= len(self.entries):
            return max(0.0, self.entries[excess - 1] + window - now)
        return window


@dataclass(slots=True)
class _Balance:
    spent: int = 0
    reserved: int = 0
    # request id -> (micro-dollars held, expiry), oldest first (every reservation has the same TTL): a
    # settlement removes its entry, so a settled request leaves nothing here
    reservations: OrderedDict[str, tuple[int, float]] = field(default_factory=OrderedDict)
    alerted: set[float] | None = None  # the alert thresholds crossed this period
    seeded: bool = False  # its spend so far was read from the ledger
    seeding: asyncio.Future[int] | None = None  # the ledger read in progress
    expires_at: float | None = None  # when its period is over and it may be dropped (None: never)

    def purge(self, now: float) -> None:
        """Frees the reservations of requests that never settled (a crash) once their TTL is over."""
        reservations = self.reservations
        while reservations:
            request_id, (amount, until) = next(iter(reservations.items()))
            if until > now:
                return
            del reservations[request_id]
            self.reserved -= amount


class MemoryState:
    """Hot counters for one gateway process (the embedded default)."""

    name = "memory"

    def __init__(
        self, clock: Clock | None = None, window_seconds: float = 60.0, rebuild: BudgetRebuild | None = None
    ) -> None:
        self._clock = clock or SystemClock()
        self._rebuild = rebuild  # None: balances start at zero (no ledger to rebuild them from)
        self._window = window_seconds
        self._requests: dict[str, _Counts] = {}
        self._tokens: dict[str, _Window] = {}
        self._live: dict[str, dict[str, float]] = {}  # scope -> request id -> expiry
        self._balances: dict[tuple[str, str], _Balance] = {}
        self._overrides: dict[str, str] = {}
        self._next_sweep = 0.0
        self.round_trips = RoundTrips()

    def held_entries(self) -> int:
        """How many per-request entries the state holds now (window entries, requests in flight, unsettled
        reservations): what its memory grows with."""
        windows = sum(len(c.entries) for c in self._requests.values())
        windows += sum(len(w.entries) for w in self._tokens.values())
        live = sum(len(requests) for requests in self._live.values())
        return windows + live + sum(len(b.reservations) for b in self._balances.values())

    def _sweep(self, now: float) -> None:
        """Drops the windows whose entries have all left, the concurrency tables with nothing in flight and the
        balances of budget periods that are over, so keys that stop sending (key churn) leave only their
        balance for the period. Runs at most once a window."""
        self._next_sweep = now + self._window
        edge = now - self._window
        for name, counts in list(self._requests.items()):
            counts.purge(edge)
            if not counts.entries:
                del self._requests[name]
        for name, window in list(self._tokens.items()):
            window.purge(edge)
            if not window.entries:
                del self._tokens[name]
        for name in [name for name, requests in self._live.items() if not requests]:
            del self._live[name]
        for key in [k for k, b in self._balances.items() if b.expires_at is not None and b.expires_at <= now]:
            self._balances[key].purge(now)
            if not self._balances[key].reservations:
                del self._balances[key]

    def _balance(self, scope: BudgetScope) -> _Balance:
        key = (scope.name, scope.period_id)
        balance = self._balances.get(key)
        if balance is None:
            balance = self._balances[key] = _Balance(expires_at=scope.expires_at)
        return balance

    def _window_of(self, table: dict[str, _Window], name: str) -> _Window:
        window = table.get(name)
        if window is None:
            window = table[name] = _Window()
        return window

    def _counts_of(self, name: str) -> _Counts:
        counts = self._requests.get(name)
        if counts is None:
            counts = self._requests[name] = _Counts()
        return counts

    async def admit(self, plan: AdmissionPlan) -> Admission:
        balances = [self._balance(scope) for scope in plan.budgets]
        if self._rebuild is not None and balances and not all(balance.seeded for balance in balances):
            refused = await self._seed(plan, balances)
            if refused is not None:
                return refused
        self.round_trips.admissions += 1
        now = self._clock.now()
        if now >= self._next_sweep:
            self._sweep(now)
        window = self._window
        edge = now - window

        grant = plan.max_output_tokens
        pico = plan.output_pico_per_token * plan.choices  # one granted token costs this across every choice
        least = min(plan.min_output_tokens, plan.max_output_tokens)
        budget_scope: str | None = None
        spent_scope: str | None = None  # a budget whose spending alone leaves no room: a terminal refusal
        for bscope, balance in zip(plan.budgets, balances, strict=True):
            balance.purge(now)
            room = bscope.usable_micros - balance.spent - balance.reserved - plan.input_micros
            fit = _affordable(room, pico, plan.max_output_tokens)
            if fit < grant:
                grant, budget_scope = fit, bscope.name
            if fit < least and spent_scope is None:
                settled_room = bscope.usable_micros - balance.spent - plan.input_micros
                if _affordable(settled_room, pico, plan.max_output_tokens) < least:
                    spent_scope = bscope.name
        if plan.budgets and grant < least:
            if spent_scope is not None:
                return self._refused(plan, "budget", spent_scope, None, balances)
            return self._refused(plan, "budget_reserved", budget_scope, None, balances)
        charged = plan.input_tokens + grant * plan.choices

        requests: list[_Counts | None] = []
        tokens: list[_Window | None] = []
        for scope in plan.rates:
            req: _Counts | None = None
            tok: _Window | None = None
            if scope.rpm:
                req = self._counts_of(scope.name)
                req.purge(edge)
                if len(req.entries) + 1 > scope.rpm:
                    retry = req.time_until_fits(scope.rpm, window, now)
                    return self._refused(plan, "requests", scope.name, retry, balances)
            if scope.tpm:
                tok = self._window_of(self._tokens, scope.name)
                tok.purge(edge)
                if charged > scope.tpm:
                    return self._refused(plan, "tokens", scope.name, None, balances)
                if tok.total + charged > scope.tpm:
                    retry = tok.time_until_fits(scope.tpm, charged, window, now)
                    return self._refused(plan, "tokens", scope.name, retry, balances)
            if scope.max_concurrency:
                live = self._live.setdefault(scope.name, {})
                if len(live) + 1 > scope.max_concurrency:
                    for request_id in [r for r, until in live.items() if until <= now]:
                        del live[request_id]
                    if len(live) + 1 > scope.max_concurrency:
                        return self._refused(plan, "concurrency", scope.name, 1.0, balances)
            requests.append(req)
            tokens.append(tok)

        slot: RateScope | None = None
        if plan.deployments:
            full: tuple[RefusalKind, str, float | None] | None = None
            for scope in plan.deployments:
                refusal = self._deployment_room(scope, charged, now)
                if refusal is None:
                    slot = scope
                    break
                if full is None or (refusal[2] is not None and (full[2] is None or refusal[2] < full[2])):
                    full = refusal  # the deployment that frees up soonest
            if slot is None and plan.deployment_required and full is not None:
                return self._refused(plan, full[0], full[1], full[2], balances)
        if slot is not None:
            plan_rates = (*plan.rates, slot)
            requests.append(self._counts_of(slot.name) if slot.rpm else None)
            tokens.append(self._window_of(self._tokens, slot.name) if slot.tpm else None)
        else:
            plan_rates = plan.rates

        reserve = plan.input_micros + output_micros(grant, pico) if plan.budgets else 0
        statuses = []
        for scope, req, tok in zip(plan_rates, requests, tokens, strict=True):
            if req is not None:
                req.add(now)
            if tok is not None:
                tok.add(now, plan.request_id, charged)
            if scope.max_concurrency:
                self._live[scope.name][plan.request_id] = now + plan.reservation_ttl
            if scope is not slot:
                statuses.append(_status(scope.name, scope.rpm, scope.tpm, req, tok, window, now))
        held = (reserve, now + plan.reservation_ttl)
        for balance in balances:
            balance.reservations[plan.request_id] = held
            balance.reserved += reserve
        return Admission(
            admitted=True,
            output_tokens=grant,
            reserved_micros=reserve,
            charged_tokens=charged,
            rates=tuple(statuses),
            budgets=_budget_statuses(plan.budgets, balances),
            backend=self.name,
            deployment=slot,
        )

    def _deployment_room(
        self, scope: RateScope, charged: int, now: float
    ) -> tuple[RefusalKind, str, float | None] | None:
        """None when the deployment's windows have room for this request, else why not and when they will."""
        edge = now - self._window
        if scope.rpm:
            req = self._counts_of(scope.name)
            req.purge(edge)
            if len(req.entries) + 1 > scope.rpm:
                return "requests", scope.name, req.time_until_fits(scope.rpm, self._window, now)
        if scope.tpm:
            tok = self._window_of(self._tokens, scope.name)
            tok.purge(edge)
            if charged > scope.tpm:
                return "tokens", scope.name, None
            if tok.total + charged > scope.tpm:
                return "tokens", scope.name, tok.time_until_fits(scope.tpm, charged, self._window, now)
        return None

    async def _seed(self, plan: AdmissionPlan, balances: list[_Balance]) -> Admission | None:
        """Seeds each balance this process has not seen with the ledger's spend, before admitting against it
        (the only awaits of an admission, before its atomic part)."""
        assert self._rebuild is not None
        for scope, balance in zip(plan.budgets, balances, strict=True):
            if balance.seeded:
                continue
            pending = balance.seeding  # one ledger read however many requests wait for the balance
            if pending is None:
                pending = balance.seeding = asyncio.ensure_future(self._rebuild.spent(scope))
            try:
                micros = await asyncio.shield(pending)
            except RebuildPending:
                balance.seeding = None  # the next request tries again
                return self._refused(plan, "rebuilding", scope.name, 1.0, balances)
            if not balance.seeded:  # the first of the waiters to resume seeds it
                balance.spent += micros
                balance.seeded = True
                balance.seeding = None
        return None

    def _refused(
        self,
        plan: AdmissionPlan,
        kind: RefusalKind,
        scope: str | None,
        retry_after: float | None,
        balances: list[_Balance],
    ) -> Admission:
        return Admission(
            admitted=False,
            refusal=kind,
            refused_scope=scope,
            retry_after=retry_after,
            budgets=_budget_statuses(plan.budgets, balances),
            backend=self.name,
        )

    async def settle(self, settlement: Settlement) -> Settled:
        self.round_trips.settlements += 1
        now = self._clock.now()
        request_id = settlement.request_id
        for scope in settlement.rates:
            tok = self._tokens.get(scope.name)
            if tok is not None:
                tok.correct(request_id, settlement.actual_tokens)
            live = self._live.get(scope.name)
            if live is not None:
                live.pop(request_id, None)
        statuses = []
        alerts = []
        for bscope in settlement.budgets:
            balance = self._balance(bscope)
            balance.purge(now)
            held = balance.reservations.pop(request_id, None)
            if held is not None:
                balance.reserved -= held[0]
            balance.spent += settlement.actual_micros
            for threshold in settlement.alert_thresholds:
                if balance.spent * 1000 >= round(threshold * 1000) * bscope.limit_micros and (
                    balance.alerted is None or threshold not in balance.alerted
                ):
                    if balance.alerted is None:
                        balance.alerted = set()
                    balance.alerted.add(threshold)
                    alerts.append((bscope.name, threshold))
            statuses.append(BudgetStatus(bscope.name, bscope.limit_micros, balance.spent, balance.reserved))
        if settlement.deployment is not None:
            name = "dep:" + settlement.deployment
            req = self._counts_of(name)
            tok = self._window_of(self._tokens, name)
            req.purge(now - self._window)
            tok.purge(now - self._window)
            req.add(now)
            tok.add(now, request_id, settlement.deployment_tokens)
        return Settled(tuple(statuses), tuple(alerts))

    async def deployment_headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> Headroom:
        self.round_trips.reads += 1
        edge = self._clock.now() - self._window
        name = "dep:" + deployment
        req = self._counts_of(name)
        tok = self._window_of(self._tokens, name)
        req.purge(edge)
        tok.purge(edge)
        return Headroom(
            requests=None if rpm is None else rpm - len(req.entries),
            tokens=None if tpm is None else tpm - tok.total,
        )

    async def budget_status(self, tenant: str, scope: BudgetScope) -> BudgetStatus:
        self.round_trips.reads += 1
        balance = self._balance(scope)
        balance.purge(self._clock.now())
        return BudgetStatus(scope.name, scope.limit_micros, balance.spent, balance.reserved)

    async def put_override(self, entity: str, value: str | None, until: float) -> None:
        if value is None:
            self._overrides.pop(entity, None)
        else:
            self._overrides[entity] = value

    async def all_overrides(self) -> dict[str, str]:
        return dict(self._overrides)

    async def close(self) -> None:
        return None


def _affordable(room: int, pico_per_token: int, cap: int) -> int:
    """How many output tokens `room` micro-dollars pay for, at most `cap` (-1 when not even the prompt)."""
    if room < 0:
        return -1
    if pico_per_token <= 0 or output_micros(cap, pico_per_token) <= room:
        return cap
    fit = room * 1_000_000 // pico_per_token
    while fit > 0 and output_micros(fit, pico_per_token) > room:
        fit -= 1
    return min(fit, cap)


def _status(
    name: str, rpm: int, tpm: int, req: _Counts | None, tok: _Window | None, window: float, now: float
) -> RateStatus:
    req_oldest = req.oldest() if req is not None else None
    tok_oldest = tok.oldest() if tok is not None else None
    return RateStatus(
        name=name,
        rpm=rpm,
        remaining_requests=rpm - len(req.entries) if req is not None else 0,
        reset_requests=max(0.0, req_oldest + window - now) if req_oldest is not None else 0.0,
        tpm=tpm,
        remaining_tokens=max(0, tpm - tok.total) if tok is not None else 0,
        reset_tokens=max(0.0, tok_oldest + window - now) if tok_oldest is not None else 0.0,
    )


def _budget_statuses(scopes: tuple[BudgetScope, ...], balances: list[_Balance]) -> tuple[BudgetStatus, ...]:
    return tuple(
        BudgetStatus(scope.name, scope.limit_micros, balance.spent, balance.reserved)
        for scope, balance in zip(scopes, balances, strict=True)
    )
