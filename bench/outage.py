"""The brown-out of a store outage: requests/s and p50 of traffic from keys already in the auth cache, with
the store (PostgreSQL) reachable and with it cut, interleaved.

    python bench/outage.py [--runs 3] [--duration 5] [--concurrency 32] [--keys 20]
                           [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
                           [--cut blackhole|refuse]

Starts the simulator (zero latency) and one gateway whose store is reached through a TCP proxy in this
process (sluicegate.providers.simulator.tcp_proxy, the one the tests cut), creates --keys virtual keys and
warms them into the cache, then for each run drives the gateway for --duration seconds with the store
reachable and for --duration seconds with it cut: `blackhole` (the default: connections are accepted and
never answered, so every read waits for the store's timeout, the worst case) or `refuse` (connections are
refused at once). The key cache TTL is 1 s, so every cached key is due for a refresh during the cut. Prints
a table of medians and the ratio cut / reachable (target: requests/s and p50 within 10% of normal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import httpx

from sluicegate.providers.simulator.tcp_proxy import TcpProxy

MASTER_KEY = "sk-bench-master-outage-0123456789"
UPSTREAM_KEY = "sk-bench-upstream"
SIMULATOR = f"""
api_key: {UPSTREAM_KEY}
default: {{ttft_ms: 0, latency_ms: 0, tokens_per_second: 0, output_tokens: 8}}
"""
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(args: list[str], workdir: Path, name: str, ready: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (workdir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "sluicegate", *args], stdout=log, stderr=log, cwd=workdir, env={**os.environ, **env}
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited; see {workdir / (name + '.log')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(ready, timeout=1).status_code < 500:
                return process
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{name} did not start; see {workdir / (name + '.log')}")


async def load(url: str, keys: list[str], seconds: float, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker(n: int) -> None:
            nonlocal errors
            i = n
            while time.monotonic() < deadline:
                headers = {"authorization": f"Bearer {keys[i % len(keys)]}"}
                i += 1
                started = time.perf_counter()
                async with session.post(f"{url}/v1/chat/completions", json=BODY, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        continue
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "errors": float(errors),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--cut", choices=("blackhole", "refuse"), default="blackhole")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()

    database = urlsplit(args.database_url)
    proxy = TcpProxy(database.port or 5432, database.hostname or "127.0.0.1")
    proxy.start()
    proxied = args.database_url.replace(f"{database.hostname}:{database.port or 5432}", f"127.0.0.1:{proxy.port}")
    schema = "sg_bench_outage_" + secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="sluice-outage-") as tmp:
        workdir = Path(tmp)
        (workdir / "sim.yaml").write_text(SIMULATOR)
        sim_port, gw_port = free_port(), free_port()
        (workdir / "gateway.yaml").write_text(
            f"""
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:{sim_port}/v1", api_key_env: SIM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
store:
  database_url: {proxied}
  db_schema: {schema}
  spool_dir: {workdir / "spool"}
  timeout_seconds: 2
  key_cache_ttl_seconds: 1
server:
  access_log: {{enabled: false}}
"""
        )
        env = {"SLUICEGATE_MASTER_KEY": MASTER_KEY, "SIM_KEY": UPSTREAM_KEY}
        processes = [
            start(
                ["simulator", "--port", str(sim_port), "--config", str(workdir / "sim.yaml")],
                workdir,
                "simulator",
                f"http://127.0.0.1:{sim_port}/_sim/stats",
                env,
            )
        ]
        try:
            processes.append(
                start(
                    ["serve", "--config", str(workdir / "gateway.yaml"), "--port", str(gw_port)],
                    workdir,
                    "gateway",
                    f"http://127.0.0.1:{gw_port}/health/ready",
                    env,
                )
            )
            url = f"http://127.0.0.1:{gw_port}"
            admin = {"authorization": f"Bearer {MASTER_KEY}"}
            keys = [
                httpx.post(f"{url}/admin/keys", json={"team": "bench"}, headers=admin, timeout=10).json()["key"]
                for _ in range(args.keys)
            ]
            asyncio.run(load(url, keys, 1.0, 4))  # warms every key into the cache
            figures: dict[str, list[dict[str, float]]] = {"reachable": [], "cut": []}
            for _ in range(args.runs):
                proxy.set("forward")
                asyncio.run(load(url, keys, 1.5, 4))  # the store is known to be back before measuring
                figures["reachable"].append(asyncio.run(load(url, keys, args.duration, args.concurrency)))
                proxy.set(args.cut)
                figures["cut"].append(asyncio.run(load(url, keys, args.duration, args.concurrency)))
            proxy.set("forward")
        finally:
            for process in reversed(processes):
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=15)
            asyncio.run(_drop(args.database_url, schema))
    table: dict[str, dict[str, float]] = {
        phase: {name: statistics.median(run[name] for run in runs) for name in ("rps", "p50_ms", "errors")}
        for phase, runs in figures.items()
    }
    print(f"store cut: {args.cut}; {args.runs} runs of {args.duration:g}s per phase, concurrency {args.concurrency}")
    print(f"{'phase':<10} {'requests/s':>11} {'p50 ms':>8} {'errors':>7}")
    for phase, row in table.items():
        print(f"{phase:<10} {row['rps']:>11.0f} {row['p50_ms']:>8.2f} {row['errors']:>7.0f}")
    normal, cut = table["reachable"], table["cut"]
    print(f"{'cut/normal':<10} {cut['rps'] / normal['rps']:>11.2f} {cut['p50_ms'] / normal['p50_ms']:>8.2f}")


async def _drop(database_url: str, schema: str) -> None:
    from sqlalchemy import text

    from sluicegate.store.db import Store

    store = Store(database_url, timeout=5)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    except Exception as exc:  # the figures are printed anyway
        print(f"could not drop schema {schema}: {type(exc).__name__}", file=sys.stderr)
    finally:
        await store.close()


if __name__ == "__main__":
    main()
