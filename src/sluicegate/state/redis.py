"""The Redis backend: every admission and every settlement is one Lua script, so one round trip.

Keys carry a hash tag per tenant (`{t:<tenant>}`), so one request's keys share a slot on Redis Cluster;
global and per-deployment counters are shared by every tenant and carry the tag `{g}`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from sluicegate.state.clock import Clock
from sluicegate.state.connect import ClusterClient, connect, is_cluster, parse_redis_url
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
)
from sluicegate.state.rebuild import BudgetRebuild, RebuildPending
from sluicegate.state.scripts import ADMIT, BALANCE, RELEASE, SEED, SETTLE, SHRINK, WINDOW_USE

_US = 1_000_000


def fresh_connection_retry() -> Retry:
    """One more try, on a new socket, when a pooled connection turns out broken (a Redis restarted since it
    was opened leaves every pooled connection dead). A timeout is not retried: an outage must be seen
    within one timeout, and the outage policy takes over. Should Redis have run a script before the
    connection broke, the retry counts it twice: reservations and spend err high, never low."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _us(seconds: float) -> int:
    return round(seconds * _US)


def _is_shared(scope: str) -> bool:
    return scope == "global" or scope.startswith(("global:", "dep:"))


class RedisState:
    name = "redis"

    def __init__(
        self,
        client: aioredis.Redis | ClusterClient,
        *,
        prefix: str = "sg",
        window_seconds: float = 60.0,
        clock: Clock | None = None,
        rebuild: BudgetRebuild | None = None,
    ) -> None:
        self._redis = client
        self._rebuild = rebuild  # None: a balance Redis has not seen starts at zero
        self._seeded: dict[tuple[str, str, str], float] = {}  # balance -> when this instance last seeded it
        self._seeding: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        # This instance's requests in flight, per balance key: request id -> (reservation, its expiry in Redis's
        # time, its expiry here). A balance Redis lost is seeded with them, so their reservations are not lost.
        self._held: dict[str, dict[str, tuple[int, int, float]]] = {}
        self._prefix = prefix
        self._window = _us(window_seconds)
        self._clock = clock  # None: Redis's own TIME inside the scripts
        # On Redis Cluster a script touches one slot: a request's tenant keys and its shared keys (global
        # scopes, deployments) are admitted and settled by one script each (see `_split`).
        self._cluster = is_cluster(client)
        self._admit = self._script(ADMIT)
        self._settle = self._script(SETTLE)
        self._window_use = self._script(WINDOW_USE)
        self._balance = self._script(BALANCE)
        self._seed = self._script(SEED)
        self._release = self._script(RELEASE)
        self._shrink = self._script(SHRINK)
        self.round_trips = RoundTrips()

    def _script(self, source: str) -> Callable[..., Awaitable[Any]]:
        script: Callable[..., Awaitable[Any]] = self._redis.register_script(source)
        return script

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        timeout: float = 1.0,
        prefix: str = "sg",
        window_seconds: float = 60.0,
        rebuild: BudgetRebuild | None = None,
        clock: Clock | None = None,
    ) -> RedisState:
        if parse_redis_url(url).kind != "single":  # Redis Cluster or Sentinel: redis-py's own clients
            client = connect(url, timeout=timeout, max_connections=128, retry=fresh_connection_retry())
            return cls(client, prefix=prefix, window_seconds=window_seconds, clock=clock, rebuild=rebuild)
        # A bounded pool: a burst waits briefly for a connection instead of opening thousands.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=128,
            timeout=5.0,
            retry=fresh_connection_retry(),
        )
        client = aioredis.Redis(connection_pool=pool)
        return cls(client, prefix=prefix, window_seconds=window_seconds, clock=clock, rebuild=rebuild)

    def _key(self, tenant: str, scope: str, *parts: str) -> str:
        tag = "{g}" if _is_shared(scope) else "{t:" + tenant + "}"
        return ":".join((self._prefix, tag, scope, *parts))

    def _now(self) -> str:
        return "" if self._clock is None else str(_us(self._clock.now()))

    def _keep_ms(self, budget: BudgetScope) -> int:
        # Counters of a finished period are kept a week for reading, then dropped by Redis.
        if budget.expires_at is None:
            return 0
        now = self._clock.now() if self._clock is not None else time.time()
        return max(1000, int((budget.expires_at - now + 7 * 86400) * 1000))

    async def admit(self, plan: AdmissionPlan) -> Admission:
        parts = self._split(plan.rates, plan.budgets, bool(plan.deployments))
        if parts is None:
            return await self._admit_slot(plan)
        (own_rates, own_budgets), (shared_rates, shared_budgets) = parts
        own = dataclasses.replace(plan, rates=own_rates, budgets=own_budgets, deployments=(), deployment_required=False)
        first = await self._admit_slot(own)
        if not first.admitted:
            return first
        # The shared slot may grant fewer tokens than the tenant's (a global budget): the tenant's part keeps
        # its larger reservation until the request settles, erring high.
        grant = first.output_tokens
        shared = dataclasses.replace(
            plan,
            rates=shared_rates,
            budgets=shared_budgets,
            max_output_tokens=grant,
            min_output_tokens=min(plan.min_output_tokens, grant),
        )
        second = await self._admit_slot(shared)
        if not second.admitted:
            await self._release_slot(own)  # all or nothing across slots
            return dataclasses.replace(second, budgets=_ordered(plan.budgets, first.budgets + second.budgets))
        if second.output_tokens < grant:  # a shared budget granted less: the tenant's part holds as much
            await self._shrink_slot(own, second.reserved_micros, second.charged_tokens)
            first = dataclasses.replace(first, charged_tokens=second.charged_tokens)
        return Admission(
            admitted=True,
            output_tokens=second.output_tokens,
            reserved_micros=second.reserved_micros if shared_budgets else first.reserved_micros,
            charged_tokens=first.charged_tokens,
            rates=_ordered(plan.rates, first.rates + second.rates),
            budgets=_ordered(plan.budgets, first.budgets + second.budgets),
            backend=self.name,
            deployment=second.deployment,
        )

    def _split(
        self, rates: tuple[RateScope, ...], budgets: tuple[BudgetScope, ...], deployments: bool
    ) -> tuple[_Scopes, _Scopes] | None:
        """On a cluster, the tenant's scopes and the shared ones when a request has both (None: one slot)."""
        if not self._cluster:
            return None
        own_rates = tuple(r for r in rates if not _is_shared(r.name))
        own_budgets = tuple(b for b in budgets if not _is_shared(b.name))
        shared_rates = tuple(r for r in rates if _is_shared(r.name))
        shared_budgets = tuple(b for b in budgets if _is_shared(b.name))
        if not (own_rates or own_budgets) or not (shared_rates or shared_budgets or deployments):
            return None
        return (own_rates, own_budgets), (shared_rates, shared_budgets)

    async def _release_slot(self, plan: AdmissionPlan) -> None:
        """Takes back what `_admit_slot` took for the request in one slot (its other slot refused it)."""
        keys: list[str] = []
        for rate in plan.rates:
            keys += [self._key(plan.tenant, rate.name, x) for x in ("req", "tok", "toks", "live")]
        for budget in plan.budgets:
            keys += [self._key(plan.tenant, budget.name, budget.period_id, x) for x in ("bal", "res")]
        self.round_trips.by_kind["release"] = self.round_trips.by_kind.get("release", 0) + 1
        self._forget(plan.tenant, plan.budgets, plan.request_id)
        await self._release(keys=keys, args=[plan.request_id, len(plan.rates), len(plan.budgets)])

    def _forget(self, tenant: str, budgets: tuple[BudgetScope, ...], request_id: str) -> None:
        for budget in budgets:
            key = self._key(tenant, budget.name, budget.period_id, "bal")
            held = self._held.get(key)
            if held is not None:
                held.pop(request_id, None)
                if not held:
                    del self._held[key]

    async def _shrink_slot(self, plan: AdmissionPlan, reserve: int, charged: int) -> None:
        """Lowers the request's reservation and token charge in one slot to what the other slot granted."""
        keys = [self._key(plan.tenant, rate.name, "toks") for rate in plan.rates]
        keys += [self._key(plan.tenant, budget.name, budget.period_id, "bal") for budget in plan.budgets]
        self.round_trips.by_kind["shrink"] = self.round_trips.by_kind.get("shrink", 0) + 1
        for budget in plan.budgets:
            held = self._held.get(self._key(plan.tenant, budget.name, budget.period_id, "bal"), {})
            if plan.request_id in held:
                held[plan.request_id] = (reserve, *held[plan.request_id][1:])
        await self._shrink(keys=keys, args=[plan.request_id, len(plan.rates), len(plan.budgets), reserve, charged])

    async def _admit_slot(self, plan: AdmissionPlan) -> Admission:
        keys: list[str] = []
        args: list[Any] = [
            self._now(),
            plan.request_id,
            self._window,
            len(plan.rates),
            len(plan.budgets),
            _us(plan.reservation_ttl),
            plan.input_tokens,
            plan.input_micros,
            plan.output_pico_per_token * plan.choices,
            plan.max_output_tokens,
            plan.min_output_tokens,
            plan.choices,
        ]
        for rate in plan.rates:
            keys += [self._key(plan.tenant, rate.name, x) for x in ("req", "tok", "toks", "live")]
            args += [rate.rpm, rate.tpm, rate.max_concurrency]
        for budget in plan.budgets:
            keys += [self._key(plan.tenant, budget.name, budget.period_id, x) for x in ("bal", "res")]
            args += [budget.usable_micros, self._keep_ms(budget)]
        args += [len(plan.deployments), 1 if plan.deployment_required else 0]
        for deployment in plan.deployments:
            keys += [self._key(plan.tenant, deployment.name, x) for x in ("req", "tok", "toks")]
            args += [deployment.rpm, deployment.tpm]
        for _ in range(2 * len(plan.budgets) + 1):
            self.round_trips.admissions += 1
            sent = time.monotonic()
            reply = await self._admit(keys=keys, args=args)
            if reply[4] not in (b"unseeded", "unseeded"):
                break
            budget = plan.budgets[int(reply[5]) - 1]
            if self._seeded.get((plan.tenant, budget.name, budget.period_id), -1.0) >= sent:
                continue  # seeded by this instance while the script was on its way: nothing to read again
            try:
                await self._seed_once(plan.tenant, budget)
            except RebuildPending:
                return Admission(
                    admitted=False, refusal="rebuilding", refused_scope=budget.name, retry_after=1.0, backend=self.name
                )
        admitted, grant, reserve, charged, refusal, index, retry, now = reply[:8]
        if refusal in (b"unseeded", "unseeded"):  # seeded balances vanished again at once (Redis evicting)
            return Admission(admitted=False, refusal="rebuilding", retry_after=1.0, backend=self.name)
        rest = reply[8:]
        budget_values = rest[4 * len(plan.rates) :] if admitted else rest
        budgets = tuple(
            BudgetStatus(b.name, b.limit_micros, int(budget_values[2 * i]), int(budget_values[2 * i + 1]))
            for i, b in enumerate(plan.budgets)
        )
        if not admitted:
            kind = cast(RefusalKind, refusal.decode() if isinstance(refusal, bytes) else refusal)
            scopes = plan.budgets if kind in ("budget", "budget_reserved") else (*plan.rates, *plan.deployments)
            return Admission(
                admitted=False,
                refusal=kind,
                refused_scope=scopes[int(index) - 1].name if int(index) > 0 else None,
                retry_after=None if int(retry) < 0 else int(retry) / _US,
                budgets=budgets,
                backend=self.name,
            )
        window = self._window
        rates = []
        for i, rate in enumerate(plan.rates):
            nreq, ntok, oreq, otok = (int(v) for v in rest[4 * i : 4 * i + 4])
            rates.append(
                RateStatus(
                    name=rate.name,
                    rpm=rate.rpm,
                    remaining_requests=rate.rpm - nreq if rate.rpm else 0,
                    reset_requests=max(0, oreq + window - now) / _US if oreq >= 0 else 0.0,
                    tpm=rate.tpm,
                    remaining_tokens=max(0, rate.tpm - ntok) if rate.tpm else 0,
                    reset_tokens=max(0, otok + window - now) / _US if otok >= 0 else 0.0,
                )
            )
        if plan.budgets and int(reserve) > 0:
            held = (int(reserve), int(now) + _us(plan.reservation_ttl), time.monotonic() + plan.reservation_ttl)
            for budget in plan.budgets:
                self._held.setdefault(self._key(plan.tenant, budget.name, budget.period_id, "bal"), {})[
                    plan.request_id
                ] = held
        slot = int(reply[-1])
        return Admission(
            admitted=True,
            output_tokens=int(grant),
            reserved_micros=int(reserve),
            charged_tokens=int(charged),
            rates=tuple(rates),
            budgets=budgets,
            backend=self.name,
            deployment=plan.deployments[slot - 1] if slot > 0 else None,
        )

    async def _seed_once(self, tenant: str, budget: BudgetScope) -> None:
        """Reads the balance's spend from the ledger and seeds it, once however many requests found it
        unseeded at the same time."""
        key = (tenant, budget.name, budget.period_id)
        task = self._seeding.get(key)
        if task is None:
            task = self._seeding[key] = asyncio.get_running_loop().create_task(self._seed_balance(tenant, budget))

            def forget(done: asyncio.Task[None]) -> None:
                self._seeding.pop(key, None)
                if not done.cancelled():
                    done.exception()  # raised to every waiter; not reported again as never retrieved

            task.add_done_callback(forget)
        await asyncio.shield(task)

    async def _seed_balance(self, tenant: str, budget: BudgetScope) -> None:
        micros = await self._rebuild.spent(budget) if self._rebuild is not None else 0
        self.round_trips.by_kind["seed"] = self.round_trips.by_kind.get("seed", 0) + 1
        balance = self._key(tenant, budget.name, budget.period_id, "bal")
        reservations = self._key(tenant, budget.name, budget.period_id, "res")
        moment = time.monotonic()
        held = [(rid, h) for rid, h in self._held.get(balance, {}).items() if h[2] > moment]
        args: list[Any] = [micros, self._keep_ms(budget), len(held)]
        for rid, (amount, expiry, _) in held:
            args += [rid, amount, expiry]
        await self._seed(keys=[balance, reservations], args=args)
        if len(self._seeded) > 100_000:
            self._seeded.clear()
        self._seeded[(tenant, budget.name, budget.period_id)] = time.monotonic()

    async def settle(self, settlement: Settlement) -> Settled:
        parts = self._split(settlement.rates, settlement.budgets, settlement.deployment is not None)
        if parts is None:
            return await self._settle_slot(settlement)
        (own_rates, own_budgets), (shared_rates, shared_budgets) = parts
        own = dataclasses.replace(settlement, rates=own_rates, budgets=own_budgets, deployment=None)
        shared = dataclasses.replace(settlement, rates=shared_rates, budgets=shared_budgets)
        first, second = await asyncio.gather(self._settle_slot(own), self._settle_slot(shared))
        return Settled(_ordered(settlement.budgets, first.budgets + second.budgets), first.alerts + second.alerts)

    async def _settle_slot(self, settlement: Settlement) -> Settled:
        thresholds = [round(t * 1000) for t in settlement.alert_thresholds]
        keys: list[str] = []
        args: list[Any] = [
            self._now(),
            settlement.request_id,
            self._window,
            len(settlement.rates),
            len(settlement.budgets),
            settlement.actual_tokens,
            settlement.actual_micros,
            settlement.deployment_tokens if settlement.deployment is not None else -1,
            len(thresholds),
            *thresholds,
        ]
        tenant = settlement.tenant
        for rate in settlement.rates:
            keys += [self._key(tenant, rate.name, x) for x in ("tok", "toks", "live")]
        for budget in settlement.budgets:
            keys += [self._key(tenant, budget.name, budget.period_id, x) for x in ("bal", "res", "alerts")]
            args += [budget.limit_micros, self._keep_ms(budget)]
        if settlement.deployment is not None:
            scope = "dep:" + settlement.deployment
            keys += [self._key(tenant, scope, x) for x in ("req", "tok", "toks")]
        self.round_trips.settlements += 1
        try:
            reply = await self._settle(keys=keys, args=args)
        finally:  # settled, or not applied (Redis away): either way no longer a reservation to keep
            self._forget(settlement.tenant, settlement.budgets, settlement.request_id)
        n = len(settlement.budgets)
        statuses = tuple(
            BudgetStatus(b.name, b.limit_micros, int(reply[2 * i]), int(reply[2 * i + 1]))
            for i, b in enumerate(settlement.budgets)
        )
        crossed = reply[2 * n :]
        alerts = tuple(
            (settlement.budgets[int(crossed[j]) - 1].name, int(crossed[j + 1]) / 1000)
            for j in range(0, len(crossed), 2)
        )
        return Settled(statuses, alerts)

    async def deployment_headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> Headroom:
        scope = "dep:" + deployment
        keys = [self._key("", scope, x) for x in ("req", "tok", "toks")]
        self.round_trips.reads += 1
        requests, tokens = await self._window_use(keys=keys, args=[self._now(), self._window])
        return Headroom(
            requests=None if rpm is None else rpm - int(requests),
            tokens=None if tpm is None else tpm - int(tokens),
        )

    async def budget_status(self, tenant: str, scope: BudgetScope) -> BudgetStatus:
        keys = [self._key(tenant, scope.name, scope.period_id, x) for x in ("bal", "res")]
        self.round_trips.reads += 1
        spent, reserved = await self._balance(keys=keys, args=[self._now()])
        return BudgetStatus(scope.name, scope.limit_micros, int(spent), int(reserved))

    async def put_override(self, entity: str, value: str | None, until: float) -> None:
        key = self._key("", "global", "overrides")
        if value is None:
            await self._redis.hdel(key, entity)
        else:
            await self._redis.hset(key, entity, value)

    async def all_overrides(self) -> dict[str, str]:
        raw = await self._redis.hgetall(self._key("", "global", "overrides"))
        return {_text(k): _text(v) for k, v in raw.items()}

    async def close(self) -> None:
        await self._redis.aclose()


_Named = TypeVar("_Named", RateStatus, BudgetStatus)
_Scopes = tuple[tuple[RateScope, ...], tuple[BudgetScope, ...]]  # a slot's share of a request's scopes


def _ordered(
    scopes: tuple[RateScope, ...] | tuple[BudgetScope, ...], statuses: tuple[_Named, ...]
) -> tuple[_Named, ...]:
    """The statuses of two slots' replies in the order of the request's scopes."""
    by_name = {status.name: status for status in statuses}
    return tuple(by_name[scope.name] for scope in scopes if scope.name in by_name)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
