"""The `classify:` section and the tier and capability settings of a model group, strictly typed.

Kept free of other Sluicegate imports so `config/schema.py` can embed these models without a cycle.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# What a prompt asks for. Tools, vision and a long context are read from the request itself and are needs
# (`Classification.needs`), not task types: a request with tools still has a task.
TaskType = Literal[
    "chat",
    "factual_qa",
    "summarise",
    "extract",
    "classify",
    "translate",
    "rewrite",
    "code",
    "math",
    "reasoning",
    "creative",
    "analysis",
]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
DEFAULT_TIERS: tuple[str, ...] = ("economy", "balanced", "flagship")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServesConfig(_Strict):
    """What a model group serves well: task types (all when absent) and a range of complexity (0..1)."""

    tasks: list[TaskType] | None = None
    complexity: tuple[float, float] = (0.0, 1.0)

    @field_validator("complexity")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low <= high <= 1:
            raise ValueError("complexity is a range [low, high] with 0 <= low <= high <= 1")
        return value


class DriftConfig(_Strict):
    """An event (for the alert sink) when the top tier's share of an hour moves this far from the trailing
    hours' share."""

    enabled: bool = True
    threshold: float = Field(0.15, gt=0, le=1)  # absolute difference of shares (0.15: 15 points)
    baseline_hours: int = Field(24, ge=1, le=24 * 14)
    min_requests: int = Field(50, ge=1)  # an hour with fewer is neither judged nor part of the baseline


class ShadowConfig(_Strict):
    """A candidate classifier (and, optionally, a candidate pool) decided beside the live one on a share of
    the `auto` traffic: recorded, never acted on (GET /admin/routing/shadow)."""

    share: float = Field(0.0, ge=0, le=1)  # 0: off
    classifier: Literal["heuristic", "learned"] = "learned"
    min_confidence: float = Field(0.8, ge=0, le=1)
    pool: list[str] | None = None  # the candidate policy's pool (default: the live group's)
    max_in_flight: int = Field(64, ge=1, le=10_000)  # shadow decisions waiting for the model host; beyond: skipped


class ClassifyConfig(_Strict):
    """How requests are classified for the `auto` route, and the tiers, cheapest first."""

    tiers: list[str] = Field(default_factory=lambda: list(DEFAULT_TIERS), min_length=1)
    classifier: Literal["heuristic", "learned"] = "heuristic"
    # the learned classifier's answer is used only at or above this confidence (else the heuristic's)
    min_confidence: float = Field(0.8, ge=0, le=1)
    deadline_ms: float = Field(10.0, gt=0, le=1000)  # the learned classifier's wait for the model host
    drift: DriftConfig = DriftConfig()
    shadow: ShadowConfig = ShadowConfig()

    @model_validator(mode="after")
    def _distinct(self) -> ClassifyConfig:
        if len(set(self.tiers)) != len(self.tiers):
            raise ValueError("tiers must be distinct")
        for tier in self.tiers:
            if not tier or not tier.replace("_", "").replace("-", "").isalnum() or len(tier) > 32:
                raise ValueError(f"tier name '{tier}': letters, digits, '-' and '_', at most 32")
        return self
