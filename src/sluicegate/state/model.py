"""What admission asks of the hot state and what it answers: plans, results and the backend interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

# "budget": spent + this request's minimum cost exceed a budget (only a new period helps);
# "budget_reserved": the budget could pay once requests in flight settle and release their reservations;
# "rebuilding": a budget's balance is being rebuilt from the ledger (after a start or a loss of the hot state).
RefusalKind = Literal["requests", "tokens", "concurrency", "budget", "budget_reserved", "unavailable", "rebuilding"]

PICO_PER_MICRO = 1_000_000  # prices per token are carried in pico-dollars so that they are integers


@dataclass(frozen=True, slots=True)
class RateScope:
    """A rate-limited entity (`key:abc`, `team:t1`, `global`); a limit of 0 means none."""

    name: str
    rpm: int = 0
    tpm: int = 0
    max_concurrency: int = 0


@dataclass(frozen=True, slots=True)
class BudgetScope:
    """A budget in one period. `usable_micros` is the limit less the emergency reserve, or the whole
    limit for a critical request."""

    name: str
    period_id: str
    limit_micros: int
    usable_micros: int
    expires_at: float | None = None  # when the period's counters may be dropped (None: never)


@dataclass(frozen=True, slots=True)
class AdmissionPlan:
    request_id: str
    tenant: str
    rates: tuple[RateScope, ...] = ()
    budgets: tuple[BudgetScope, ...] = ()
    input_tokens: int = 0
    input_micros: int = 0  # worst-case cost of the prompt
    output_pico_per_token: int = 0  # price of one output token, in pico-dollars
    max_output_tokens: int = 0  # the most the request may produce per choice (client's max_tokens or the model's)
    min_output_tokens: int = 1  # refuse rather than grant fewer than this
    choices: int = 1  # output multiplier: the upstream writes up to this many answers (`n`, `best_of`) of the grant
    # Upstream deployments with their own RPM/TPM (`dep:<name>`), best first: the first with room in its
    # windows is charged like a rate scope and becomes the request's deployment slot. When none has room,
    # the request is refused if `deployment_required` (no deployment without limits could serve it), else
    # admitted without a slot.
    deployments: tuple[RateScope, ...] = ()
    deployment_required: bool = False
    reservation_ttl: float = 900.0


@dataclass(frozen=True, slots=True)
class RateStatus:
    """One scope's window after the decision, for the `x-ratelimit-*` headers."""

    name: str
    rpm: int
    remaining_requests: int
    reset_requests: float  # seconds until one more request would fit
    tpm: int
    remaining_tokens: int
    reset_tokens: float


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    name: str
    limit_micros: int
    spent_micros: int
    reserved_micros: int

    @property
    def used_fraction(self) -> float:
        return (self.spent_micros + self.reserved_micros) / self.limit_micros if self.limit_micros else 0.0


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    output_tokens: int = 0  # granted output tokens per choice (the max_tokens the upstream gets)
    reserved_micros: int = 0  # reserved in every budget scope (the prompt and every choice's grant)
    charged_tokens: int = 0  # charged to every TPM window (the prompt and every choice's grant)
    refusal: RefusalKind | None = None
    refused_scope: str | None = None
    retry_after: float | None = None  # seconds; None when waiting cannot help
    rates: tuple[RateStatus, ...] = ()
    budgets: tuple[BudgetStatus, ...] = ()
    backend: str = "memory"
    deployment: RateScope | None = None  # the deployment slot taken (one of `AdmissionPlan.deployments`)


@dataclass(frozen=True, slots=True)
class Settlement:
    request_id: str
    tenant: str
    rates: tuple[RateScope, ...] = ()
    budgets: tuple[BudgetScope, ...] = ()
    actual_tokens: int = 0  # corrects each TPM window's charge
    actual_micros: int = 0  # committed to every budget
    alert_thresholds: tuple[float, ...] = ()
    deployment: str | None = None  # also counted in this deployment's upstream window
    deployment_tokens: int = 0
    backend: str = ""  # the backend that admitted the request (`Admission.backend`)


@dataclass(frozen=True, slots=True)
class Settled:
    budgets: tuple[BudgetStatus, ...] = ()
    alerts: tuple[tuple[str, float], ...] = ()  # (budget scope, threshold) first crossed by this settlement


@dataclass(frozen=True, slots=True)
class Headroom:
    """What is left under a deployment's upstream limits in the current window (None: no limit)."""

    requests: int | None
    tokens: int | None


@dataclass(slots=True)
class RoundTrips:
    """Counts the backend's calls to its store (one per admission and one per settlement with Redis)."""

    admissions: int = 0
    settlements: int = 0
    reads: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class HotState(Protocol):
    """Every admission and every settlement is one atomic operation on the backend."""

    name: str

    @property
    def round_trips(self) -> RoundTrips: ...

    async def admit(self, plan: AdmissionPlan) -> Admission: ...

    async def settle(self, settlement: Settlement) -> Settled: ...

    async def deployment_headroom(self, deployment: str, rpm: int | None, tpm: int | None) -> Headroom: ...

    async def budget_status(self, tenant: str, scope: BudgetScope) -> BudgetStatus: ...

    async def put_override(self, entity: str, value: str | None, until: float) -> None: ...

    async def all_overrides(self) -> dict[str, str]: ...

    async def close(self) -> None: ...


def output_micros(tokens: int, pico_per_token: int) -> int:
    """Cost of `tokens` output tokens in micro-dollars, rounded up."""
    return -((-tokens * pico_per_token) // PICO_PER_MICRO)
