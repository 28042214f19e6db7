"""Runs the gateway (and, for the demo, the simulator beside it) under uvicorn with uvloop and httptools
(its protocol, with whole responses coalesced into one write: `protocol.py`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import resource
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Literal

import uvicorn

from sluicegate.config.schema import GatewayConfig
from sluicegate.errors import scrub
from sluicegate.server.app import GatewayApp
from sluicegate.server.connections import ConnectionGuard
from sluicegate.server.gateway import Gateway
from sluicegate.server.protocol import CoalescingHttpToolsProtocol, GatewayHttpProtocol
from sluicegate.server.workers import WorkerLink

log = logging.getLogger("sluicegate.server")


class StartupError(Exception):
    """The gateway could not start; the message is one line for the operator (no traceback)."""


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    graceful_seconds: float = 30.0,
    lifespan: Literal["on", "off"] = "on",
    *,
    connections: ConnectionGuard | None = None,
) -> uvicorn.Config:
    """uvicorn's settings; with `connections`, client connections are held to its caps and deadlines."""
    http: Any = CoalescingHttpToolsProtocol
    if connections is not None:
        http = functools.partial(GatewayHttpProtocol, guard=connections)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http,
        ws="none",  # nothing here speaks WebSocket; an upgrade request is served as plain HTTP
        lifespan=lifespan,
        access_log=False,  # the gateway writes its own access log
        log_level="warning",
        timeout_keep_alive=connections.limits.keep_alive if connections is not None else 65,
        timeout_graceful_shutdown=max(1, round(graceful_seconds)),
        server_header=False,
        proxy_headers=False,  # the gateway reads no client address; skipping the middleware saves a hop
        date_header=False,
    )


class _Server(uvicorn.Server):
    """uvicorn's server, but a graceful stop on SIGTERM or SIGINT exits with status 0, and `on_stop` is
    called (once) when the stop begins.

    (uvicorn re-raises the signal after draining, so the process would report death by signal.)
    """

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None] | None = None) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        if first and self._on_stop is not None:
            self._on_stop()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _Companion(uvicorn.Server):
    """A server that leaves signals to the main one; it stops when told to."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket, bound before anything else starts, so a taken port is one clear error at once
    (uvicorn would log it and leave the components it had already started running). `reuse_port`: one of
    several workers' sockets on the same port (`workers.py`)."""
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        return socket.create_server(address, family=family, reuse_port=reuse_port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise StartupError(f"cannot listen on {host}:{port}: {reason.lower()}") from None


def bound_port(server: uvicorn.Server) -> int:
    sock: socket.socket = server.servers[0].sockets[0]
    return int(sock.getsockname()[1])


def raise_file_limit() -> int:
    """Raises the soft open-file limit to the hard one (each client connection is a file); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit above %d: %s", soft, exc)
    return int(soft)


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    while not server.started:
        if task.done():
            task.result()  # surfaces the start-up error
            raise RuntimeError("server stopped during start-up")
        await asyncio.sleep(0.01)


async def serve_gateway(
    config: GatewayConfig,
    host: str,
    port: int,
    *,
    master_key: str | None = None,
    on_started: Callable[[int], None] | None = None,
    worker: WorkerLink | None = None,
) -> None:
    """Binds the port, starts the gateway's components, then serves until told to stop; any failure before
    serving raises `StartupError` after stopping whatever had started. `worker`: this process is one of
    several on the port (`workers.py`)."""
    gateway = Gateway(config, master_key=master_key)
    sock = listen(host, port, reuse_port=worker is not None)
    try:
        await gateway.start()
    except Exception as exc:
        sock.close()
        await _stop_quietly(gateway)
        raise StartupError(f"start-up failed: {scrub(str(exc)) or type(exc).__name__}") from None
    # the components are started here, not by the ASGI lifespan, so their failure is ours to report
    gateway.connections.fit_file_limit(raise_file_limit())
    app = GatewayApp(gateway)
    peers: asyncio.AbstractServer | None = None
    if worker is not None:
        peers = await worker.serve_metrics(gateway.metrics.render)
        app.gather_metrics = worker.gather
    uvicorn_settings = uvicorn_config(
        app,
        host,
        port,
        config.server.graceful_shutdown_seconds,
        lifespan="off",
        connections=gateway.connections,
    )
    loop = asyncio.get_running_loop()
    grace = float(uvicorn_settings.timeout_graceful_shutdown or 0)
    # Open streams end a little before uvicorn's grace period does (it would cancel them without a word):
    # each gets an error event, its row and its settlement, in the margin left.
    end_streams_after = max(0.0, grace - min(1.0, grace / 4))

    def on_stop() -> None:  # in the signal handler: only schedules
        loop.call_soon_threadsafe(loop.call_later, end_streams_after, gateway.end_open_streams)

    server = _Server(uvicorn_settings, on_stop)
    task = loop.create_task(server.serve(sockets=[sock]))
    try:
        await _wait_started(server, task)
        # Everything built at start-up lives as long as the process: keep it out of the collector's way, so
        # full collections stay short instead of stalling every in-flight request (p99 at concurrency).
        gc.collect()
        gc.freeze()
        if on_started is not None:
            on_started(bound_port(server))
        if worker is not None:
            worker.announce_ready()
        await task
    finally:
        if worker is not None and peers is not None:
            peers.close()
            worker.retire(gateway.metrics.render())
        await _stop_quietly(gateway)


async def _stop_quietly(gateway: Gateway, timeout: float = 10.0) -> None:
    try:
        await asyncio.wait_for(gateway.stop(), timeout)
    except Exception as exc:  # stopping is best effort; the process is on its way out
        logging.getLogger("sluicegate.server").warning("stopping the gateway: %s", scrub(str(exc)))


async def serve_with_companion(
    companion_app: Any,
    companion_host: str,
    companion_port: int,
    main: Callable[[int], Any],
) -> None:
    """Starts `companion_app` (the simulator), then runs `main(companion_port)` until it returns."""
    sock = listen(companion_host, companion_port)
    companion = _Companion(uvicorn_config(companion_app, companion_host, companion_port, 1.0))
    task = asyncio.get_running_loop().create_task(companion.serve(sockets=[sock]))
    await _wait_started(companion, task)
    try:
        await main(bound_port(companion))
    finally:
        companion.should_exit = True
        await task
