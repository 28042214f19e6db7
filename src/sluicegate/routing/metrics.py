"""Routing's Prometheus metrics, read at scrape time: breaker states, latency percentiles and load per deployment.

Labels are configured deployment names (a bounded set), never request data.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluicegate.routing.router import Router

_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class RoutingCollector(Collector):
    def __init__(self, router: Router) -> None:
        self._router = router

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "sluicegate_deployment_breaker_state",
            "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
            labels=["deployment"],
        )
        transitions = CounterMetricFamily(
            "sluicegate_deployment_breaker_transitions",
            "Breaker state changes per deployment (the last 64 are kept).",
            labels=["deployment"],
        )
        latency = GaugeMetricFamily(
            "sluicegate_deployment_latency_seconds",
            "Windowed latency percentiles per deployment: kind is ttft or total.",
            labels=["deployment", "kind", "quantile"],
        )
        in_flight = GaugeMetricFamily(
            "sluicegate_deployment_in_flight", "Upstream calls in flight per deployment.", labels=["deployment"]
        )
        limit = GaugeMetricFamily(
            "sluicegate_deployment_concurrency_limit",
            "The adaptive (AIMD) concurrency limit toward each deployment.",
            labels=["deployment"],
        )
        for name, health in self._router.health.items():
            state.add_metric([name], _STATE_VALUE[str(health.breaker.state)])
            transitions.add_metric([name], len(health.breaker.transitions))
            in_flight.add_metric([name], health.limit.in_flight)
            limit.add_metric([name], health.limit.limit)
            for kind, series in (("ttft", health.stats.ttft), ("total", health.stats.total)):
                summary = series.summary()
                for quantile, value in (("0.5", summary.p50), ("0.95", summary.p95), ("0.99", summary.p99)):
                    if value is not None:
                        latency.add_metric([name, kind, quantile], value)
        yield from (state, transitions, latency, in_flight, limit)
