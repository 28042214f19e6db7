"""The gateway's request metrics expose exactly what prometheus_client's own counters and histograms would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sluicegate.telemetry.metrics import _LATENCY_BUCKETS, GatewayMetrics

OBSERVED = [  # model, endpoint, status, outcome, latency, ttft, tokens
    ("gpt-4o-mini", "chat", 200, "ok", 0.005, 0.001, (31, 10, 0, 0)),  # on a bucket's bound: in that bucket
    ("gpt-4o-mini", "chat", 200, "ok", 0.3, None, (31, 12, 8, 3)),
    ("gpt-4o-mini", "chat", 502, "server_error", 400.0, None, None),  # above every bound: +Inf only
    ("no-such-model", "chat", 404, "client_error", 0.0004, None, None),
    ("gpt-4o-mini", "embeddings", 200, "ok", 0.02, None, (5, 0, 0, 0)),
]


def reference() -> bytes:
    """The same observations through prometheus_client's own metric classes (what metrics.py used to do)."""
    registry = CollectorRegistry()
    requests = Counter("sluicegate_requests", "r", ("model", "endpoint", "status"), registry=registry)
    errors = Counter("sluicegate_errors", "e", ("model", "outcome"), registry=registry)
    latency = Histogram(
        "sluicegate_request_duration_seconds", "l", ("model", "status"), buckets=_LATENCY_BUCKETS, registry=registry
    )
    ttft = Histogram(
        "sluicegate_time_to_first_token_seconds", "t", ("model",), buckets=_LATENCY_BUCKETS, registry=registry
    )
    tokens = Counter("sluicegate_tokens", "k", ("model", "kind"), registry=registry)
    for model, endpoint, status, outcome, seconds, first, counts in OBSERVED:
        model = model if model == "gpt-4o-mini" else "unknown"
        requests.labels(model, endpoint, str(status)).inc()
        latency.labels(model, str(status)).observe(seconds)
        if outcome != "ok":
            errors.labels(model, outcome).inc()
        if first is not None:
            ttft.labels(model).observe(first)
        for kind, count in zip(("input", "output", "cached_input", "reasoning"), counts or (), strict=False):
            if count:
                tokens.labels(model, kind).inc(count)
    return generate_latest(registry)


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_the_exposition_equals_prometheus_clients_own() -> None:
    metrics = GatewayMetrics(["gpt-4o-mini"])
    for observation in OBSERVED:
        metrics.observe(*observation)
    ours = samples(metrics.render())
    assert ours == samples(reference())
    assert ours[("sluicegate_requests_total", (("endpoint", "chat"), ("model", "unknown"), ("status", "404")))] == 1
    bucket = (
        "sluicegate_request_duration_seconds_bucket",
        (("le", "0.005"), ("model", "gpt-4o-mini"), ("status", "200")),
    )
    assert ours[bucket] == 1
