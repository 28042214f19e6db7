"""The router: for one request and one model group, the ordered deployments to try and the reason.

Hard filters first (capabilities, context window, data residency, breaker), then the group's strategy
orders what is left. Deployments throttled by backpressure go to the end of the chain.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sluicegate.catalog import Deployment, ModelCatalog, ModelGroup
from sluicegate.errors import GatewayError, bad_request
from sluicegate.events import BreakerTransition, EventBus
from sluicegate.routing.breaker import BreakerState, CircuitBreaker
from sluicegate.routing.config import RoutingConfig
from sluicegate.routing.health import DeploymentHealth
from sluicegate.routing.needs import RequestNeeds
from sluicegate.routing.retry import RetryBudget
from sluicegate.routing.strategies import STRATEGIES

Clock = Callable[[], float]


@dataclass(slots=True)
class RoutePlan:
    group: ModelGroup
    chain: list[Deployment]  # best first; may be empty when every breaker is open
    reason: str
    needs: RequestNeeds
    blocked: list[DeploymentHealth] = field(default_factory=list)  # eligible but held out by a breaker


def region_allowed(region: str | None, allowed: frozenset[str] | None) -> bool:
    """`eu` allows `eu` and `eu-west-1`; a deployment without a region is never inside a restriction."""
    if allowed is None:
        return True
    if region is None:
        return False
    return region in allowed or any(region.startswith(prefix + "-") for prefix in allowed)


class Router:
    def __init__(
        self,
        catalog: ModelCatalog,
        config: RoutingConfig,
        *,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.catalog = catalog
        self.config = config
        self.clock = clock
        self.events = events or EventBus()  # breaker transitions are published here
        self.rng = rng or random.Random()
        self.health: dict[str, DeploymentHealth] = {}
        self._members: dict[str, list[DeploymentHealth]] = {}
        self._eligible_cache: dict[tuple[str, frozenset[str], frozenset[str] | None], list[DeploymentHealth]] = {}
        self._min_window: dict[str, int | None] = {}  # the smallest declared context window per group
        for group in catalog:
            members = []
            for d in group.deployments:
                h = self.health.get(d.name)
                if h is None:
                    h = DeploymentHealth(
                        d, group.routing.breaker, config.latency_window, config.aimd_max_concurrency, clock
                    )
                    self.health[d.name] = h
                members.append(h)
            self._members[group.name] = members
            windows = [d.context_window for d in group.deployments if d.context_window is not None]
            self._min_window[group.name] = min(windows) if windows else None
        self.retry_budget = RetryBudget(config.retry_budget_ratio, config.retry_budget_min_per_s, clock)
        for name, health in self.health.items():
            health.breaker.on_transition = self._announcer(name)

    def _announcer(self, deployment: str) -> Callable[[CircuitBreaker, BreakerState], None]:
        def announce(breaker: CircuitBreaker, state: BreakerState) -> None:
            open_for = max(0.0, breaker.open_until - self.clock()) if state is BreakerState.OPEN else 0.0
            self.events.publish(BreakerTransition(deployment, str(state), breaker.reason, open_for))

        return announce

    def members(self, group: ModelGroup) -> list[DeploymentHealth]:
        return self._members[group.name]

    def needs_counting(self, group: ModelGroup, needs: RequestNeeds) -> bool:
        """Whether the prompt must be counted exactly: only when its upper bound may not fit some window."""
        smallest = self._min_window.get(group.name)
        return smallest is not None and needs.prompt_bound + (needs.max_tokens or 0) > smallest

    def plan(self, group: ModelGroup, needs: RequestNeeds) -> RoutePlan:
        """The chain for this group; raises a clear 400/403 when no deployment of it could ever serve.

        The chain holds as many deployments as a request may try (the attempt cap, plus one for a hedge):
        strategies select the best few rather than sort the whole group.
        """
        members = self._members[group.name]
        wanted = needs.capabilities
        regions = needs.regions
        prompt = needs.prompt_tokens
        if prompt is not None:
            eligible = self._eligible(group, members, needs)
        elif wanted or regions is not None:
            # Capabilities and regions are static per deployment: the filtered list is computed once per key.
            key = (group.name, wanted, regions)
            cached = self._eligible_cache.get(key)
            if cached is None:
                cached = self._eligible_cache[key] = self._eligible(group, members, needs)
            eligible = cached
        else:
            eligible = members
        ready: list[DeploymentHealth] = []
        busy: list[DeploymentHealth] = []
        blocked: list[DeploymentHealth] = []
        now = self.clock()
        for h in eligible:
            breaker = h.breaker
            if not breaker.admits_all and not breaker.would_allow():
                blocked.append(h)
                continue
            limit = h.limit
            if limit.in_flight >= int(limit.limit) or h.throttled_until > now:
                busy.append(h)
            else:
                ready.append(h)
        strategy = STRATEGIES[group.routing.strategy]
        explore = self.config.exploration_share
        k = group.routing.retry.max_attempts + 1
        if ready:
            ranked, reason = strategy(ready, needs, self.rng, explore, k)
            if busy and len(ranked) < k:
                ranked += strategy(busy, needs, self.rng, explore, k - len(ranked))[0]
        elif busy:
            ranked, reason = strategy(busy, needs, self.rng, explore, k)
            reason += ", all throttled"
        else:
            ranked, reason = [], f"none: {len(blocked)} of {len(members)} deployments have an open breaker"
        if blocked and ranked:
            reason += f", {len(blocked)} breaker-open"
        return RoutePlan(group, [h.deployment for h in ranked], reason, needs, blocked)

    def _eligible(
        self, group: ModelGroup, members: list[DeploymentHealth], needs: RequestNeeds
    ) -> list[DeploymentHealth]:
        """Deployments that can serve this request at all: capabilities, context window, region."""
        eligible: list[DeploymentHealth] = []
        too_small: list[int] = []
        no_capability = out_of_region = 0
        wanted = needs.capabilities
        regions = needs.regions
        needed = None if needs.prompt_tokens is None else needs.prompt_tokens + (needs.max_tokens or 0)
        for h in members:
            d = h.deployment
            if wanted and d.capabilities and not wanted <= d.capabilities:
                no_capability += 1
            elif regions is not None and not region_allowed(d.region, regions):
                out_of_region += 1
            elif needed is not None and d.context_window is not None and needed > d.context_window:
                too_small.append(d.context_window)
            else:
                eligible.append(h)
        if not eligible:
            raise self._unservable(group, needs, too_small, no_capability, out_of_region)
        return eligible

    def _unservable(
        self, group: ModelGroup, needs: RequestNeeds, too_small: list[int], no_capability: int, out_of_region: int
    ) -> GatewayError:
        if out_of_region and not too_small and not no_capability:
            allowed = ", ".join(sorted(needs.regions or ()))
            return GatewayError(
                403,
                f"No deployment of '{group.name}' is in a region this key may use ({allowed}).",
                type="permission_error",
                code="region_not_allowed",
                param="model",
            )
        if too_small and not no_capability:
            largest = max(too_small)
            return bad_request(
                f"This request needs {needs.prompt_estimate + (needs.max_tokens or 0)} tokens (prompt "
                f"{needs.prompt_estimate}"
                + (f" + max_tokens {needs.max_tokens}" if needs.max_tokens else "")
                + f"); the largest context window of '{group.name}' is {largest} tokens.",
                param="messages",
                code="context_length_exceeded",
            )
        wanted = ", ".join(sorted(needs.capabilities))
        return bad_request(
            f"No deployment of '{group.name}' supports what this request needs ({wanted}).",
            param="model",
            code="model_not_capable",
        )

    def health_of(self, deployment: Deployment) -> DeploymentHealth:
        return self.health[deployment.name]

    def groups(self, names: Iterable[str]) -> list[ModelGroup]:
        return [g for g in (self.catalog.get(n) for n in names) if g is not None]
