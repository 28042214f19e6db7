"""What a request needs is read from it: tools, images, the latency header, and the prompt when it matters."""

from __future__ import annotations

from sluicegate.canonical import ChatRequest
from sluicegate.routing.needs import count_prompt, needs_of
from sluicegate.routing.stats import LatencyStats
from sluicegate.tokens import count_chat_prompt
from tests.routing.helpers import FakeClock, chat, make_router


def test_tools_images_and_latency_header() -> None:
    request = ChatRequest(
        model="m",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:"}}]}],
        params={"tools": [{"type": "function", "function": {"name": "f"}}]},
        stream=True,
    )
    needs = needs_of(request, {"x-sluice-max-latency-ms": "1500"}, frozenset({"eu"}))
    assert needs.capabilities == frozenset({"tools", "vision"})
    assert needs.max_latency_s == 1.5 and needs.stream and needs.regions == frozenset({"eu"})
    assert needs_of(chat(), {"x-sluice-max-latency-ms": "soon"}, None).max_latency_s is None


def test_prompt_is_bounded_for_free_and_counted_only_near_a_window() -> None:
    request = chat("The quick brown fox jumps over the lazy dog. " * 20)
    needs = needs_of(request, {}, None)
    exact = count_chat_prompt(request.messages)  # type: ignore[arg-type]
    assert needs.prompt_bound >= exact, "the bound is never below the real count"
    router, catalog, _ = make_router(
        """
  - name: roomy
    deployments: [{provider: sim, model: a, context_window: 100000}]
  - name: tight
    deployments: [{provider: sim, model: b, context_window: 300}]
"""
    )
    roomy, tight = catalog.get("roomy"), catalog.get("tight")
    assert roomy is not None and tight is not None
    assert not router.needs_counting(roomy, needs)
    assert router.needs_counting(tight, needs)
    assert count_prompt(needs, request) == exact


def test_latency_stats_percentiles_and_unknown_until_enough_samples() -> None:
    clock = FakeClock()
    stats = LatencyStats(100, clock)
    for i in range(4):
        stats.observe(0.1 * (i + 1), ttft_s=0.05, output_tokens=10)
    assert stats.predicted_p99() is None, "four samples: still unknown"
    for i in range(95):
        stats.observe(0.1 if i < 86 else 2.0, ttft_s=0.05, output_tokens=10)
    clock.advance(1)  # percentiles are re-sorted at most every 0.5 s, as calls finish
    stats.observe(2.0, ttft_s=0.05, output_tokens=10)
    assert stats.predicted_p99() == 2.0
    assert stats.predicted_p99(stream=True) == 0.05
    summary = stats.as_dict()
    assert summary["total_ms"]["count"] == 100 and summary["total_ms"]["p50"] == 100.0
    assert summary["tokens_per_s"]["p50"] is not None
