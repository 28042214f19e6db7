"""What reached the simulator, per model: counts, in-flight requests, cancellations, the last body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ModelStats:
    requests: int = 0
    in_flight: int = 0
    streams_completed: int = 0
    streams_cancelled: int = 0
    requests_cancelled: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    last_request: Any = None

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def clear_counts(self) -> None:
        """Zero everything but `in_flight`: requests under way still end and decrement it."""
        self.requests = self.streams_completed = self.streams_cancelled = self.requests_cancelled = 0
        self.faults = {}
        self.last_request = None

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "streams_completed": self.streams_completed,
            "streams_cancelled": self.streams_cancelled,
            "requests_cancelled": self.requests_cancelled,
            "faults": dict(self.faults),
            "last_request": self.last_request,
        }


class SimulatorStats:
    def __init__(self) -> None:
        self._models: dict[str, ModelStats] = {}

    def for_model(self, model: str) -> ModelStats:
        stats = self._models.get(model)
        if stats is None:
            stats = self._models[model] = ModelStats()
        return stats

    def snapshot(self) -> dict[str, Any]:
        return {"models": {name: stats.as_json() for name, stats in self._models.items()}}

    def reset(self) -> None:
        """Zero every count; requests still in flight keep being tracked until they end."""
        for name, stats in list(self._models.items()):
            if stats.in_flight:
                stats.clear_counts()
            else:
                del self._models[name]
