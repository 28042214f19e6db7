"""The model host: embeddings per second, latency per call at c=1 and under load, the children's RSS, and
the gateway's c=1 p99 while the host is busy against idle, measured at the client.

    python bench/model_host.py [--runs 2] [--duration 5] [--load 8] [--skip-gateway]

Part 1 runs the host (local backend, the bundled model) in this process: calls of one text at
concurrency 1, then at `--load` x 4 concurrent callers (merged into batches), then batches of 64 texts.
Part 2 starts the simulator (zero latency) and, in turns, a gateway whose host is idle and one whose host is
kept busy by `--load` callers on the gateway's own event loop (batches of 32 texts, without pause: the
child computes all the time), and measures chat completions at
concurrency 1 against each (`--runs` turns, interleaved). Prints a table of medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sluicegate.models.config import ModelHostConfig
from sluicegate.models.host import ModelHost, build_host
from sluicegate.models.local import LocalBackend

MASTER_KEY = "sk-bench-master"
BENCH = Path(__file__).resolve().parent
TEXT = "How do I get a refund for an order that arrived damaged?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- part 1: the host alone ------------------------------------------------------------------------------


async def host_alone(duration: float, load: int) -> dict[str, float]:
    host: ModelHost = build_host(ModelHostConfig(deadline_ms=10_000, max_queued_texts=100_000))
    embedder = host.embedder(fail="closed")
    await host.start()
    backend = host.backend
    assert isinstance(backend, LocalBackend)
    assert await backend.wait_ready(120), "the model host child did not start"
    loop = asyncio.get_running_loop()
    try:
        for _ in range(50):
            await embedder.embed([TEXT])  # warm
        single: list[float] = []
        end = loop.time() + duration
        while loop.time() < end:
            began = time.perf_counter()
            await embedder.embed([TEXT])
            single.append(time.perf_counter() - began)
        loaded: list[float] = []
        callers = load * 4
        end = loop.time() + duration

        async def caller(i: int) -> None:
            while loop.time() < end:
                began = time.perf_counter()
                await embedder.embed([f"{TEXT} ({i})"])
                loaded.append(time.perf_counter() - began)

        began_load = time.perf_counter()
        await asyncio.gather(*(caller(i) for i in range(callers)))
        load_seconds = time.perf_counter() - began_load
        batch = [f"{TEXT} #{i}" for i in range(64)]
        batches = 0
        end = loop.time() + duration
        began_batches = time.perf_counter()
        while loop.time() < end:
            await embedder.embed(batch)
            batches += 1
        batch_seconds = time.perf_counter() - began_batches
        rss = sum(backend.rss_bytes().values())
    finally:
        await host.stop()
    return {
        "c1_p50_ms": statistics.median(single) * 1000,
        "c1_p99_ms": percentile(single, 0.99) * 1000,
        "c1_per_s": len(single) / duration,
        "load_callers": callers,
        "load_p50_ms": statistics.median(loaded) * 1000,
        "load_p99_ms": percentile(loaded, 0.99) * 1000,
        "load_texts_per_s": len(loaded) / load_seconds,
        "batch64_texts_per_s": batches * 64 / batch_seconds,
        "rss_mb": rss / 1e6,
    }


# -- part 2: the gateway at c=1, host idle or busy ----------------------------------------------------------


def start(args: list[str], ready: str | None, url: str | None, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    process = subprocess.Popen(args, stdout=subprocess.PIPE if ready else handle, stderr=handle)
    deadline = time.monotonic() + 120
    if ready is not None:
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"{args[1]} exited: see {log}")
            if line.strip() == ready.encode():
                return process
    while url is not None and time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{args} did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def chat_p99(url: str, duration: float) -> tuple[float, float, int]:
    body = {"model": "bench", "messages": [{"role": "user", "content": TEXT}], "max_tokens": 16}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    times: list[float] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for _ in range(50):
            client.post("/v1/chat/completions", json=body)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            began = time.perf_counter()
            response = client.post("/v1/chat/completions", json=body)
            times.append(time.perf_counter() - began)
            assert response.status_code == 200, response.text
    return statistics.median(times) * 1000, percentile(times, 0.99) * 1000, len(times)


def gateway_rounds(runs: int, duration: float, load: int, workdir: Path) -> dict[str, list[float]]:
    sim_port = free_port()
    sim_config = workdir / "simulator.yaml"
    sim_config.write_text("default: {output_tokens: 16}\n")  # no latency: the gateway's own time shows
    simulator = start(
        [sys.executable, "-m", "sluicegate", "simulator", "--port", str(sim_port), "--config", str(sim_config)],
        None,
        f"http://127.0.0.1:{sim_port}/v1/models",
        workdir / "simulator.log",
    )
    config = workdir / "gateway.yaml"
    config.write_text(
        f"""
server: {{access_log: {{enabled: false}}}}
store: {{database_url: "sqlite+aiosqlite:///{workdir}/gw.db", spool_dir: "{workdir}/spool"}}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:{sim_port}/v1"}}
models:
  - name: bench
    deployments: [{{provider: sim, model: bench}}]
model_host: {{deadline_ms: 1000, max_batch: 64}}
"""
    )
    results: dict[str, list[float]] = {"idle_p50": [], "idle_p99": [], "busy_p50": [], "busy_p99": []}
    os.environ["SLUICEGATE_MASTER_KEY"] = MASTER_KEY
    try:
        for _ in range(runs):
            for name, busy in (("idle", 0), ("busy", load)):
                port = free_port()
                gateway = start(
                    [sys.executable, str(BENCH / "model_host_gateway.py"), str(config), str(port), str(busy)],
                    "ready",
                    None,
                    workdir / f"gateway-{name}.log",
                )
                try:
                    p50, p99, _ = chat_p99(f"http://127.0.0.1:{port}", duration)
                finally:
                    stop(gateway)
                results[f"{name}_p50"].append(p50)
                results[f"{name}_p99"].append(p99)
    finally:
        stop(simulator)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--load", type=int, default=2, help="busy callers in the gateway (x4 for the host alone)")
    parser.add_argument("--skip-gateway", action="store_true")
    args = parser.parse_args()
    alone = asyncio.run(host_alone(args.duration, args.load))
    print("\nmodel host alone (local backend, bundled model, 1 child)")
    print(
        f"  c=1, 1 text per call      p50 {alone['c1_p50_ms']:.3f} ms   p99 {alone['c1_p99_ms']:.3f} ms"
        f"   {alone['c1_per_s']:.0f} calls/s"
    )
    print(
        f"  c={alone['load_callers']:.0f}, 1 text per call     p50 {alone['load_p50_ms']:.3f} ms"
        f"   p99 {alone['load_p99_ms']:.3f} ms   {alone['load_texts_per_s']:.0f} embeddings/s (merged)"
    )
    print(f"  batches of 64 texts       {alone['batch64_texts_per_s']:.0f} embeddings/s")
    print(f"  child RSS                 {alone['rss_mb']:.0f} MB")
    if args.skip_gateway:
        return
    with tempfile.TemporaryDirectory() as tmp:
        rounds = gateway_rounds(args.runs, args.duration, args.load, Path(tmp))
    idle50, idle99 = statistics.median(rounds["idle_p50"]), statistics.median(rounds["idle_p99"])
    busy50, busy99 = statistics.median(rounds["busy_p50"]), statistics.median(rounds["busy_p99"])
    print(f"\ngateway chat at c=1 (median of {args.runs} interleaved runs of {args.duration:g} s)")
    print(f"  host idle                 p50 {idle50:.3f} ms   p99 {idle99:.3f} ms")
    print(f"  host busy ({args.load} callers)    p50 {busy50:.3f} ms   p99 {busy99:.3f} ms")
    print(f"  busy / idle p99           {busy99 / idle99:.2f}  (target: within 1.10)")


if __name__ == "__main__":
    main()
