"""Drift watch for the `auto` route: the tier mix and the complexity of each hour, and an event when the
share sent to the top tier moves more than `threshold` away from its trailing baseline (the hours before).

A classifier that quietly sends more and more to the expensive model is the usual way such a route fails
in production; this is what notices. Counting is a few dictionary updates per request, on the event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sluicegate.events import ClassificationDrift

CHECK_EVERY = 10  # requests between checks of the hour in progress


@dataclass(slots=True)
class Hour:
    hour: int  # hours since the epoch
    tiers: dict[str, int] = field(default_factory=dict)
    total: int = 0
    complexity: float = 0.0  # sum
    alerted: bool = False

    def share(self, tier: str) -> float:
        return self.tiers.get(tier, 0) / self.total if self.total else 0.0


class DriftWatch:
    def __init__(
        self,
        top_tier: str,
        publish: Callable[[ClassificationDrift], None],
        clock: Callable[[], float],
        *,
        threshold: float = 0.15,
        baseline_hours: int = 24,
        min_requests: int = 50,
    ) -> None:
        self.top_tier = top_tier
        self._publish = publish
        self._clock = clock
        self.threshold = threshold
        self.min_requests = min_requests
        self.history: deque[Hour] = deque(maxlen=baseline_hours)  # complete hours, oldest first
        self.current = Hour(int(clock() // 3600))

    def observe(self, tier: str, complexity: float) -> None:
        hour = int(self._clock() // 3600)
        current = self.current
        if hour != current.hour:
            self._check(current)  # the hour just ended, if it was not already reported
            if current.total:
                self.history.append(current)
            current = self.current = Hour(hour)
        current.tiers[tier] = current.tiers.get(tier, 0) + 1
        current.total += 1
        current.complexity += complexity
        if current.total % CHECK_EVERY == 0:
            self._check(current)

    def baseline(self) -> float | None:
        """The top tier's share over the trailing hours with enough requests (None: not enough history)."""
        hours = [h for h in self.history if h.total >= self.min_requests]
        if not hours:
            return None
        return sum(h.tiers.get(self.top_tier, 0) for h in hours) / sum(h.total for h in hours)

    def _check(self, hour: Hour) -> None:
        if hour.alerted or hour.total < self.min_requests:
            return
        baseline = self.baseline()
        if baseline is None:
            return
        share = hour.share(self.top_tier)
        if abs(share - baseline) > self.threshold:
            hour.alerted = True
            self._publish(
                ClassificationDrift(
                    f"auto: tier {self.top_tier}",
                    share,
                    baseline,
                    f"{hour.total} requests this hour against {len(self.history)} hours before",
                )
            )
