"""Everything the gateway knows about one deployment right now: breaker, latency, load and recent usage."""

from __future__ import annotations

from collections.abc import Callable

from sluicegate.catalog import Deployment
from sluicegate.routing.aimd import ConcurrencyLimit
from sluicegate.routing.breaker import CircuitBreaker
from sluicegate.routing.config import BreakerConfig
from sluicegate.routing.stats import LatencyStats
from sluicegate.routing.usage import MinuteUsage

Clock = Callable[[], float]
SHARED_HEADROOM_TTL_S = 3.0


class DeploymentHealth:
    __slots__ = (
        "breaker",
        "deployment",
        "input_cost",
        "latency_target_s",
        "limit",
        "output_cost",
        "shared_headroom",
        "shared_headroom_at",
        "stats",
        "throttled_until",
        "usage",
    )

    def __init__(
        self, deployment: Deployment, breaker: BreakerConfig, window: int, max_concurrency: int, clock: Clock
    ) -> None:
        self.deployment = deployment
        self.breaker = CircuitBreaker(breaker, clock, deployment.latency_target_ms)
        self.stats = LatencyStats(window, clock)
        self.limit = ConcurrencyLimit(max_concurrency, clock)
        self.usage = MinuteUsage(clock)
        target = deployment.latency_target_ms
        self.latency_target_s = target / 1000 if target is not None else None
        self.shared_headroom: float | None = None  # from the shared rate-limit state (routing/headroom.py)
        self.shared_headroom_at = float("-inf")
        self.throttled_until = 0.0  # the upstream asked us to back off (429/529 Retry-After) until then
        price = deployment.price
        # Floats are fine here: they only rank deployments; what is charged is computed in Decimal elsewhere.
        self.input_cost = float(price.input) if price is not None else float("inf")
        self.output_cost = float(price.output) if price is not None else float("inf")

    def throttle(self, now: float, retry_after: float | None) -> None:
        """Honours a throttle's Retry-After (1 s when it gives none, 60 s at most) for routing."""
        wait = 1.0 if retry_after is None else min(60.0, retry_after)
        self.throttled_until = max(self.throttled_until, now + wait)
        self.limit.on_throttle()

    def headroom(self, now: float) -> float:
        """Share left under the upstream's RPM/TPM: all instances' use when fresh, else this instance's."""
        if self.shared_headroom is not None and now - self.shared_headroom_at < SHARED_HEADROOM_TTL_S:
            return self.shared_headroom
        return self.usage.headroom(self.deployment.rpm, self.deployment.tpm)

    def estimated_cost(self, prompt_tokens: int, output_tokens: int) -> float:
        return self.input_cost * prompt_tokens + self.output_cost * output_tokens

    def predicted_latency(self, stream: bool) -> float | None:
        """Predicted p99 (seconds); with too few samples, the deployment's latency target if it has one."""
        p99 = self.stats.predicted_p99(stream)
        if p99 is None:
            return self.latency_target_s
        return p99
