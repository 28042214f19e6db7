"""Memory soak: a bounded, steady, mixed load on the gateway for a while, its RSS sampled every 10 s.

    python bench/soak.py [--minutes 20] [--rate 150] [--concurrency 16] [--keys 20]

Starts the simulator (core 1, with the load generator) and the gateway (core 0) in the configuration users
run: virtual keys with key and team budgets and RPM/TPM/concurrency limits (in-process hot state), the
SQLite ledger, metrics and the access log to a file, priced models that count with o200k. The load is
`--rate` requests/s at most, `--concurrency` at once, for `--minutes`: whole answers and streams, tool
calls (streamed and whole), a model whose upstream fails (HTTP 500, 429 with Retry-After, streams cut
mid-way or malformed, drawn per request by the simulator), requests refused by the gateway (an unknown
model), and key churn (a new key every 5 s, the oldest revoked, so keys come and go all the time).

Every 10 s it samples the gateway's RSS, open file descriptors and event-loop tasks (the
`sluicegate_event_loop_tasks` gauge). Warm-up is the first quarter of the run (at least one minute when
the run is 4 minutes or more); the verdict is PASS when RSS after warm-up grows by at most 10% over the
RSS at the end of warm-up (the largest later sample against it), and fds and tasks, sampled idle before
the load and idle after it, have not grown beyond a few (the connections the gateway keeps to the
upstream, at most --concurrency). Prints the samples and the verdict; exits 1 on FAIL. Every request and
loop is bounded by the run's time; it talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import MASTER_KEY, free_port, launch_gateway, peak_rss_mb, wait_http

SAMPLE_SECONDS = 10.0
GROWTH_LIMIT = 0.10
PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the weather in Paris, and what should I wear?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
SIMULATOR = """
seed: 7
default: {latency_ms: 2, ttft_ms: 2, tokens_per_second: 2000, output_tokens: {min: 8, max: 40}}
models:
  flaky-model:
    faults:
      - {type: server_error, probability: 0.15}
      - {type: rate_limit, probability: 0.1, retry_after: 0}
      - {type: reset, probability: 0.1, after_tokens: 3}
      - {type: malformed_sse, probability: 0.05, after_tokens: 2}
"""
GATEWAY = """
server:
  access_log: {{path: {workdir}/access.log}}
store: {{database_url: "sqlite+aiosqlite:///{workdir}/soak.db", spool_dir: "{workdir}/spool"}}
providers:
  sim: {{kind: openai, base_url: "{simulator}/v1"}}
models:
  - name: chat
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: flaky
    deployments: [{{provider: sim, model: flaky-model, price: {{input: 0.15, output: 0.60}}}}]
"""
TEAM_LIMITS = {"rpm": 10_000_000, "tpm": 2_000_000_000, "budget_usd": "1000000", "budget_period": "monthly"}
KEY_LIMITS = {
    "rpm": 10_000_000,
    "tpm": 2_000_000_000,
    "max_concurrency": 10_000,
    "budget_usd": "1000",
    "budget_period": "daily",
}


@dataclass
class Sample:
    at: float  # seconds since the load started
    rss_mb: float
    fds: int
    tasks: int
    requests: int


@dataclass
class Tally:
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    failures: int = 0  # transport failures at the client (a timeout, a reset)

    def count(self, kind: str, status: int) -> None:
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        self.by_status[status] = self.by_status.get(status, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def loop_tasks(client: httpx.AsyncClient, base: str) -> int:
    text = (await client.get(f"{base}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"})).text
    match = re.search(r"^sluicegate_event_loop_tasks (\S+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else -1


class Keys:
    """The live virtual keys; `churn` adds one and revokes the oldest."""

    def __init__(self, client: httpx.AsyncClient, base: str) -> None:
        self._client = client
        self._base = base
        self.live: list[tuple[str, str]] = []  # (id, secret)
        self.made = 0

    async def create(self) -> None:
        response = await self._client.post(
            f"{self._base}/admin/keys",
            json={"team": "soak", "user": f"user-{self.made % 7}", "models": ["chat", "flaky"], **KEY_LIMITS},
            headers={"authorization": f"Bearer {MASTER_KEY}"},
        )
        response.raise_for_status()
        body = response.json()
        self.live.append((body["key_id"], body["key"]))
        self.made += 1

    async def churn(self) -> None:
        await self.create()
        key_id, _ = self.live.pop(0)
        response = await self._client.delete(
            f"{self._base}/admin/keys/{key_id}", headers={"authorization": f"Bearer {MASTER_KEY}"}
        )
        response.raise_for_status()

    def pick(self, rng: random.Random) -> str:
        return rng.choice(self.live)[1]


def request_for(rng: random.Random) -> tuple[str, dict[str, object]]:
    """One request of the mix: (kind, body)."""
    roll = rng.random()
    if roll < 0.30:
        return "stream", {"model": "chat", "messages": PROMPT, "stream": True, "max_tokens": 64}
    if roll < 0.50:
        return "whole", {"model": "chat", "messages": PROMPT, "max_tokens": 64}
    if roll < 0.65:
        stream = rng.random() < 0.5
        body = {"model": "chat", "messages": PROMPT, "tools": TOOLS, "tool_choice": "required", "stream": stream}
        return "tools", body
    if roll < 0.95:
        return "flaky", {"model": "flaky", "messages": PROMPT, "stream": rng.random() < 0.6, "max_tokens": 64}
    return "refused", {"model": "no-such-model", "messages": PROMPT}


async def one_request(client: httpx.AsyncClient, url: str, key: str, kind: str, body: dict[str, object]) -> int:
    headers = {"authorization": f"Bearer {key}"}
    if body.get("stream"):
        async with client.stream("POST", url, json=body, headers=headers) as response:
            async for _ in response.aiter_bytes():
                pass
            return response.status_code
    return (await client.post(url, json=body, headers=headers)).status_code


async def drive(base: str, keys: Keys, args: argparse.Namespace, until: float, tally: Tally) -> None:
    """`args.concurrency` workers sharing a steady `args.rate` requests/s, until `until`."""
    url = f"{base}/v1/chat/completions"
    interval = 1.0 / args.rate
    next_at = time.monotonic()
    slot = asyncio.Lock()
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)

    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def worker(seed: int) -> None:
            nonlocal next_at
            rng = random.Random(seed)
            while True:
                async with slot:  # the pace is shared: the next request starts `interval` after the last
                    now = time.monotonic()
                    next_at = max(next_at + interval, now)
                    wait = next_at - now
                if wait > 0:
                    await asyncio.sleep(wait)
                if time.monotonic() >= until:
                    return
                kind, body = request_for(rng)
                try:
                    status = await one_request(client, url, keys.pick(rng), kind, body)
                except httpx.HTTPError:
                    tally.failures += 1
                    continue
                tally.count(kind, status)

        await asyncio.gather(*(worker(seed) for seed in range(args.concurrency)))


async def soak(args: argparse.Namespace, workdir: Path) -> int:
    sim_port, gateway_port = free_port(), free_port()
    sim_config = workdir / "simulator.yaml"
    sim_config.write_text(SIMULATOR)
    command = ["taskset", "-c", "1", sys.executable, "-m", "sluicegate", "simulator"]
    simulator = subprocess.Popen(
        [*command, "--port", str(sim_port), "--config", str(sim_config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gateway: subprocess.Popen[bytes] | None = None
    try:
        sim = f"http://127.0.0.1:{sim_port}"
        wait_http(f"{sim}/_sim/stats")
        config = workdir / "gateway.yaml"
        config.write_text(GATEWAY.format(workdir=workdir, simulator=sim))
        gateway = launch_gateway(config, gateway_port)
        base = f"http://127.0.0.1:{gateway_port}"
        async with httpx.AsyncClient(timeout=30.0) as admin:
            response = await admin.post(
                f"{base}/admin/teams",
                json={"id": "soak", **TEAM_LIMITS},
                headers={"authorization": f"Bearer {MASTER_KEY}"},
            )
            response.raise_for_status()
            keys = Keys(admin, base)
            for _ in range(args.keys):
                await keys.create()
            tally = Tally()
            # a short burst first, so that pools, caches and tokenizers exist before the idle baseline
            await drive(base, keys, args, time.monotonic() + 3, tally)
            await asyncio.sleep(2)
            idle_before = (open_fds(gateway.pid), await loop_tasks(admin, base))

            duration = args.minutes * 60
            started = time.monotonic()
            until = started + duration
            samples: list[Sample] = []
            load = asyncio.create_task(drive(base, keys, args, until, tally))

            async def churn() -> None:
                while time.monotonic() < until - 5:
                    await asyncio.sleep(5)
                    await keys.churn()

            churner = asyncio.create_task(churn())
            while time.monotonic() < until:
                await asyncio.sleep(min(SAMPLE_SECONDS, max(0.0, until - time.monotonic())))
                sample = Sample(
                    time.monotonic() - started,
                    rss_mb(gateway.pid),
                    open_fds(gateway.pid),
                    await loop_tasks(admin, base),
                    tally.total,
                )
                samples.append(sample)
                print(
                    f"{sample.at:7.0f}s  rss {sample.rss_mb:7.1f} MB  fds {sample.fds:4d}  tasks {sample.tasks:4d}  "
                    f"requests {sample.requests}",
                    flush=True,
                )
            await load
            await churner
            await asyncio.sleep(2)
            idle_after = (open_fds(gateway.pid), await loop_tasks(admin, base))
        peak = peak_rss_mb(gateway.pid)
    finally:
        for process in (gateway, simulator):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    return verdict(args, samples, idle_before, idle_after, peak, tally, keys.made)


def verdict(
    args: argparse.Namespace,
    samples: list[Sample],
    idle_before: tuple[int, int],
    idle_after: tuple[int, int],
    peak: float,
    tally: Tally,
    keys_made: int,
) -> int:
    duration = args.minutes * 60
    warm_up = duration / 4 if duration < 240 else max(60.0, duration / 4)
    after = [s for s in samples if s.at > warm_up]
    at_warm_up = [s for s in samples if s.at <= warm_up][-1] if any(s.at <= warm_up for s in samples) else None
    problems = []
    growth = 0.0
    if at_warm_up is None or not after:
        problems.append("too few samples for a verdict (run longer)")
    else:
        growth = max(s.rss_mb for s in after) / at_warm_up.rss_mb - 1
        if growth > GROWTH_LIMIT:
            problems.append(f"RSS grew {growth:.1%} after warm-up (limit {GROWTH_LIMIT:.0%})")
    slack = args.concurrency + 4  # connections kept to the upstream, the admin client's
    if idle_after[0] > idle_before[0] + slack:
        problems.append(f"open fds grew {idle_before[0]} -> {idle_after[0]} (idle, before and after the load)")
    if idle_after[1] > idle_before[1] + 4:
        problems.append(f"event-loop tasks grew {idle_before[1]} -> {idle_after[1]} (idle, before and after)")
    minutes = max(1e-9, duration / 60)
    print()
    rate = tally.total / (minutes * 60)
    print(f"{tally.total} requests in {args.minutes:g} min ({rate:.0f}/s), {keys_made} keys made")
    print("by kind:   " + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_kind.items())))
    print("by status: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.by_status.items())))
    print(f"client-side transport failures: {tally.failures}")
    if at_warm_up is not None and after:
        print(
            f"RSS at warm-up end ({at_warm_up.at:.0f}s) {at_warm_up.rss_mb:.1f} MB, after it max "
            f"{max(s.rss_mb for s in after):.1f} / median {statistics.median(s.rss_mb for s in after):.1f} MB, "
            f"last {after[-1].rss_mb:.1f} MB: growth {growth:+.1%}; peak RSS {peak:.1f} MB"
        )
    print(f"idle fds {idle_before[0]} -> {idle_after[0]}, idle event-loop tasks {idle_before[1]} -> {idle_after[1]}")
    print("verdict: " + ("PASS" if not problems else "FAIL: " + "; ".join(problems)))
    return 0 if not problems else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second, at most")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--keys", type=int, default=20, help="virtual keys live at once")
    args = parser.parse_args()
    if not shutil.which("taskset"):
        sys.exit("taskset is needed (util-linux)")
    with tempfile.TemporaryDirectory(prefix="sluice-soak-") as workdir:
        sys.exit(asyncio.run(soak(args, Path(workdir))))


if __name__ == "__main__":
    main()
