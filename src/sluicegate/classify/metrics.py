"""What the `auto` route decided, as Prometheus metrics with bounded labels (configured group and tier
names, the fixed task types, the classifier), counted in plain dictionaries and rendered when scraped."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from sluicegate.classify.drift import DriftWatch

_COMPLEXITY_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_SECONDS_BUCKETS = (0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


class _Histogram:
    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, count in zip((*(repr(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class AutoMetrics(Collector):
    def __init__(self) -> None:
        self.decisions: dict[tuple[str, str, str, str], int] = {}  # (group, tier, task, by)
        self.complexity: dict[str, _Histogram] = {}  # by classifier
        self.seconds: dict[str, _Histogram] = {}  # by classifier
        self.fallbacks: dict[str, int] = {}  # learned -> heuristic, by reason
        self.drift: DriftWatch | None = None  # the hour in progress and the baseline, when watched

    def decided(self, group: str, tier: str, task: str, by: str, complexity: float) -> None:
        key = (group, tier, task, by)
        self.decisions[key] = self.decisions.get(key, 0) + 1
        histogram = self.complexity.get(by)
        if histogram is None:
            histogram = self.complexity[by] = _Histogram(_COMPLEXITY_BUCKETS)
        histogram.observe(complexity)

    def timed(self, classifier: str, seconds: float) -> None:
        histogram = self.seconds.get(classifier)
        if histogram is None:
            histogram = self.seconds[classifier] = _Histogram(_SECONDS_BUCKETS)
        histogram.observe(seconds)

    def fell_back(self, reason: str) -> None:
        self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "sluicegate_auto_decisions",
            "Requests the auto route sent to each group",
            labels=["group", "tier", "task", "by"],
        )
        for labels, count in self.decisions.items():
            decisions.add_metric(list(labels), count)
        yield decisions
        complexity = HistogramMetricFamily(
            "sluicegate_classify_complexity", "Complexity of classified requests (0..1)", labels=["by"]
        )
        for by, histogram in self.complexity.items():
            complexity.add_metric([by], histogram.buckets(), histogram.total)
        yield complexity
        seconds = HistogramMetricFamily(
            "sluicegate_classify_seconds", "Time to classify a request, per classifier", labels=["classifier"]
        )
        for name, histogram in self.seconds.items():
            seconds.add_metric([name], histogram.buckets(), histogram.total)
        yield seconds
        fallbacks = CounterMetricFamily(
            "sluicegate_classify_fallbacks",
            "Learned classifications replaced by the heuristic's, by reason",
            labels=["reason"],
        )
        for reason, count in self.fallbacks.items():
            fallbacks.add_metric([reason], count)
        yield fallbacks
        drift = self.drift
        if drift is not None:
            hour = drift.current
            share = GaugeMetricFamily(
                "sluicegate_auto_hour_tier_share", "Share of this hour's auto requests per tier", labels=["tier"]
            )
            for tier in hour.tiers:
                share.add_metric([tier], hour.share(tier))
            yield share
            yield GaugeMetricFamily(
                "sluicegate_auto_hour_complexity_mean",
                "Mean complexity of this hour's auto requests",
                value=hour.complexity / hour.total if hour.total else 0.0,
            )
            baseline = drift.baseline()
            yield GaugeMetricFamily(
                "sluicegate_auto_top_tier_baseline",
                "The top tier's share over the trailing hours (the drift watch's baseline; -1 until known)",
                value=baseline if baseline is not None else -1.0,
            )
