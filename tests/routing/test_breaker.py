"""The breaker state machine on a fake clock: when it opens, how long it stays open, how it comes back."""

from __future__ import annotations

from sluicegate.routing.breaker import BreakerState, CircuitBreaker
from sluicegate.routing.config import BreakerConfig


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(clock: FakeClock, **overrides: object) -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(**overrides), clock)  # type: ignore[arg-type]


def fail(b: CircuitBreaker, times: int, duration: float = 0.1) -> None:
    for _ in range(times):
        assert b.acquire()
        b.record("failure", duration)


def succeed(b: CircuitBreaker, times: int, duration: float = 0.1) -> None:
    for _ in range(times):
        assert b.acquire()
        b.record("success", duration)


def test_consecutive_failures_open_it() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=5)
    fail(b, 4)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN
    assert not b.acquire()
    assert "5 consecutive" in b.reason


def test_a_success_resets_the_consecutive_count() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=3, minimum_calls=100)
    for _ in range(10):
        fail(b, 2)
        succeed(b, 1)
    assert b.state is BreakerState.CLOSED


def test_failure_rate_needs_the_minimum_number_of_calls() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=100, minimum_calls=10, failure_rate=0.5)
    for _ in range(4):  # 4 of 8 failed, but below the minimum
        fail(b, 1)
        succeed(b, 1)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    succeed(b, 1)  # 5 of 10
    assert b.state is BreakerState.OPEN
    assert "failure rate" in b.reason


def test_old_failures_leave_the_sliding_window() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=100, minimum_calls=4, failure_rate=0.5, window_s=10)
    fail(b, 1)
    succeed(b, 1)
    clock.advance(11)
    succeed(b, 3)
    fail(b, 1)  # 1 of 4 in the window: the early failure is gone
    assert b.state is BreakerState.CLOSED


def test_slow_calls_open_it() -> None:
    clock = FakeClock()
    b = breaker(clock, slow_call_ms=500, slow_call_rate=0.8, minimum_calls=5, consecutive_failures=100)
    succeed(b, 4, duration=2.0)
    assert b.state is BreakerState.CLOSED
    succeed(b, 1, duration=2.0)
    assert b.state is BreakerState.OPEN
    assert "slow calls" in b.reason


def test_throttling_is_not_a_failure() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=3)
    for _ in range(20):
        assert b.acquire()
        b.record("ignored")
    assert b.state is BreakerState.CLOSED


def test_min_open_time_then_limited_probes_then_closed() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=2, min_open_s=30, half_open_probes=2)
    fail(b, 2)
    clock.advance(29.9)
    assert not b.acquire()
    assert b.retry_in() > 0
    clock.advance(0.2)
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire() and b.acquire()
    assert not b.acquire(), "only half_open_probes calls at a time"
    b.record("success", 0.1)
    assert b.state is BreakerState.HALF_OPEN
    b.record("success", 0.1)
    assert b.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_longer_each_time() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=1, min_open_s=30, backoff=2, max_open_s=100)
    fail(b, 1)
    opens = []
    for _ in range(4):
        clock.advance(b.open_until - clock.now)
        assert b.acquire()
        b.record("failure", 0.1)
        opens.append(b.open_until - clock.now)
    assert opens == [60, 100, 100, 100]  # doubled, then capped at max_open_s


def test_reopening_soon_after_closing_backs_off_so_it_cannot_oscillate() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=1, min_open_s=30, half_open_probes=1, backoff=2, max_open_s=300)
    fail(b, 1)
    first = b.open_until - clock.now
    clock.advance(first)
    succeed(b, 1)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)  # flaps straight back
    assert b.open_until - clock.now == 2 * first
    transitions_per_minute = b.transitions_since(clock.now - 60)
    assert transitions_per_minute <= 4


def test_a_long_healthy_period_resets_the_backoff() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=1, min_open_s=30, half_open_probes=1, max_open_s=300)
    fail(b, 1)
    clock.advance(30)
    succeed(b, 1)
    clock.advance(301)
    fail(b, 1)
    assert b.open_until - clock.now == 30


def test_admin_override_holds_open_or_closed() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=1)
    b.force(BreakerState.OPEN)
    assert b.state is BreakerState.OPEN and not b.acquire()
    b.force(BreakerState.CLOSED)
    fail(b, 5)
    assert b.state is BreakerState.CLOSED, "forced closed ignores failures"
    b.force(None)
    assert b.state is BreakerState.CLOSED and b.forced is None
    fail(b, 1)
    assert b.state is BreakerState.OPEN


def test_disabled_breaker_always_allows() -> None:
    clock = FakeClock()
    b = breaker(clock, enabled=False, consecutive_failures=1)
    fail(b, 10)
    assert b.acquire()


def test_a_busy_healthy_history_does_not_dilute_an_outage() -> None:
    clock = FakeClock()
    b = breaker(clock, consecutive_failures=100, window_calls=20, minimum_calls=10, failure_rate=0.5)
    succeed(b, 1000)  # a busy, healthy minute
    for _ in range(10):  # then every other call fails
        fail(b, 1)
        if b.state is BreakerState.OPEN:
            break
        succeed(b, 1)
    assert b.state is BreakerState.OPEN, "judged on the last 20 calls, not the last 1000"
