"""One Prometheus exposition from several gateway worker processes' expositions.

With `server.workers` > 1 each worker counts only what it served, and a scrape reaches whichever worker
the kernel hands the connection to; so the worker that is scraped asks the others for theirs and answers
with the merge: counters, histograms and summaries summed across workers (series by series), gauges kept
per worker under a `worker` label (an in-flight count is summed by the query, a shared balance read with
max, neither is guessable here). The counters of workers that have exited are kept in a retired
exposition, so a total never goes backwards when a worker is restarted.

Parsing and writing use prometheus_client's own parser and text writer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

WORKER_LABEL = "worker"
_SUMMED = frozenset({"counter", "histogram", "summary", "gaugehistogram"})

_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


class _Family:
    __slots__ = ("documentation", "name", "samples", "type")

    def __init__(self, name: str, documentation: str, kind: str) -> None:
        self.name = name
        self.documentation = documentation
        self.type = kind
        self.samples: dict[_SeriesKey, float] = {}


def merge(expositions: Iterable[tuple[str | None, bytes]]) -> bytes:
    """`expositions`: (worker label, text) pairs; a None label marks retired workers' text, of which only
    the summed kinds count. Returns the merged exposition (Prometheus text format)."""
    families: dict[str, _Family] = {}
    for worker, text in expositions:
        for parsed in text_string_to_metric_families(text.decode("utf-8", "replace")):
            if parsed.name.endswith("_created"):
                continue  # when each worker's series began: optional in the format, and no single value fits
            summed = parsed.type in _SUMMED
            if worker is None and not summed:
                continue  # a retired worker's gauges describe a process that is gone
            family = families.get(parsed.name)
            if family is None:
                family = families[parsed.name] = _Family(parsed.name, parsed.documentation, parsed.type)
            for sample in parsed.samples:
                labels = dict(sample.labels)
                if not summed:
                    labels[WORKER_LABEL] = worker or ""
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(labels.items())))
                family.samples[key] = family.samples.get(key, 0.0) + sample.value
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families))
    return generate_latest(registry)


def retired(expositions: Iterable[bytes]) -> bytes:
    """The summed kinds of `expositions` as one text: what a retired worker leaves for the totals."""
    return merge((None, text) for text in expositions)


class _Merged(Collector):
    def __init__(self, families: dict[str, _Family]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        for family in self._families.values():
            metric = Metric(family.name, family.documentation, family.type)
            metric.samples = [Sample(name, dict(labels), value) for (name, labels), value in family.samples.items()]
            yield metric
