"""Recent requests and tokens sent to one deployment, for headroom under its upstream RPM/TPM."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


class MinuteUsage:
    """Requests and tokens over the last 60 seconds in one-second buckets, with running totals.

    Reading is O(1) (routing reads every deployment of a group per request); expiring a bucket happens
    once per second that passes.
    """

    __slots__ = ("_clock", "_headroom", "_headroom_second", "_last", "_requests", "_tokens", "requests", "tokens")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._requests = [0] * 60
        self._tokens = [0] * 60
        self._last = int(clock())
        self.requests = 0
        self.tokens = 0
        self._headroom_second = -1  # headroom is cached within a second until the next `add`
        self._headroom = 1.0

    def _advance(self) -> int:
        second = int(self._clock())
        if second != self._last:
            for s in range(self._last + 1, min(second, self._last + 60) + 1):
                i = s % 60
                self.requests -= self._requests[i]
                self.tokens -= self._tokens[i]
                self._requests[i] = 0
                self._tokens[i] = 0
            self._last = second
        return second % 60

    def now(self) -> float:
        return self._clock()

    def add(self, requests: int = 0, tokens: int = 0) -> None:
        self._headroom_second = -1
        i = self._advance()
        self._requests[i] += requests
        self._tokens[i] += tokens
        self.requests += requests
        self.tokens += tokens

    def headroom(self, rpm: int | None, tpm: int | None) -> float:
        """The smallest share left under the deployment's limits, 0..1 (1 when it declares none)."""
        if rpm is None and tpm is None:
            return 1.0
        second = int(self._clock())
        if second == self._headroom_second:
            return self._headroom
        self._advance()
        share = 1.0
        if rpm:
            share = min(share, 1 - self.requests / rpm)
        if tpm:
            share = min(share, 1 - self.tokens / tpm)
        self._headroom_second = second
        self._headroom = max(0.0, share)
        return self._headroom
