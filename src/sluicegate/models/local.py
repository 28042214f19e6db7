"""The local backend: child processes that run the model, each pinned off the event loop's core, restarted
when they die. The host talks to them through pipes, all on the event loop (no threads in the gateway)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.util import find_spec
from typing import Any

from sluicegate.models.config import LocalEmbeddings, ModelHostConfig
from sluicegate.models.protocol import HEAD_BYTES, reply_lengths, request_frame

log = logging.getLogger("sluicegate.models")

_RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # a model that cannot load is retried, slower and slower
# The children's numerical and tokenizer libraries use one thread: the child is pinned, extra threads
# would only queue on its core. Nothing is ever fetched from a model hub.
_CHILD_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}


class BackendError(Exception):
    """The backend could not answer this batch (a child died with it, or the model refused it)."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the children run and which cores the event loop's thread keeps to (None: left as it is)."""

    child_cpus: tuple[int, ...]
    loop_cpus: tuple[int, ...] | None


def place(config: ModelHostConfig, allowed: set[int] | None, online: int) -> Placement:
    """The children's cores: the configured ones, else the last core the gateway may use when it may use
    more than one, else cores outside its set (a gateway pinned to one core), else none."""
    if allowed is None:  # no affinity on this OS
        return Placement((), None)
    if config.cpus:
        children = set(config.cpus)
    elif len(allowed) > 1:
        children = {max(allowed)}
    else:
        children = set(range(online)) - allowed
    loop: tuple[int, ...] | None = None
    if config.keep_event_loop_off_model_cores and children & allowed and allowed - children:
        loop = tuple(sorted(allowed - children))
    return Placement(tuple(sorted(children)), loop)


@dataclass(eq=False)
class _Child:
    index: int
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    busy: bool = False
    pending: dict[int, asyncio.Future[tuple[int, int, bytes]]] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None


class LocalBackend:
    """`embed` sends one batch to an idle child and awaits its vectors; at most `processes` batches run at once
    (the host's dispatcher keeps to that)."""

    def __init__(
        self,
        config: ModelHostConfig,
        *,
        python: str = sys.executable,
        on_restart: Callable[[], None] = lambda: None,
    ) -> None:
        assert isinstance(config.embeddings, LocalEmbeddings)
        self._config = config
        self._model = config.embeddings
        self._python = python
        self._on_restart = on_restart
        self.dimensions: int | None = config.embeddings.dimensions
        self.slots = config.processes
        self._children = [_Child(i) for i in range(config.processes)]
        self._idle = asyncio.Condition()
        self._ids = 0
        self._stopping = False
        self._supervisors: list[asyncio.Task[None]] = []
        self._original_affinity: set[int] | None = None
        self.placement = Placement((), None)
        self.restarts = 0

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if find_spec("wordllama") is None:
            raise RuntimeError(
                "model_host: the local backend needs its model package: pip install 'sluicegate[local-models]'"
            )
        allowed = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.placement = place(self._config, allowed, os.cpu_count() or 1)
        if self.placement.loop_cpus is not None and allowed is not None:
            self._original_affinity = allowed
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self.placement.loop_cpus)  # this thread: the event loop's
        self._supervisors = [asyncio.create_task(self._supervise(child)) for child in self._children]

    async def wait_ready(self, timeout: float) -> bool:
        """True once every child has loaded its model (used at start-up and by tests)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not all(child.ready for child in self._children):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        for task in self._supervisors:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._supervisors = []
        for child in self._children:
            await self._end(child, "the model host stopped")
        if self._original_affinity is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, self._original_affinity)
            self._original_affinity = None

    @property
    def pids(self) -> list[int | None]:
        return [child.process.pid if child.process is not None and child.ready else None for child in self._children]

    @property
    def up(self) -> int:
        return sum(1 for child in self._children if child.ready)

    def rss_bytes(self) -> dict[int, int]:
        """Resident memory of each running child, read from /proc (empty where there is none)."""
        sizes: dict[int, int] = {}
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        for child in self._children:
            if child.process is None or child.process.returncode is not None:
                continue
            try:
                with open(f"/proc/{child.process.pid}/statm") as handle:
                    sizes[child.index] = int(handle.read().split()[1]) * page
            except (OSError, IndexError, ValueError):
                continue
        return sizes

    # -- children -------------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        model = self._model
        command = [self._python, "-m", "sluicegate.models.worker", "--model", model.model]
        command += ["--dimensions", str(model.dimensions), "--nice", str(self._config.nice)]
        if model.model_dir:
            command += ["--model-dir", model.model_dir]
        if self.placement.child_cpus:
            command += ["--cpus", ",".join(str(c) for c in self.placement.child_cpus)]
        return command

    async def _supervise(self, child: _Child) -> None:
        """Starts the child, and starts it again whenever it dies, slower while it keeps dying at start."""
        failures = 0
        while not self._stopping:
            loaded = await self._run(child)
            if self._stopping:
                return
            self.restarts += 1
            self._on_restart()
            failures = 0 if loaded else failures + 1
            delay = _RESTART_DELAYS[min(failures, len(_RESTART_DELAYS) - 1)]
            log.error(
                "model host child %d exited (%s); restarting in %.1fs",
                child.index,
                child.process and child.process.returncode,
                delay,
            )
            await asyncio.sleep(delay)

    async def _run(self, child: _Child) -> bool:
        """One life of a child; True if it loaded its model before it ended."""
        environment = {**os.environ, **_CHILD_ENV}
        child.process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=environment,
            limit=1 << 26,
        )
        assert child.process.stdout is not None
        loaded = False
        try:
            first = await asyncio.wait_for(self._read(child), self._config.start_timeout_seconds)
            if first is None or not first[0].get("ready"):
                fatal = first[0].get("fatal") if first is not None else "exited before loading its model"
                log.error("model host child %d could not load its model: %s", child.index, fatal)
                return False
            loaded = True
            child.ready = True
            async with self._idle:
                self._idle.notify_all()
            while True:
                message = await self._read(child)
                if message is None:
                    return True
                head, body = message
                future = child.pending.pop(int(head.get("id", -1)), None)
                if future is None or future.done():
                    continue
                if "error" in head:
                    future.set_exception(BackendError(str(head["error"])))
                else:
                    future.set_result((int(head["rows"]), int(head["dims"]), body))
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            return loaded
        finally:
            await self._end(child, "the model host child exited")

    async def _read(self, child: _Child) -> tuple[dict[str, Any], bytes] | None:
        import orjson

        assert child.process is not None and child.process.stdout is not None
        stream = child.process.stdout
        try:
            prefix = await stream.readexactly(HEAD_BYTES)
        except asyncio.IncompleteReadError:
            return None
        head_length, body_length = reply_lengths(prefix)
        head = orjson.loads(await stream.readexactly(head_length))
        body = await stream.readexactly(body_length) if body_length else b""
        return head, body

    async def _end(self, child: _Child, reason: str) -> None:
        child.ready = False
        child.busy = False
        for future in child.pending.values():
            if not future.done():
                future.set_exception(BackendError(reason))
        child.pending.clear()
        process = child.process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()  # the child's loop ends on EOF
            try:
                await asyncio.wait_for(process.wait(), 1.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    # -- calls ----------------------------------------------------------------------------------------

    async def acquire(self) -> _Child:
        """An idle child that has loaded its model, marked busy: waits while every child is busy or starting."""
        async with self._idle:
            await self._idle.wait_for(lambda: any(c.ready and not c.busy for c in self._children))
            child = next(c for c in self._children if c.ready and not c.busy)
            child.busy = True
            return child

    def release(self, child: _Child) -> None:
        child.busy = False
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._idle:
            self._idle.notify_all()

    async def run(self, child: _Child, texts: list[str]) -> tuple[int, int, bytes]:
        """Rows, dimensions and the float32 vectors of `texts`, computed by `child` (released afterwards)."""
        try:
            process = child.process
            if process is None or process.stdin is None or not child.ready:
                raise BackendError("the model host child is restarting")
            self._ids += 1
            call_id = self._ids
            future: asyncio.Future[tuple[int, int, bytes]] = asyncio.get_running_loop().create_future()
            child.pending[call_id] = future
            try:
                process.stdin.write(request_frame(call_id, texts))
                await process.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                child.pending.pop(call_id, None)
                raise BackendError(f"the model host child is gone ({type(exc).__name__})") from None
            return await future
        finally:
            self.release(child)
