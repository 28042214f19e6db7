"""Metrics of admission, settlement and the hot state. Labels are bounded: refusal kinds, configured
model names, backend names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_ERROR_BUCKETS = (-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, 0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class LimitMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refusals = Counter(
            "sluicegate_admission_refusals",
            "Requests refused at admission, by reason (requests, tokens, concurrency, budget, unavailable).",
            ("reason",),
            registry=registry,
        )
        self.queued = Counter(
            "sluicegate_admission_queued",
            "Requests that waited in the admission queue, by outcome (admitted, refused, full).",
            ("outcome",),
            registry=registry,
        )
        self.estimate_error = Histogram(
            "sluicegate_prompt_token_estimate_error_ratio",
            "(counted - reported) / reported prompt tokens, by logical model and method (exact, estimate).",
            ("model", "method"),
            buckets=_ERROR_BUCKETS,
            registry=registry,
        )
        self.switches = Counter(
            "sluicegate_hot_state_switches",
            "Switches of the hot-state backend: to 'local' when Redis became unreachable, to 'redis' on return.",
            ("to",),
            registry=registry,
        )
        self.degraded = Gauge(
            "sluicegate_hot_state_degraded",
            "1 while Redis is unreachable and the outage policy is in force.",
            registry=registry,
        )
        self.cutoffs = Counter(
            "sluicegate_stream_cutoffs",
            "Streams ended by the gateway because the next chunk would overrun the budget reservation.",
            ("model",),
            registry=registry,
        )
        self.downgrades = Counter(
            "sluicegate_budget_downgrades",
            "Requests moved to the configured cheaper model group by a budget's downgrade tier.",
            registry=registry,
        )
        self.alerts = Counter(
            "sluicegate_budget_alerts",
            "Budget threshold alerts sent, by outcome (sent, failed).",
            ("outcome",),
            registry=registry,
        )

        self._estimate_errors: dict[tuple[str, str], Histogram] = {}  # labelled children, looked up once

    def estimate_error_of(self, model: str, method: str) -> Histogram:
        """The error histogram's child for one model and method (prometheus_client's `labels` costs a few µs
        a call; this is a dict read)."""
        child = self._estimate_errors.get((model, method))
        if child is None:
            child = self._estimate_errors[(model, method)] = self.estimate_error.labels(model, method)
        return child

    def switched(self, to: str) -> None:
        self.switches.labels(to).inc()
        self.degraded.set(1 if to == "local" else 0)
