"""How `serve --workers N` scales on this machine: requests/s and streams/s at c=64 with the configuration
users run (a virtual key with key and team budgets and RPM/TPM/concurrency limits), for 1 and 2 workers on
Redis, and 1 worker on the embedded in-process hot state for reference, legs interleaved round by round.

    python bench/workers.py [--runs 3] [--duration 6] [--redis-url redis://127.0.0.1:6379/0]

The gateway is not pinned: its workers take whatever cores there are. The upstream (nginx) and the load
generator (wrk) are pinned to core 1 as in bench/overhead.py, so on a 2-core machine the second worker
shares its core with them: the figure is what this machine allows, not what a machine with cores to spare
would give (there, each worker is a core's worth of bench/overhead.py's figures, less Redis's share).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson

import overhead as ob


def start(
    workdir: Path, upstream: ob.Upstream, port: int, workers: int, redis_url: str | None
) -> subprocess.Popen[bytes]:
    config = ob.gateway_config(
        workdir,
        f"""
providers:
  json: {{kind: openai, base_url: "{upstream.url}/json/v1"}}
  sse: {{kind: openai, base_url: "{upstream.url}/sse/v1"}}
models:
  - name: bench-json
    deployments: [{{provider: json, model: bench-model, price: {ob.PRICE}}}]
  - name: bench-stream
    deployments: [{{provider: sse, model: bench-model, price: {ob.PRICE}}}]
""",
        redis_url=redis_url,
    )
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "sluicegate", "serve", "--config", str(config)),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**os.environ, "SLUICEGATE_MASTER_KEY": ob.MASTER_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ob.wait_http(f"http://127.0.0.1:{port}/health/ready", timeout=60)
    return process


@contextlib.contextmanager
def limited_gateway(
    root: Path, launch: Callable[[Path, ob.Upstream, int], subprocess.Popen[bytes]]
) -> Iterator[tuple[str, str, Path]]:
    """nginx and a gateway started by `launch(workdir, upstream, port)`, with a virtual key carrying the
    budgets and limits of bench/overhead.py; yields the chat URL, the key and the run's folder."""
    root.chmod(0o755)  # nginx's unprivileged workers must reach the bodies below it (mkdtemp makes it 0700)
    workdir = Path(tempfile.mkdtemp(dir=root))
    upstream = ob.start_nginx(workdir, ob.free_port())
    port = ob.free_port()
    gateway = launch(workdir, upstream, port)
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions", ob.virtual_key(port, limits=True), workdir
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
        upstream.process.send_signal(signal.SIGQUIT)
        upstream.process.wait(timeout=10)


def leg(workers: int, redis_url: str | None, duration: float, root: Path) -> tuple[float, float, int]:
    with limited_gateway(root, lambda w, u, p: start(w, u, p, workers, redis_url)) as (url, key, workdir):
        plain = orjson.dumps({"model": "bench-json", "messages": ob.PROMPT})
        streamed = orjson.dumps({"model": "bench-stream", "messages": ob.PROMPT, "stream": True})
        ob.wrk(url, plain, 64, 2, workdir, key)  # warm every worker's pools and caches
        whole = ob.wrk(url, plain, 64, duration, workdir, key)
        streams = ob.wrk(url, streamed, 64, duration, workdir, key)
        errors = whole.errors + streams.errors
        if errors:
            sys.exit(f"{errors} requests failed: the figures would not mean anything")
        return whole.rps, streams.rps, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    legs = {
        "1 worker, in-process state": (1, None),
        "1 worker, Redis": (1, args.redis_url),
        "2 workers, Redis": (2, args.redis_url),
    }
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in legs}
    with tempfile.TemporaryDirectory(prefix="sluice-workers-") as root:
        for run in range(args.runs):
            order = list(legs)[run % len(legs) :] + list(legs)[: run % len(legs)]  # rotated each round
            for name in order:
                results[name].append(leg(*legs[name], args.duration, Path(root)))
    base = statistics.median(r[0] for r in results["1 worker, Redis"])
    base_streams = statistics.median(r[1] for r in results["1 worker, Redis"])
    print(f"medians of {args.runs} interleaved runs, c=64, virtual key with budgets and limits")
    print(f"{'':30} {'requests/s':>11} {'x 1 worker':>10} {'streams/s':>10} {'x 1 worker':>10} {'errors':>7}")
    for name, rows in results.items():
        rps = statistics.median(r[0] for r in rows)
        sps = statistics.median(r[1] for r in rows)
        errors = sum(r[2] for r in rows)
        print(f"{name:30} {rps:11.0f} {rps / base:10.2f} {sps:10.0f} {sps / base_streams:10.2f} {errors:7d}")


if __name__ == "__main__":
    main()
