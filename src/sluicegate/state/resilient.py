"""The outage policy: Redis first; when it cannot be reached, budgets fail closed (or go local, if so
configured) and rate limits go local at a conservative fraction of each limit. The switch and the return
are logged and counted."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from redis.exceptions import ClusterError, MovedError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sluicegate.state.config import OutagePolicyConfig
from sluicegate.state.memory import MemoryState
from sluicegate.state.model import (
    Admission,
    AdmissionPlan,
    BudgetScope,
    BudgetStatus,
    Headroom,
    HotState,
    RoundTrips,
    Settled,
    Settlement,
)

log = logging.getLogger("sluicegate.state")

# A cluster mid-failover (slots uncovered, still moving) is as unreachable as a Redis that is down.
_UNREACHABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    MovedError,
    TryAgainError,
    OSError,
    asyncio.TimeoutError,
)


class ResilientState:
    """Wraps a shared backend with a local one and a policy for when the shared one is away."""

    name = "resilient"

    def __init__(
        self,
        shared: HotState,
        local: MemoryState,
        policy: OutagePolicyConfig,
        on_switch: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.local = local
        self._policy = policy
        self._on_switch = on_switch
        self._monotonic = monotonic
        self._down_since: float | None = None
        self._next_try = 0.0

    @property
    def round_trips(self) -> RoundTrips:
        return self.shared.round_trips

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    @property
    def policy(self) -> dict[str, str]:
        """What is in force while Redis is away, in words an operator reads on `/health/ready`."""
        policy = self._policy
        budgets = "refused (fail closed)" if policy.budgets == "fail_closed" else "local counters (fail open)"
        rates = (
            f"local counters at {round(policy.local_fraction * 100)}% of each limit (fail open)"
            if policy.rate_limits == "fail_open"
            else "refused (fail closed)"
        )
        return {"budgets": budgets, "rate_limits": rates}

    def health(self) -> dict[str, object] | None:
        """None while Redis is in use; otherwise since when it is away and the policy in force."""
        if self._down_since is None:
            return None
        return {"down_for_seconds": round(self._monotonic() - self._down_since, 1), "policy": self.policy}

    def _use_shared(self) -> bool:
        return self._down_since is None or self._monotonic() >= self._next_try

    def _failed(self, error: BaseException) -> None:
        now = self._monotonic()
        self._next_try = now + self._policy.retry_seconds
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "hot state: Redis unreachable (%s); budgets %s, rate limits %s",
                type(error).__name__,
                self._policy.budgets.replace("_", " "),
                f"local at {round(self._policy.local_fraction * 100)}% of each limit"
                if self._policy.rate_limits == "fail_open"
                else "fail closed",
            )
            if self._on_switch:
                self._on_switch("local")

    def _recovered(self) -> None:
        if self._down_since is not None:
            away = self._monotonic() - self._down_since
            log.warning("hot state: Redis is back after %.1fs; shared counters in use", away)
            self._down_since = None
            if self._on_switch:
                self._on_switch("redis")

    async def admit(self, plan: AdmissionPlan) -> Admission:
        if self._use_shared():
            try:
                result = await self.shared.admit(plan)
            except _UNREACHABLE as error:
                self._failed(error)
            else:
                self._recovered()
                return result
        return await self._admit_locally(plan)

    async def _admit_locally(self, plan: AdmissionPlan) -> Admission:
        policy = self._policy
        if plan.budgets and policy.budgets == "fail_closed":
            return Admission(admitted=False, refusal="unavailable", backend="local")
        if (plan.rates or plan.deployments) and policy.rate_limits == "fail_closed":
            return Admission(admitted=False, refusal="unavailable", backend="local")
        fraction = policy.local_fraction
        rates, deployments = (
            tuple(
                dataclasses.replace(
                    rate,
                    rpm=_part(rate.rpm, fraction),
                    tpm=_part(rate.tpm, fraction),
                    max_concurrency=_part(rate.max_concurrency, fraction),
                )
                for rate in scopes
            )
            for scopes in (plan.rates, plan.deployments)
        )
        result = await self.local.admit(dataclasses.replace(plan, rates=rates, deployments=deployments))
        return dataclasses.replace(result, backend="local")

    async def settle(self, settlement: Settlement) -> Settled:
        if settlement.backend == "local":
            return await self.local.settle(settlement)
        try:
            result = await self.shared.settle(settlement)
        except _UNREACHABLE as error:
            # The reservation stays in Redis until it expires; the spend is in the ledger regardless.
            self._failed(error)
            log.warning("hot state: settlement of %s not applied; its reservation will expire", settlement.request_id)
            return Settled()
        self._recovered()
        return result

    async def deployment_headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> Headroom:
        if self._use_shared():
            try:
                return await self.shared.deployment_headroom(deployment, rpm, tpm)
            except _UNREACHABLE as error:
                self._failed(error)
        return await self.local.deployment_headroom(deployment, rpm, tpm)

    async def budget_status(self, tenant: str, scope: BudgetScope) -> BudgetStatus:
        return await self.shared.budget_status(tenant, scope)

    async def put_override(self, entity: str, value: str | None, until: float) -> None:
        await self.shared.put_override(entity, value, until)

    async def all_overrides(self) -> dict[str, str]:
        return await self.shared.all_overrides()

    async def close(self) -> None:
        await self.shared.close()


def _part(limit: int, fraction: float) -> int:
    return max(1, int(limit * fraction)) if limit else 0
