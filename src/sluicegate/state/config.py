"""The `budgets:` and `limits:` sections of the configuration: global and session budgets, tiers, alerts,
global rate limits, the admission queue and what to do when Redis is unreachable."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Period = Literal["daily", "weekly", "monthly", "total"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetConfig(_Strict):
    """One budget: US dollars per period."""

    amount_usd: Decimal = Field(gt=0)
    period: Period = "monthly"


class DowngradeConfig(_Strict):
    """At `at` (a fraction of a budget) requests move to the cheaper model group `to`."""

    at: float = Field(0.9, gt=0, le=1)
    to: str = Field(min_length=1)


class WebhookConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    timeout_seconds: float = Field(5.0, gt=0)


class UnknownPriceConfig(_Strict):
    """A deployment without a price: refuse requests that count against a budget, or reserve a ceiling."""

    policy: Literal["refuse", "ceiling"] = "refuse"
    ceiling_usd: Decimal = Field(Decimal("1"), gt=0)


class BudgetsConfig(_Strict):
    time_zone: str = "UTC"  # period boundaries (midnight, Monday, the 1st) in this zone
    global_: BudgetConfig | None = Field(None, alias="global")
    session: BudgetConfig | None = None  # per `x-sluice-session-id`
    alerts: list[float] = Field(default_factory=lambda: [0.5, 0.8, 1.0])
    webhooks: list[WebhookConfig] = Field(default_factory=list)
    downgrade: DowngradeConfig | None = None
    emergency_reserve: float = Field(0.0, ge=0, lt=1)  # share of every budget only critical requests may use
    unknown_price: UnknownPriceConfig = UnknownPriceConfig()
    refuse_status: Literal[402, 429] = 402
    min_output_tokens: int = Field(16, ge=1)  # refuse rather than grant fewer output tokens than this
    default_max_output_tokens: int = Field(4096, ge=1)  # when neither client nor deployment says
    reservation_ttl_seconds: float = Field(900.0, gt=0)  # a crashed request's reservation is freed after this
    # A request the budget could pay once requests in flight settle waits this long for them (0: answer 429
    # `budget_reserved` at once); only one the spending alone leaves no room for is refused for good.
    reserved_wait_seconds: float = Field(5.0, ge=0)
    # how long a request waits for its budget's balance to be rebuilt from the ledger (after a start or a loss
    # of the hot state) before it gets 503 `budgets_rebuilding`
    rebuild_timeout_seconds: float = Field(5.0, gt=0)
    estimate_margin: float = Field(0.15, ge=0, le=2)  # added to estimated (non-OpenAI) prompt token counts

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("alerts")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        for fraction in value:
            if not 0 < fraction <= 1:
                raise ValueError("alert thresholds are fractions in (0, 1]")
        return sorted(set(value))


class RateLimitConfig(_Strict):
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    max_concurrency: int | None = Field(None, ge=1)


class QueueConfig(_Strict):
    """Requests over a rate limit wait here (by priority, fair between tenants) up to `max_wait_seconds`."""

    max_waiters: int = Field(1000, ge=0)
    max_wait_seconds: float = Field(0.0, ge=0)


class OutagePolicyConfig(_Strict):
    """When Redis cannot be reached: budgets refuse (fail closed) or fall back to local counters; rate
    limits fall back to local counters at `local_fraction` of each limit (fail open) or refuse."""

    budgets: Literal["fail_closed", "fail_open"] = "fail_closed"
    rate_limits: Literal["fail_open", "fail_closed"] = "fail_open"
    local_fraction: float = Field(0.5, gt=0, le=1)
    retry_seconds: float = Field(2.0, gt=0)  # how often to try Redis again while it is away
    timeout_seconds: float = Field(1.0, gt=0)  # per Redis call (generous: a busy event loop delays reads too)


class LimitsConfig(_Strict):
    backend: Literal["auto", "memory", "redis"] = "auto"  # auto: redis when `redis.url` is set
    key_prefix: str = Field("sg", pattern=r"^[A-Za-z0-9_.-]+$")  # of every Redis key (several gateways per Redis)
    window_seconds: float = Field(60.0, gt=0)  # the sliding window of RPM and TPM (60 = per minute)
    global_: RateLimitConfig | None = Field(None, alias="global")
    queue: QueueConfig = QueueConfig()
    outage: OutagePolicyConfig = OutagePolicyConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
