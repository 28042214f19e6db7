"""The response cache's metrics, kept as plain counters on the request path and rendered when scraped."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# what a lookup can come to: a hit of either kind, a plain miss, a semantic candidate refused because it
# disagrees on a number, a name, a negation... (near-miss, also a miss for the client), or not looked up
RESULTS = ("hit-exact", "hit-semantic", "miss", "near-miss", "skip")


class CacheCounters:
    __slots__ = ("lookups", "saved_micros", "stored")

    def __init__(self) -> None:
        self.lookups: defaultdict[tuple[str, str], int] = defaultdict(int)  # (group, result) -> count
        self.saved_micros: defaultdict[str, int] = defaultdict(int)  # group -> provider cost hits avoided
        self.stored: defaultdict[str, int] = defaultdict(int)  # group -> answers kept


class CacheCollector(Collector):
    def __init__(self, counters: CacheCounters, sizes: Callable[[], tuple[int | None, int | None, int | None]]) -> None:
        self._counters = counters
        self._sizes = sizes  # (entries, bytes, vectors) of this instance's stores; None when not known here

    def collect(self) -> Iterator[Metric]:
        counters = self._counters
        lookups = CounterMetricFamily(
            "sluicegate_response_cache_lookups",
            "Response cache lookups by model group and result",
            labels=["group", "result"],
        )
        for (group, result), count in sorted(counters.lookups.items()):
            lookups.add_metric([group, result], count)
        yield lookups
        saved = CounterMetricFamily(
            "sluicegate_response_cache_saved_usd", "Provider cost the response cache's hits avoided", labels=["group"]
        )
        for group, micros in sorted(counters.saved_micros.items()):
            saved.add_metric([group], micros / 1_000_000)
        yield saved
        stored = CounterMetricFamily(
            "sluicegate_response_cache_stored", "Answers put in the response cache", labels=["group"]
        )
        for group, count in sorted(counters.stored.items()):
            stored.add_metric([group], count)
        yield stored
        entries, size, vectors = self._sizes()
        for name, value, text in (
            ("entries", entries, "Answers in this instance's memory store"),
            ("bytes", size, "Bytes held by this instance's memory store"),
            ("vectors", vectors, "Questions in this instance's semantic index"),
        ):
            if value is not None:
                yield GaugeMetricFamily(f"sluicegate_response_cache_{name}", text, value=value)
