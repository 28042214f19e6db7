"""`sluicegate serve --workers N`: N gateway processes on one port, under a supervising parent.

The parent loads and checks the configuration, holds the port (bound, never listening), then forks the
workers; each binds the same port with SO_REUSEPORT and the kernel spreads new connections across them.
Nothing else is shared in process: limits, budgets, revocations and routing health go through Redis (so
`workers` > 1 needs `redis.url`: with the in-process hot state each worker would grant every limit and
budget in full), each worker has its own ledger writer and its own spool folder (the spool takes the
first free `instance-N` folder, so a replacement adopts what a killed worker left).

The parent:
- replaces a worker that exits while the gateway runs (SIGKILL, a crash, or SIGTERM to that worker alone:
  the way to restart one worker gracefully), and gives up, stopping the rest, when workers keep dying
  within seconds of starting;
- on SIGHUP, restarts the workers one by one, each replacement serving before its predecessor is told to
  drain (a rolling restart: the port never goes unserved);
- on SIGTERM or SIGINT, tells every worker to drain and waits for them (their grace period, plus a margin),
  then exits 0.

A worker answers `/metrics` for all of them: it asks its peers over Unix sockets in a private folder and
merges (`telemetry/merge.py`). Why a hand-written supervisor rather than uvicorn's or gunicorn's: the
gateway starts its components itself before serving (one-line start-up errors, `run.py`), each worker
needs its index and the metrics folder, and a replacement must be serving before its predecessor drains;
the part is about 200 lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sluicegate.config.schema import GatewayConfig

log = logging.getLogger("sluicegate.server")

_READY_TIMEOUT = 300.0  # seconds a worker may take to start (migrations, budget rebuild from the ledger)
_QUICK_DEATH = 10.0  # a worker that dies this soon after starting counts towards giving up
_GIVE_UP_AFTER = 5  # quick deaths in a row
_PEER_TIMEOUT = 2.0  # seconds to wait for a peer's metrics
_PR_SET_PDEATHSIG = 1


def shared_state_problem(config: GatewayConfig) -> str | None:
    """Why `config` cannot run in several processes, or None."""
    limits = config.limits
    if limits.backend == "memory" or (limits.backend == "auto" and not config.redis.url):
        return (
            "server.workers > 1 needs redis.url (the hot state shared by the workers): with the in-process "
            "state each worker would grant every rate limit and budget in full"
        )
    return None


@dataclass(slots=True)
class WorkerLink:
    """What a worker is told by its parent."""

    index: int
    folder: Path  # the metrics sockets and the retired workers' counters
    ready_fd: int  # written once the worker serves

    @property
    def socket_path(self) -> Path:
        return self.folder / f"worker-{self.index}-{os.getpid()}.sock"

    def announce_ready(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, b"1")
            os.close(self.ready_fd)

    async def serve_metrics(self, render: Callable[[], bytes]) -> asyncio.AbstractServer:
        """Answers peers asking for this worker's exposition (one per connection, then closes)."""

        async def answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(f"{self.index}\n".encode() + render())
                await writer.drain()
            finally:
                writer.close()

        return await asyncio.start_unix_server(answer, path=str(self.socket_path))

    async def gather(self, own: bytes) -> bytes:
        """This worker's exposition merged with every live peer's and the retired workers' counters."""
        from sluicegate.telemetry.merge import merge

        own_path = self.socket_path
        peers = [path for path in self.folder.glob("worker-*.sock") if path != own_path]
        answers = await asyncio.gather(*(_ask(path) for path in peers))
        parts: list[tuple[str | None, bytes]] = [(str(self.index), own)]
        parts += [answer for answer in answers if answer is not None]
        with contextlib.suppress(OSError):
            parts.append((None, (self.folder / "retired.prom").read_bytes()))
        return merge(parts)

    def retire(self, own: bytes) -> None:
        """Adds this worker's counters to the retired totals (at a clean exit), so totals stay monotonic."""
        import fcntl

        from sluicegate.telemetry.merge import retired

        with contextlib.suppress(OSError):
            self.socket_path.unlink(missing_ok=True)
            with open(self.folder / "retired.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                path = self.folder / "retired.prom"
                previous = path.read_bytes() if path.exists() else b""
                temporary = path.with_suffix(".tmp")
                temporary.write_bytes(retired([previous, own]))
                temporary.replace(path)


async def _ask(path: Path) -> tuple[str | None, bytes] | None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), _PEER_TIMEOUT)
    except (OSError, TimeoutError):
        return None  # a worker gone or restarting: its socket file may outlive it
    try:
        data = await asyncio.wait_for(reader.read(), _PEER_TIMEOUT)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
    index, _, text = data.partition(b"\n")
    return (index.decode(), text) if text else None


@dataclass(slots=True)
class _Worker:
    index: int
    pid: int
    ready_fd: int  # the parent's end of the ready pipe (-1 once read)
    started: float
    ready: bool = False
    retiring: bool = False  # told to drain by the parent: its exit is not a death


@dataclass
class Supervisor:
    """The parent of `count` workers; `run_worker(link)` runs in each forked child and returns its exit
    status."""

    count: int
    run_worker: Callable[[WorkerLink], int]
    stop_grace: float  # how long a draining worker may take before it is killed
    workers: dict[int, _Worker] = field(default_factory=dict)  # by pid
    _stopping: bool = False
    _reloading: bool = False
    _quick_deaths: int = 0

    def run(self, announce: Callable[[], None]) -> int:
        folder = Path(tempfile.mkdtemp(prefix="sluicegate-workers-"))
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for index in range(self.count):
                self._spawn(index, folder)
            if not self._wait_ready(list(self.workers.values())):
                self._stop_all()
                return 0 if self._stopping else 1  # told to stop while starting is not a failure
            announce()
            return self._watch(folder)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(folder, ignore_errors=True)

    def _on_signal(self, sig: int, _frame: object) -> None:
        if sig == signal.SIGHUP:
            self._reloading = True
        else:
            self._stopping = True

    def _spawn(self, index: int, folder: Path) -> _Worker:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child
            status = 1
            try:
                os.close(read_fd)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                _die_with_parent()
                status = self.run_worker(WorkerLink(index, folder, write_fd))
            except BaseException as exc:  # never back into the parent's code
                print(f"sluicegate worker {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        os.close(write_fd)
        worker = _Worker(index, pid, read_fd, time.monotonic())
        self.workers[pid] = worker
        return worker

    def _wait_ready(self, waiting: list[_Worker]) -> bool:
        """Until every worker in `waiting` serves; False if one exits first, or on a stop."""
        deadline = time.monotonic() + _READY_TIMEOUT
        pending = {w.ready_fd: w for w in waiting}
        while pending:
            if self._stopping or time.monotonic() > deadline:
                return False
            try:
                readable, _, _ = select.select(list(pending), [], [], 0.2)
            except InterruptedError:
                continue
            for fd in readable:
                worker = pending.pop(fd)
                worker.ready = os.read(fd, 1) == b"1"
                os.close(fd)
                worker.ready_fd = -1
                if not worker.ready:
                    return False  # it exited (its end closed) before serving
        return True

    def _watch(self, folder: Path) -> int:
        while True:
            if self._stopping:
                self._stop_all()
                return 0
            if self._reloading:
                self._reloading = False
                self._rolling_restart(folder)
            for pid, status in _reap():
                worker = self.workers.pop(pid, None)
                if worker is None or worker.retiring or self._stopping:
                    continue
                quick = time.monotonic() - worker.started < _QUICK_DEATH
                self._quick_deaths = self._quick_deaths + 1 if quick else 0
                log.warning("worker %d (pid %d) exited (%s); starting another", worker.index, pid, _describe(status))
                if self._quick_deaths >= _GIVE_UP_AFTER:
                    log.error("workers keep exiting right after they start; stopping the gateway")
                    self._stop_all()
                    return 1
                replacement = self._spawn(worker.index, folder)
                self._wait_ready([replacement])
            time.sleep(0.1)

    def _rolling_restart(self, folder: Path) -> None:
        for old in [w for w in self.workers.values() if not w.retiring]:
            replacement = self._spawn(old.index, folder)
            if not self._wait_ready([replacement]):
                log.error("worker %d's replacement did not start; keeping the running one", old.index)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replacement.pid, signal.SIGKILL)
                replacement.retiring = True
                return
            old.retiring = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(old.pid, signal.SIGTERM)  # drains: new connections already reach the replacement
        log.info("workers restarted")

    def _stop_all(self) -> None:
        for worker in self.workers.values():
            worker.retiring = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace + 10.0
        while self.workers and time.monotonic() < deadline:
            for pid, _status in _reap():
                self.workers.pop(pid, None)
            time.sleep(0.05)
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.workers.clear()


def _reap() -> list[tuple[int, int]]:
    exited: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exited
        if pid == 0:
            return exited
        exited.append((pid, status))


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"status {os.WEXITSTATUS(status)}"


def _die_with_parent() -> None:
    """A worker whose parent is gone drains and exits (SIGTERM) rather than serving on unsupervised."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def hold_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Binds (without listening) the address the workers will share, so a taken port is one clear error
    before any worker starts, and port 0 becomes one port for all; returns the socket and the port."""
    from sluicegate.server.run import StartupError

    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"cannot listen on {host}:{port}: {reason.lower()}") from None
    # a bound socket that never listens is given no connections; SO_REUSEPORT lets the workers bind beside it
    taken = sock.getsockname()[1]
    # another program can take the port between this check and the workers' bind only if it too sets
    # SO_REUSEPORT as the same user
    return sock, int(taken)
