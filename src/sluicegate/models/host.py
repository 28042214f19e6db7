"""The model host: callers' embedding requests merged into batches, each call with a deadline and the fail
policy its caller chose, served by one backend (local child processes, or a provider model group).

A feature asks for an `Embedder` when it is built (`host.embedder(...)`); the host starts its backend at
gateway start-up only if some feature did, so a configured host that no feature uses costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from sluicegate.models.config import LocalEmbeddings, ModelHostConfig
from sluicegate.models.local import BackendError

if TYPE_CHECKING:
    from sluicegate.models.provider import EmbeddingUpstream

log = logging.getLogger("sluicegate.models")

FailPolicy = Literal["open", "closed"]
Outcome = Literal["ok", "deadline", "error", "overloaded", "not_started"]
_OUTCOMES: tuple[Outcome, ...] = ("ok", "deadline", "error", "overloaded", "not_started")
Vectors = np.ndarray  # float32, one L2-normalised row per text
T = TypeVar("T")

_SECONDS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024)


class ModelUnavailable(Exception):
    """A fail-closed caller's call could not be answered in time (or at all). `outcome` says why."""

    def __init__(self, outcome: Outcome, detail: str = "") -> None:
        super().__init__(f"the model host could not answer ({outcome}{': ' + detail if detail else ''})")
        self.outcome = outcome


class Backend(Protocol):
    """Where batches are computed: `acquire` waits for a free worker, `run` computes on it and frees it."""

    slots: int
    dimensions: int | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def acquire(self) -> Any: ...

    def release(self, slot: Any) -> None: ...

    async def run(self, slot: Any, texts: list[str]) -> tuple[int, int, bytes]: ...


@dataclass(eq=False, slots=True)
class _Call:
    texts: list[str]
    future: asyncio.Future[Vectors]


class _Histogram:
    """A fixed-bucket histogram kept as plain counters (rendered by the collector at scrape time)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, documentation, labels=["task"])
        running, cumulative = 0, []
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            cumulative.append((repr(float(bound)), running))
        cumulative.append(("+Inf", running + self.counts[-1]))
        family.add_metric(["embed"], cumulative, self.total)
        return family


class Embedder(Generic[T]):
    """One feature's handle on the host: its deadline and its fail policy. Fail open returns `heuristic(texts)`
    (None without one) when the host cannot answer in time; fail closed raises `ModelUnavailable`."""

    def __init__(
        self,
        host: ModelHost,
        fail: FailPolicy,
        deadline: float,
        heuristic: Callable[[Sequence[str]], T] | None,
    ) -> None:
        self._host = host
        self.fail: FailPolicy = fail
        self.deadline = deadline
        self._heuristic = heuristic

    async def embed(self, texts: Sequence[str], *, deadline: float | None = None) -> Vectors | T | None:
        """L2-normalised float32 vectors, one row per text, or what the fail policy gives."""
        outcome, vectors, detail = await self._host.submit(texts, self.deadline if deadline is None else deadline)
        if vectors is not None:
            return vectors
        if self.fail == "closed":
            raise ModelUnavailable(outcome, detail)
        return self._heuristic(texts) if self._heuristic is not None else None


class ModelHost:
    def __init__(
        self,
        config: ModelHostConfig,
        backend: Backend,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.required = False
        self.started = False
        self._queue: deque[_Call] = deque()
        self._queued_texts = 0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self.outcomes: dict[Outcome, int] = dict.fromkeys(_OUTCOMES, 0)
        self.texts_embedded = 0
        self.call_seconds = _Histogram(_SECONDS_BUCKETS)
        self.batch_texts = _Histogram(_BATCH_BUCKETS)
        self.batch_seconds = _Histogram(_SECONDS_BUCKETS)
        if registry is not None:
            registry.register(_HostCollector(self))

    # -- what features call ---------------------------------------------------------------------------

    def embedder(
        self,
        *,
        fail: FailPolicy,
        deadline_ms: float | None = None,
        heuristic: Callable[[Sequence[str]], T] | None = None,
    ) -> Embedder[T]:
        """A handle for one feature; asking for one is what makes the host start with the gateway."""
        self.required = True
        deadline = (deadline_ms if deadline_ms is not None else self.config.deadline_ms) / 1000
        return Embedder(self, fail, deadline, heuristic)

    async def submit(self, texts: Sequence[str], deadline: float) -> tuple[Outcome, Vectors | None, str]:
        """(outcome, vectors or None, detail). Never raises for the host's own failures."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        if not self.started:
            return self._count("not_started"), None, "the model host is not running"
        limit = self.config.max_text_chars
        batch = [text[:limit] if len(text) > limit else text for text in texts]
        if not batch:
            return "ok", np.zeros((0, self.backend.dimensions or 0), dtype=np.float32), ""
        if self._queued_texts + len(batch) > self.config.max_queued_texts:
            return self._count("overloaded"), None, "too many texts queued"
        call = _Call(batch, loop.create_future())
        self._queue.append(call)
        self._queued_texts += len(batch)
        self._wake.set()
        try:
            async with asyncio.timeout(deadline):
                vectors = await call.future
        except TimeoutError:
            return self._count("deadline"), None, f"no answer within {deadline * 1000:g} ms"
        except BackendError as exc:
            return self._count("error"), None, str(exc)
        self.call_seconds.observe(loop.time() - began)
        return self._count("ok"), vectors, ""

    def _count(self, outcome: Outcome) -> Outcome:
        self.outcomes[outcome] += 1
        return outcome

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the backend and the dispatcher, if a feature asked for the host; otherwise does nothing."""
        if not self.required or self.started:
            return
        await self.backend.start()
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())
        self.started = True

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
            self._dispatcher = None
        for task in list(self._batches):
            task.cancel()
        await self.backend.stop()
        for call in self._drain():
            call.future.set_exception(BackendError("the model host stopped"))

    # -- batching -------------------------------------------------------------------------------------

    def _drain(self) -> Iterator[_Call]:
        while self._queue:
            call = self._queue.popleft()
            self._queued_texts -= len(call.texts)
            if not call.future.done():
                yield call

    def _take(self) -> list[_Call]:
        """The live calls at the head of the queue, up to `max_batch` texts (a larger call goes alone)."""
        taken: list[_Call] = []
        size = 0
        while self._queue:
            call = self._queue[0]
            if call.future.done():  # its caller gave up (deadline): never computed
                self._queue.popleft()
                self._queued_texts -= len(call.texts)
                continue
            if taken and size + len(call.texts) > self.config.max_batch:
                break
            self._queue.popleft()
            self._queued_texts -= len(call.texts)
            taken.append(call)
            size += len(call.texts)
        return taken

    async def _dispatch(self) -> None:
        window = self.config.batch_window_ms / 1000
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            slot = await self.backend.acquire()  # while every worker is busy, calls pile up: one batch later
            if window and self._queued_texts < self.config.max_batch:
                await asyncio.sleep(window)
            calls = self._take()
            if not calls:
                self.backend.release(slot)
                continue
            task = asyncio.get_running_loop().create_task(self._run(slot, calls))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _run(self, slot: Any, calls: list[_Call]) -> None:
        texts = [text for call in calls for text in call.texts]
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            rows, dims, body = await self.backend.run(slot, texts)
            vectors = np.frombuffer(body, dtype="<f4").reshape(rows, dims)
            if rows != len(texts):
                raise BackendError(f"{rows} vectors for {len(texts)} texts")
        except Exception as exc:  # whatever went wrong, the callers get their fail policy now, not at the deadline
            if not isinstance(exc, BackendError):
                log.error("model host batch failed: %s", type(exc).__name__)
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(BackendError(str(exc)))
            return
        self.batch_seconds.observe(loop.time() - began)
        self.batch_texts.observe(len(texts))
        self.texts_embedded += rows
        start = 0
        for call in calls:
            end = start + len(call.texts)
            if not call.future.done():
                call.future.set_result(vectors[start:end])
            start = end


class _HostCollector(Collector):
    """The host's calls, batches, workers and their memory, read at scrape time (nothing on the call path)."""

    def __init__(self, host: ModelHost) -> None:
        self._host = host

    def collect(self) -> Iterator[Any]:
        host = self._host
        calls = CounterMetricFamily(
            "sluicegate_model_host_calls",
            "Model host calls by outcome (not ok: the caller's fail policy applied)",
            labels=["task", "outcome"],
        )
        for outcome, count in host.outcomes.items():
            calls.add_metric(["embed", outcome], count)
        yield calls
        texts = CounterMetricFamily("sluicegate_model_host_texts", "Texts embedded by the model host", labels=["task"])
        texts.add_metric(["embed"], host.texts_embedded)
        yield texts
        yield host.call_seconds.family("sluicegate_model_host_call_seconds", "Model host call latency (answered calls)")
        yield host.batch_seconds.family("sluicegate_model_host_batch_seconds", "Time a backend took per batch")
        yield host.batch_texts.family("sluicegate_model_host_batch_texts", "Texts per batch (merged calls)")
        queued = GaugeMetricFamily("sluicegate_model_host_queued_texts", "Texts waiting for a worker")
        queued.add_metric([], host._queued_texts)
        yield queued
        backend = host.backend
        up = GaugeMetricFamily("sluicegate_model_host_workers_up", "Model host workers ready to compute")
        up.add_metric([], getattr(backend, "up", 0) if host.started else 0)
        yield up
        restarts = CounterMetricFamily("sluicegate_model_host_restarts", "Model host child processes restarted")
        restarts.add_metric([], getattr(backend, "restarts", 0))
        yield restarts
        rss = GaugeMetricFamily(
            "sluicegate_model_host_rss_bytes", "Resident memory of each model host child", labels=["worker"]
        )
        sizes: Callable[[], dict[int, int]] | None = getattr(backend, "rss_bytes", None)
        for worker, size in (sizes() if sizes is not None and host.started else {}).items():
            rss.add_metric([str(worker)], size)
        yield rss


def build_host(
    config: ModelHostConfig,
    *,
    registry: CollectorRegistry | None = None,
    upstream: EmbeddingUpstream | None = None,
) -> ModelHost:
    """The host with the configured backend (`upstream`: the gateway's own path, for the provider one)."""
    if isinstance(config.embeddings, LocalEmbeddings):
        from sluicegate.models.local import LocalBackend

        return ModelHost(config, LocalBackend(config), registry=registry)
    from sluicegate.models.provider import ProviderBackend

    if upstream is None:
        raise ValueError("the provider backend needs the gateway's upstream path")
    return ModelHost(config, ProviderBackend(config, upstream), registry=registry)
