"""The drift watch: an event when the share of requests sent to the top tier moves away from its baseline,
and the hour's tier mix and complexity as metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from sluicegate.classify.drift import DriftWatch
from sluicegate.classify.metrics import AutoMetrics
from sluicegate.clock import ManualClock
from sluicegate.events import ClassificationDrift, EventBus

HOUR = 3600.0


def _hour(watch: DriftWatch, clock: ManualClock, flagship: int, total: int) -> None:
    for i in range(total):
        watch.observe("flagship" if i < flagship else "economy", 0.9 if i < flagship else 0.1)
    clock.advance(HOUR)


def test_a_jump_of_the_top_tier_share_is_announced_once_per_hour() -> None:
    clock = ManualClock(1_767_225_600.0)
    events = EventBus()
    heard: list[ClassificationDrift] = []
    events.subscribe(ClassificationDrift, heard.append)
    watch = DriftWatch("flagship", events.publish, clock.now, threshold=0.15, min_requests=50)
    for _ in range(3):
        _hour(watch, clock, flagship=10, total=100)  # a steady 10%
    assert heard == [] and watch.baseline() == 0.1
    _hour(watch, clock, flagship=12, total=100)  # 12%: within the threshold
    assert heard == []
    for i in range(150):  # this hour sends two requests in three to the flagship
        watch.observe("flagship" if i % 3 else "economy", 0.8)
    assert len(heard) == 1, heard  # announced as soon as it shows, not again within the hour
    event = heard[0]
    assert event.what == "auto: tier flagship" and event.current > 0.6 and 0.1 <= event.baseline < 0.11


def test_quiet_hours_are_neither_judged_nor_part_of_the_baseline() -> None:
    clock = ManualClock(1_767_225_600.0)
    heard: list[ClassificationDrift] = []
    watch = DriftWatch("flagship", heard.append, clock.now, min_requests=50)
    _hour(watch, clock, flagship=9, total=10)  # 90% of 10 requests: too few to judge
    assert watch.baseline() is None
    _hour(watch, clock, flagship=5, total=100)
    _hour(watch, clock, flagship=9, total=10)
    assert heard == [] and watch.baseline() == 0.05


def test_the_hours_mix_is_a_metric() -> None:
    clock = ManualClock(1_767_225_600.0)
    watch = DriftWatch("flagship", lambda event: None, clock.now)
    metrics = AutoMetrics()
    metrics.drift = watch
    for tier, complexity in (("economy", 0.1), ("economy", 0.2), ("flagship", 0.9), ("balanced", 0.4)):
        watch.observe(tier, complexity)
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    assert 'sluicegate_auto_hour_tier_share{tier="economy"} 0.5' in text
    assert "sluicegate_auto_hour_complexity_mean 0.4" in text
    assert "sluicegate_auto_top_tier_baseline -1.0" in text
