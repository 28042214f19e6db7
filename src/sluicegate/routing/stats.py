"""Latency statistics per deployment: EWMA and windowed percentiles of TTFT, total latency and tokens/s."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

_ALPHA = 0.2  # EWMA weight of the newest sample
_REFRESH_S = 0.5  # percentiles are re-sorted at most this often per series: routing reads them constantly
MIN_SAMPLES = 5  # below this a deployment is "unknown" and is explored rather than predicted


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    ewma: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class Series:
    """One measured quantity: an EWMA and the last `window` samples, with cached percentiles."""

    __slots__ = ("_clock", "_dirty", "_p50", "_p95", "_p99", "_refreshed", "_samples", "count", "ewma")

    def __init__(self, window: int, clock: Clock) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._clock = clock
        self._dirty = False
        self._refreshed = float("-inf")
        self._p50: float | None = None
        self._p95: float | None = None
        self._p99: float | None = None
        self.count = 0
        self.ewma: float | None = None

    def add(self, value: float) -> None:
        self._samples.append(value)
        self.count += 1
        self.ewma = value if self.ewma is None else self.ewma + _ALPHA * (value - self.ewma)
        self._dirty = True
        # Percentiles are re-sorted here, at most every _REFRESH_S (always while samples are few), so the
        # router reads plain attributes: routing decisions happen far more often than calls finish.
        if self.count <= 2 * MIN_SAMPLES or self._clock() - self._refreshed >= _REFRESH_S:
            self._refresh()

    def _refresh(self) -> None:
        if not self._dirty:
            return
        now = self._clock()
        ordered = sorted(self._samples)
        n = len(ordered)
        if n:
            self._p50 = ordered[min(n - 1, int(0.50 * n))]
            self._p95 = ordered[min(n - 1, int(0.95 * n))]
            self._p99 = ordered[min(n - 1, int(0.99 * n))]
        self._dirty = False
        self._refreshed = now

    def percentile(self, which: int) -> float | None:
        """As of the last refresh (at most _REFRESH_S behind the newest sample)."""
        if which == 99:
            return self._p99
        return self._p95 if which == 95 else self._p50

    @property
    def p99(self) -> float | None:
        return self._p99

    def summary(self) -> Summary:
        self._refresh()
        return Summary(self.count, self.ewma, self._p50, self._p95, self._p99)


@dataclass(frozen=True, slots=True)
class RemoteLatency:
    """Other gateway instances' recent figures for one deployment, count-weighted (seconds)."""

    count: int
    total_p95: float
    total_p99: float
    ttft_p95: float
    ttft_p99: float


def _blend(local_n: int, local: float | None, remote_n: int, remote: float) -> float | None:
    if local is None or local_n == 0:
        return remote if remote_n >= MIN_SAMPLES else None
    n = local_n + remote_n
    return (local_n * local + remote_n * remote) / n if n >= MIN_SAMPLES else None


class LatencyStats:
    """Seconds to first token, seconds in total, and output tokens per second, for one deployment.

    `remote` holds other instances' figures when latency statistics are shared (routing/shared_stats.py);
    predictions then blend them with this instance's, weighted by sample counts.
    """

    __slots__ = ("remote", "tokens_per_s", "total", "ttft")

    def __init__(self, window: int, clock: Clock) -> None:
        self.ttft = Series(window, clock)
        self.total = Series(window, clock)
        self.tokens_per_s = Series(window, clock)
        self.remote: RemoteLatency | None = None

    def observe(self, total_s: float, ttft_s: float | None = None, output_tokens: int = 0) -> None:
        self.total.add(total_s)
        self.ttft.add(ttft_s if ttft_s is not None else total_s)
        generating = total_s - (ttft_s or 0.0)
        if output_tokens > 0 and generating > 0:
            self.tokens_per_s.add(output_tokens / generating)

    @property
    def known(self) -> bool:
        remote = self.remote
        return self.total.count + (remote.count if remote is not None else 0) >= MIN_SAMPLES

    @property
    def recent(self) -> int:
        """Samples in the window (what this instance's percentiles are computed from)."""
        return len(self.total._samples)

    def predicted_p99(self, stream: bool = False) -> float | None:
        """The latency this deployment is expected to stay under 99% of the time (TTFT for streams)."""
        remote = self.remote
        if remote is None:
            if self.total.count < MIN_SAMPLES:
                return None
            return self.ttft._p99 if stream else self.total._p99
        if stream:
            return _blend(self.recent, self.ttft._p99, remote.count, remote.ttft_p99)
        return _blend(self.recent, self.total._p99, remote.count, remote.total_p99)

    def p95(self, stream: bool = False) -> float | None:
        remote = self.remote
        if remote is None:
            if self.total.count < MIN_SAMPLES:
                return None
            return (self.ttft if stream else self.total).percentile(95)
        if stream:
            return _blend(self.recent, self.ttft._p95, remote.count, remote.ttft_p95)
        return _blend(self.recent, self.total._p95, remote.count, remote.total_p95)

    def as_dict(self) -> dict[str, dict[str, float | int | None]]:
        out: dict[str, dict[str, float | int | None]] = {}
        for name, series, scale in (
            ("ttft_ms", self.ttft, 1000.0),
            ("total_ms", self.total, 1000.0),
            ("tokens_per_s", self.tokens_per_s, 1.0),
        ):
            s = series.summary()
            out[name] = {
                "count": s.count,
                "ewma": _scaled(s.ewma, scale),
                "p50": _scaled(s.p50, scale),
                "p95": _scaled(s.p95, scale),
                "p99": _scaled(s.p99, scale),
            }
        return out


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else round(value * scale, 3)
