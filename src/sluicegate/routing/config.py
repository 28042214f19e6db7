"""The routing and resilience settings of a model group and of the gateway, strictly typed.

Kept free of other Sluicegate imports so `config/schema.py` can embed these models without a cycle.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Strategy = Literal["weighted", "least_busy", "latency", "cost", "usage", "auto"]  # auto: classify/
ErrorClassName = Literal[
    "rate_limited",
    "overloaded",
    "timeout",
    "server_error",
    "context_window",
    "content_policy",
    "auth",
    "bad_request",
    "connection",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryConfig(_Strict):
    """Retries of one request: full-jitter exponential backoff, `Retry-After` honoured up to `max_wait_s`."""

    max_attempts: int = Field(3, ge=1, le=10)  # upstream attempts per client request, fallbacks included
    same_deployment: int = Field(1, ge=0, le=5)  # retries on the deployment that failed before moving on
    base_delay_ms: float = Field(100.0, ge=0)
    max_delay_ms: float = Field(2000.0, ge=0)
    max_wait_s: float = Field(5.0, ge=0)  # a longer Retry-After is passed to the client, not waited out


class BreakerConfig(_Strict):
    """When a deployment is taken out of rotation, and how it comes back."""

    enabled: bool = True
    window_calls: int = Field(20, ge=1)  # the failure and slow-call rates are over the last this many calls
    window_s: float = Field(30.0, gt=0)  # ... that are at most this old
    minimum_calls: int = Field(10, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    consecutive_failures: int = Field(5, ge=1)
    slow_call_ms: float | None = Field(None, gt=0)  # default: the deployment's latency target, if any
    slow_call_rate: float = Field(0.8, gt=0, le=1)
    half_open_probes: int = Field(2, ge=1)
    min_open_s: float = Field(30.0, gt=0)
    max_open_s: float = Field(300.0, gt=0)
    backoff: float = Field(2.0, ge=1)  # open time multiplier when it re-opens soon after closing


class HedgingConfig(_Strict):
    """Opt-in hedged requests: a second deployment is asked when the first is slower than its p95."""

    enabled: bool = False
    delay_ms: float | None = Field(None, gt=0)  # default: the first deployment's p95 (TTFT for streams)
    min_delay_ms: float = Field(50.0, ge=0)


class GroupRoutingConfig(_Strict):
    """Per model group: strategy, fallback chains and the resilience policies."""

    strategy: Strategy = "weighted"
    fallbacks: list[str] = Field(default_factory=list)  # other groups, tried in order after this one
    fallbacks_by_error: dict[ErrorClassName, list[str]] = Field(default_factory=dict)
    retry: RetryConfig = RetryConfig()
    breaker: BreakerConfig = BreakerConfig()
    hedging: HedgingConfig = HedgingConfig()


class RoutingConfig(_Strict):
    """Gateway-wide routing settings."""

    retry_budget_ratio: float = Field(0.1, ge=0, le=1)  # retries allowed as a share of requests
    retry_budget_min_per_s: float = Field(2.0, ge=0)  # always allowed, so a quiet gateway can still retry
    exploration_share: float = Field(0.05, ge=0, le=0.5)  # traffic sent to deployments with too few samples
    latency_window: int = Field(256, ge=16, le=10000)  # samples kept per deployment for percentiles
    aimd_max_concurrency: int = Field(256, ge=1)
    health_probe_interval_s: float | None = Field(None, gt=0)  # active probes of every deployment; off by default
    share_latency: bool = True  # through Redis when `redis.url` is set: latency percentiles blended across instances
    share_breakers: bool = True  # through Redis when `redis.url` is set: one instance's verdict holds for all
