"""Prometheus metrics. Labels are bounded sets (configured model names, status codes): never keys or users."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

UNKNOWN_MODEL = "unknown"
_TOKEN_KINDS = ("input", "output", "cached_input", "reasoning")


class GatewayMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, models: Iterable[str]) -> None:
        self._models = frozenset(models)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sluicegate_requests",
            "Requests answered, by logical model, endpoint and HTTP status.",
            ("model", "endpoint", "status"),
            registry=self.registry,
        )
        self.errors = Counter(
            "sluicegate_errors",
            "Requests that failed, by logical model and outcome (an upstream error class or a client error).",
            ("model", "outcome"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "sluicegate_request_duration_seconds",
            "Time from request received to response complete, by logical model and HTTP status.",
            ("model", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "sluicegate_time_to_first_token_seconds",
            "Time from request received to the first streamed token, by logical model.",
            ("model",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "sluicegate_tokens",
            "Tokens reported by providers, by logical model and kind (input, output, cached_input, reasoning).",
            ("model", "kind"),
            registry=self.registry,
        )
        # Labelled children looked up once per label set: `labels()` is costly on the hot path.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

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
        self._child(self.requests, model, endpoint, code).inc()
        self._child(self.latency, model, code).observe(latency)
        if outcome != "ok":
            self._child(self.errors, model, outcome).inc()
        if ttft is not None:
            self._child(self.ttft, model).observe(ttft)
        if tokens is not None:
            for kind, count in zip(_TOKEN_KINDS, tokens, strict=True):
                if count:
                    self._child(self.tokens, model, kind).inc(count)

    def model_label(self, model: str) -> str:
        return model if model in self._models else UNKNOWN_MODEL

    def render(self) -> bytes:
        return generate_latest(self.registry)
