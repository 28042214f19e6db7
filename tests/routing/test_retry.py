"""Backoff with full jitter that honours Retry-After; the retry budget; backpressure toward throttling."""

from __future__ import annotations

import random

from sluicegate.routing.aimd import ConcurrencyLimit
from sluicegate.routing.config import RetryConfig
from sluicegate.routing.retry import RetryBudget, backoff_delay
from tests.routing.helpers import FakeClock


def test_full_jitter_stays_under_the_exponential_cap() -> None:
    config = RetryConfig(base_delay_ms=100, max_delay_ms=1000)
    rng = random.Random(3)
    for retry, cap in ((1, 0.1), (2, 0.2), (3, 0.4), (5, 1.0), (9, 1.0)):
        delays = [backoff_delay(retry, config, None, rng) for _ in range(500)]
        assert all(d is not None and 0 <= d <= cap for d in delays)
        assert max(d for d in delays if d is not None) > cap * 0.8, "spread over the whole range"


def test_retry_after_is_honoured_up_to_max_wait() -> None:
    config = RetryConfig(max_wait_s=5)
    assert backoff_delay(1, config, 2.0) == 2.0
    assert backoff_delay(1, config, 7.0) is None, "a longer Retry-After is passed on, not waited out"


def test_retry_budget_caps_retries_at_a_share_of_requests() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_s=0, clock=clock)
    granted = 0
    for _ in range(1000):
        budget.on_request()
        granted += budget.try_spend()  # every request fails and wants a retry
    assert granted <= 100
    assert granted >= 95


def test_retry_budget_floor_lets_a_quiet_gateway_retry() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_per_s=1, clock=clock, window_s=10)
    budget.on_request()
    assert budget.try_spend()
    assert sum(budget.try_spend() for _ in range(50)) == 9  # the floor: 1/s over the 10 s window


def test_retry_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.0, min_per_s=0.5, clock=clock, window_s=10)
    assert sum(budget.try_spend() for _ in range(20)) == 5
    clock.advance(11)
    assert budget.try_spend()


def test_aimd_halves_on_throttle_and_climbs_back_slowly() -> None:
    clock = FakeClock()
    limit = ConcurrencyLimit(64, clock)
    limit.on_throttle()
    limit.on_throttle()  # the same burst: counted once
    assert limit.limit == 32
    clock.advance(1.5)
    limit.on_throttle()
    assert limit.limit == 16
    for _ in range(16):
        limit.on_success()
    assert 16.5 < limit.limit < 18, "about one more slot per round of calls"
    limit.in_flight = 17
    assert limit.saturated
