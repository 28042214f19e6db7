"""The circuit breaker of one deployment: a state machine on one injectable clock.

Closed -> open on a failure rate over the last calls (with a minimum number of calls), on consecutive
failures, or on a slow-call rate. Open for at least `min_open_s`, longer each time it re-opens soon after
closing (so it cannot oscillate). Then half-open: a few probes; all succeed -> closed, one fails -> open.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Literal

from sluicegate.routing.config import BreakerConfig

Clock = Callable[[], float]
Outcome = Literal["success", "failure", "ignored"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class _Window:
    """The last `calls` call results no older than `seconds`, with running totals (O(1) per call).

    Count-based so a burst of failures is judged on recent calls, not diluted by a busy healthy minute;
    time-bounded so a quiet deployment is not judged on stale results.
    """

    __slots__ = ("_entries", "_max_age", "_size", "calls", "fails", "slow")

    def __init__(self, calls: int, seconds: float) -> None:
        self._entries: deque[tuple[float, bool, bool]] = deque()
        self._size = calls
        self._max_age = seconds
        self.calls = self.fails = self.slow = 0

    def _drop_left(self) -> None:
        _, failed, slow = self._entries.popleft()
        self.calls -= 1
        self.fails -= failed
        self.slow -= slow

    def add(self, now: float, failed: bool, slow: bool) -> None:
        if len(self._entries) >= self._size:
            self._drop_left()
        self._entries.append((now, failed, slow))
        self.calls += 1
        self.fails += failed
        self.slow += slow
        self.expire(now)

    def expire(self, now: float) -> None:
        oldest = now - self._max_age
        while self._entries and self._entries[0][0] < oldest:
            self._drop_left()

    def clear(self) -> None:
        self._entries.clear()
        self.calls = self.fails = self.slow = 0


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_config",
        "_consecutive",
        "_forced",
        "_half_open_successes",
        "_last_closed",
        "_level",
        "_probes",
        "_slow_s",
        "_state",
        "_window",
        "admits_all",
        "on_transition",
        "open_until",
        "reason",
        "transitions",
    )

    def __init__(self, config: BreakerConfig, clock: Clock, slow_call_ms: float | None = None) -> None:
        self._config = config
        self._clock = clock
        slow_ms = config.slow_call_ms or slow_call_ms
        self._slow_s = slow_ms / 1000 if slow_ms else None
        self._window = _Window(config.window_calls, config.window_s)
        self._state = BreakerState.CLOSED
        self._forced: BreakerState | None = None
        self._consecutive = 0
        self._probes = 0
        self._half_open_successes = 0
        self._level = 0  # how many times in a row it re-opened soon after closing
        self._last_closed = float("-inf")
        self.open_until = 0.0
        self.reason = ""
        self.transitions: list[tuple[float, str]] = []  # (time, new state), the last 64
        self.on_transition: Callable[[CircuitBreaker, BreakerState], None] | None = None
        self.admits_all = True  # closed (or disabled, or forced closed): the router's fast path

    # -- reading -----------------------------------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        if self._forced is not None:
            return self._forced
        if self._state is BreakerState.OPEN and self._clock() >= self.open_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def forced(self) -> BreakerState | None:
        return self._forced

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when it already would)."""
        if self._forced is BreakerState.OPEN:
            return self._config.min_open_s
        return max(0.0, self.open_until - self._clock()) if self._state is BreakerState.OPEN else 0.0

    def would_allow(self) -> bool:
        """Whether `acquire` would let a call through now, without taking a probe slot."""
        if not self._config.enabled or self._forced is BreakerState.CLOSED:
            return True
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN:
            return self._probes < self._config.half_open_probes
        return False

    # -- calls -------------------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Asks to send one call. In half-open only `half_open_probes` calls may be in flight."""
        if not self._config.enabled or self._forced is BreakerState.CLOSED:
            return True
        if self._forced is BreakerState.OPEN:
            return False
        if self._state is BreakerState.OPEN:
            if self._clock() < self.open_until:
                return False
            self._move(BreakerState.HALF_OPEN, "open time over")
        if self._state is BreakerState.HALF_OPEN:
            if self._probes >= self._config.half_open_probes:
                return False
            self._probes += 1
        return True

    def record(self, outcome: Outcome, duration_s: float | None = None) -> None:
        """The result of a call `acquire` let through. `ignored` (throttling, a cancelled call) frees its slot."""
        if not self._config.enabled:  # still counted, for the recent error rate operators see; never opens
            if outcome != "ignored":
                self._window.add(self._clock(), outcome == "failure", False)
            return
        if self._state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if outcome == "failure":
                self._open("probe failed")
            elif outcome == "success":
                self._half_open_successes += 1
                if self._half_open_successes >= self._config.half_open_probes:
                    self._close()
            return
        if self._state is BreakerState.OPEN or outcome == "ignored":
            return
        now = self._clock()
        failed = outcome == "failure"
        slow = self._slow_s is not None and duration_s is not None and duration_s > self._slow_s
        self._window.add(now, failed, slow)
        self._consecutive = self._consecutive + 1 if failed else 0
        config = self._config
        if self._consecutive >= config.consecutive_failures:
            self._open(f"{self._consecutive} consecutive failures")
            return
        window = self._window
        calls, fails, slow_calls = window.calls, window.fails, window.slow
        if calls >= config.minimum_calls:
            if fails / calls >= config.failure_rate:
                self._open(f"failure rate {fails}/{calls} in {config.window_s:g}s")
            elif self._slow_s is not None and slow_calls / calls >= config.slow_call_rate:
                self._open(f"slow calls {slow_calls}/{calls} over {self._slow_s * 1000:g}ms")

    def recent(self) -> tuple[int, int, int]:
        """Calls, failures and slow calls in the breaker's window (its last `window_calls` within
        `window_s`): the recent error rate an operator sees."""
        window = self._window
        window.expire(self._clock())
        return window.calls, window.fails, window.slow

    # -- admin -------------------------------------------------------------------------------------

    def force(self, state: BreakerState | None) -> None:
        """Admin override: hold open or closed until cleared with None (then it starts closed, fresh)."""
        self._forced = state
        if state is None:
            self._state = BreakerState.CLOSED
            self._reset_counts()
        self._note(state or BreakerState.CLOSED)

    def adopt(self, state: BreakerState, open_until_in: float, reason: str) -> None:
        """Takes a state another gateway instance decided (shared state), without re-announcing it."""
        if state is BreakerState.OPEN and self._state is not BreakerState.OPEN:
            self._state = BreakerState.OPEN
            self.open_until = self._clock() + open_until_in
            self.reason = reason
            self._probes = 0
            self._half_open_successes = 0
            self._note(BreakerState.OPEN)
        elif state is BreakerState.CLOSED and self._state is not BreakerState.CLOSED:
            self._state = BreakerState.CLOSED
            self._reset_counts()
            self._note(BreakerState.CLOSED)

    # -- transitions -------------------------------------------------------------------------------

    def _open(self, reason: str) -> None:
        now = self._clock()
        config = self._config
        # Re-opening soon after closing means the deployment is not well yet: stay out longer each time.
        if self._state is BreakerState.HALF_OPEN or now - self._last_closed < config.max_open_s:
            self._level += 1
        else:
            self._level = 0
        open_for = min(config.max_open_s, config.min_open_s * config.backoff**self._level)
        self.open_until = now + open_for
        self._probes = 0
        self._half_open_successes = 0
        self._move(BreakerState.OPEN, reason)

    def _close(self) -> None:
        self._last_closed = self._clock()
        self._reset_counts()
        self._move(BreakerState.CLOSED, "probes succeeded")

    def _reset_counts(self) -> None:
        self._window.clear()
        self._consecutive = 0
        self._probes = 0
        self._half_open_successes = 0

    def _move(self, state: BreakerState, reason: str) -> None:
        if state is self._state:
            return
        self._state = state
        self.reason = reason
        if state is BreakerState.HALF_OPEN:
            self._half_open_successes = 0
            self._probes = 0
        self._note(state)
        if self.on_transition is not None:
            self.on_transition(self, state)

    def _note(self, state: BreakerState) -> None:
        self.admits_all = (
            not self._config.enabled
            or self._forced is BreakerState.CLOSED
            or (self._forced is None and self._state is BreakerState.CLOSED)
        )
        self.transitions.append((self._clock(), str(state)))
        if len(self.transitions) > 64:
            del self.transitions[:-64]

    def transitions_since(self, since: float) -> int:
        return sum(1 for at, _ in self.transitions if at >= since)
