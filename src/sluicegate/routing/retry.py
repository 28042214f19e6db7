"""Retry policy: full-jitter exponential backoff that honours Retry-After, and the gateway-wide retry budget."""

from __future__ import annotations

import random
from collections.abc import Callable

from sluicegate.routing.config import RetryConfig

Clock = Callable[[], float]


def backoff_delay(
    retry: int, config: RetryConfig, retry_after: float | None, rng: random.Random | None = None
) -> float | None:
    """Seconds to wait before retry number `retry` (1-based) on the same deployment; None: do not wait.

    Full jitter (a uniform draw up to the exponential cap) spreads retries so they do not arrive in waves.
    A `Retry-After` longer than `max_wait_s` is not waited out: the caller fails over or gives up.
    """
    cap = min(config.max_delay_ms, config.base_delay_ms * 2 ** (retry - 1)) / 1000
    jitter = (rng or random).uniform(0, cap)
    if retry_after is None:
        return jitter
    if retry_after > config.max_wait_s:
        return None
    return max(retry_after, jitter)


class RetryBudget:
    """Retries (and hedges) may be at most `ratio` of requests over a sliding window, plus a small floor.

    An outage then costs at most ~10% more upstream calls instead of multiplying traffic by the attempt cap.
    """

    __slots__ = ("_buckets", "_clock", "_min_per_s", "_ratio", "_size")

    def __init__(self, ratio: float, min_per_s: float, clock: Clock, window_s: int = 10) -> None:
        self._ratio = ratio
        self._min_per_s = min_per_s
        self._clock = clock
        self._size = window_s
        self._buckets: list[list[int]] = [[-1, 0, 0] for _ in range(window_s)]  # second, requests, retries

    def _bucket(self) -> list[int]:
        second = int(self._clock())
        bucket = self._buckets[second % self._size]
        if bucket[0] != second:
            bucket[0], bucket[1], bucket[2] = second, 0, 0
        return bucket

    def on_request(self) -> None:
        self._bucket()[1] += 1

    def try_spend(self) -> bool:
        """Takes one retry from the budget if there is room."""
        now_bucket = self._bucket()
        oldest = now_bucket[0] - self._size + 1
        requests = retries = 0
        for second, req, ret in self._buckets:
            if second >= oldest:
                requests += req
                retries += ret
        if retries + 1 > self._ratio * requests + self._min_per_s * self._size:
            return False
        now_bucket[2] += 1
        return True
