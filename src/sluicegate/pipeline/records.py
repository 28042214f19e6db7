"""Decisions as typed records on the request context: how the request was routed, each upstream attempt,
a change of model group, a refusal. Response headers, the access log and the ledger are rendered from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

RouteStepKind = Literal["auto", "plan", "context_fallback", "fallback", "error_fallback", "hedge"]
ChoiceReason = Literal["economy", "budget_downgrade", "auto"]


@dataclass(frozen=True, slots=True)
class RouteStep:
    """One routing decision, in order: the plan, then any fallback or hedge taken while executing."""

    kind: RouteStepKind
    text: str  # how it reads in `x-sluice-route-reason` and the access log


@dataclass(frozen=True, slots=True)
class Attempt:
    """One upstream call and how it ended: "ok", an error class, or "cancelled"."""

    deployment: str
    outcome: str
    # for traces: the provider's model and name, and when the call began and ended (the router's clock)
    model: str = field(default="", compare=False)
    provider: str = field(default="", compare=False)
    started: float = field(default=0.0, compare=False)
    ended: float = field(default=0.0, compare=False)

    def __str__(self) -> str:
        return f"{self.deployment}:{self.outcome}"


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model group changed before routing: from what the client asked for (or an earlier choice)."""

    requested: str
    chosen: str
    reason: ChoiceReason


@dataclass(frozen=True, slots=True)
class Refusal:
    """Admission refused the request: which limit, in which scope, and when to come back."""

    kind: str  # budget | budget_reserved | requests | tokens | concurrency | unavailable
    scope: str | None
    retry_after: float | None


def route_reason(steps: list[RouteStep]) -> str:
    return "; ".join(step.text for step in steps)
