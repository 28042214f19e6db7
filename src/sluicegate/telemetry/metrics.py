"""Prometheus metrics. Labels are bounded sets (configured model names, status codes): never keys or users.

The request metrics are counted in plain dictionaries on the event loop and turned into Prometheus
families when scraped, by a collector on the registry: prometheus_client's own counters and histograms
take a lock and check their state on every increment, which measured as about 6% of the gateway's
requests/s at saturation (a no-op `observe` against theirs, side by side). Exposition is still
prometheus_client's. Every increment and every scrape happens on the event loop's thread, so the
dictionaries need no lock.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BUCKET_LABELS = (*(floatToGoString(b) for b in _LATENCY_BUCKETS), "+Inf")  # type: ignore[no-untyped-call]

UNKNOWN_MODEL = "unknown"
OTHER = "other"  # the label of every value past the cap on distinct values
NO_TEAM = "none"
_TOKEN_KINDS = ("input", "output", "cached_input", "reasoning")


class _Histogram:
    """Counts per bucket (the last one above every bound) and the sum of what was observed."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(_LATENCY_BUCKETS, value)] += 1  # a value equal to a bound is in its bucket
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, running = [], 0
        for label, count in zip(_BUCKET_LABELS, self.counts, strict=True):
            running += count
            cumulative.append((label, float(running)))
        return cumulative


class GatewayMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, models: Iterable[str], max_label_values: int = 50) -> None:
        self._models = frozenset(models)
        self._max_label_values = max_label_values
        self._teams: set[str] = set()  # team labels given out so far (at most `max_label_values`)
        # (model, team) -> [micro-dollars, input tokens, output tokens]
        self._spend: dict[tuple[str, str], list[int]] = {}
        self.registry = CollectorRegistry()
        self._requests: dict[tuple[str, str, str], int] = {}  # (model, endpoint, status)
        self._errors: dict[tuple[str, str], int] = {}  # (model, outcome)
        self._latency: dict[tuple[str, str], _Histogram] = {}  # (model, status)
        self._ttft: dict[str, _Histogram] = {}  # model
        self._tokens: dict[tuple[str, str], int] = {}  # (model, kind)
        self.registry.register(_RequestCollector(self))

    def observe(
        self,
        model: str,
        endpoint: str,
        status: int,
        outcome: str,
        latency: float,
        ttft: float | None,
        tokens: tuple[int, int, int, int] | None,
    ) -> None:
        """One finished request. `tokens` is (input, output, cached_input, reasoning)."""
        model = self.model_label(model)
        code = str(status)
        requests = self._requests
        key = (model, endpoint, code)
        requests[key] = requests.get(key, 0) + 1
        histogram = self._latency.get((model, code))
        if histogram is None:
            histogram = self._latency[(model, code)] = _Histogram()
        histogram.observe(latency)
        if outcome != "ok":
            errors = self._errors
            errors[(model, outcome)] = errors.get((model, outcome), 0) + 1
        if ttft is not None:
            histogram = self._ttft.get(model)
            if histogram is None:
                histogram = self._ttft[model] = _Histogram()
            histogram.observe(ttft)
        if tokens is not None:
            counted = self._tokens
            for kind, count in zip(_TOKEN_KINDS, tokens, strict=True):
                if count:
                    counted[(model, kind)] = counted.get((model, kind), 0) + count

    def observe_spend(self, model: str, team: str | None, micros: int, input_tokens: int, output_tokens: int) -> None:
        """What a finished request cost, by logical model and team (never key or user: unbounded sets)."""
        if model not in self._models:
            model = UNKNOWN_MODEL
        key = (model, team if team in self._teams else self.team_label(team))
        held = self._spend.get(key)
        if held is None:
            held = self._spend[key] = [0, 0, 0]
        held[0] += micros
        held[1] += input_tokens
        held[2] += output_tokens

    def totals(self, model: str) -> tuple[int, int, list[int]]:
        """A logical model's requests, errors and latency bucket counts so far (for objectives)."""
        model = self.model_label(model)
        requests = sum(n for (m, _, _), n in self._requests.items() if m == model)
        errors = sum(n for (m, _), n in self._errors.items() if m == model)
        counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        for (m, _), histogram in self._latency.items():
            if m == model:
                counts = [a + b for a, b in zip(counts, histogram.counts, strict=True)]
        return requests, errors, counts

    @staticmethod
    def quantile(counts: list[int], q: float) -> float:
        """The upper bound of the bucket holding quantile `q` of `counts` (inf past the last bound)."""
        total = sum(counts)
        if not total:
            return 0.0
        running = 0
        for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), counts, strict=True):
            running += count
            if running >= q * total:
                return float(bound)
        return float("inf")

    def team_label(self, team: str | None) -> str:
        """The team itself while fewer than the cap have been seen, else `other`."""
        if team is None:
            return NO_TEAM
        teams = self._teams
        if team in teams:
            return team
        if len(teams) < self._max_label_values:
            teams.add(team)
            return team
        return OTHER

    def model_label(self, model: str) -> str:
        return model if model in self._models else UNKNOWN_MODEL

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "sluicegate_requests",
            "Requests answered, by logical model, endpoint and HTTP status.",
            labels=("model", "endpoint", "status"),
        )
        for request_labels, count in self._requests.items():
            requests.add_metric(request_labels, count)
        errors = CounterMetricFamily(
            "sluicegate_errors",
            "Requests that failed, by logical model and outcome (an upstream error class or a client error).",
            labels=("model", "outcome"),
        )
        for error_labels, count in self._errors.items():
            errors.add_metric(error_labels, count)
        latency = HistogramMetricFamily(
            "sluicegate_request_duration_seconds",
            "Time from request received to response complete, by logical model and HTTP status.",
            labels=("model", "status"),
        )
        for latency_labels, histogram in self._latency.items():
            latency.add_metric(latency_labels, histogram.buckets(), histogram.total)
        ttft = HistogramMetricFamily(
            "sluicegate_time_to_first_token_seconds",
            "Time from request received to the first streamed token, by logical model.",
            labels=("model",),
        )
        for model, histogram in self._ttft.items():
            ttft.add_metric((model,), histogram.buckets(), histogram.total)
        tokens = CounterMetricFamily(
            "sluicegate_tokens",
            "Tokens reported by providers, by logical model and kind (input, output, cached_input, reasoning).",
            labels=("model", "kind"),
        )
        for token_labels, count in self._tokens.items():
            tokens.add_metric(token_labels, count)
        spend = CounterMetricFamily(
            "sluicegate_spend_usd",
            "Spend in US dollars by logical model and team (teams past metrics.max_label_values: 'other').",
            labels=("model", "team"),
        )
        spend_tokens = CounterMetricFamily(
            "sluicegate_spend_tokens",
            "Tokens billed by logical model, team and kind (input, output).",
            labels=("model", "team", "kind"),
        )
        for (model, team), (micros, input_tokens, output_tokens) in self._spend.items():
            if micros:
                spend.add_metric((model, team), micros / 1_000_000)
            if input_tokens:
                spend_tokens.add_metric((model, team, "input"), input_tokens)
            if output_tokens:
                spend_tokens.add_metric((model, team, "output"), output_tokens)
        yield from (requests, errors, latency, ttft, tokens, spend, spend_tokens)
        try:
            alive = len(asyncio.all_tasks())
        except RuntimeError:  # rendered outside the event loop (a test): there are none to count
            return
        yield GaugeMetricFamily(
            "sluicegate_event_loop_tasks",
            "Tasks alive on the event loop when scraped (requests in flight and the gateway's own): a count that "
            "keeps growing at a steady load is a leak.",
            value=alive,
        )


class BudgetCollector:
    """Budget utilisation ((spent + reserved) / limit, as last settled on this instance) of the top-level
    scopes: the global budget and each tenant's (the first `max_label_values` tenants; no others)."""

    def __init__(self, used: Callable[[], Mapping[str, float]], max_label_values: int = 50) -> None:
        self._used = used
        self._max = max_label_values

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sluicegate_budget_utilisation_ratio",
            "Share of the current period's budget spent or reserved, for the global budget and each tenant's.",
            labels=("scope",),
        )
        given = 0
        for scope, fraction in sorted(self._used().items()):
            if scope == "global" or (scope.startswith("tenant:") and given < self._max):
                given += scope != "global"
                family.add_metric((scope,), fraction)
        yield family


class _RequestCollector:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()
