"""Translation overhead: an Anthropic-format upstream behind the OpenAI ingress, against an OpenAI pass-through.

    python bench/translation.py [--runs 5] [--duration 5] [--in-process-only]
    python bench/overhead.py --translation [--runs 5] [--duration 5]      (the same)

Starts the simulator in zero-latency mode (core 1) and one gateway (core 0) with two deployments on that
simulator: one speaking OpenAI's wire (pass-through) and one speaking Anthropic's (request, response and
stream translated). wrk (core 1) drives, one request at a time, each upstream directly and through the
gateway. What the gateway adds is (gateway - direct) per format; the translation's own cost is the
difference between the Anthropic and the OpenAI figure. Prints medians over --runs runs (target: the
translation adds at most 0.3 ms p50). On a shared, noisy machine that difference is within the noise, so
the script also times the translation work itself in-process (request build, response or stream decode,
OpenAI egress), which is stable.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from overhead import PROMPT, Figures, free_port, gateway_config, launch_gateway, start_simulator, wrk


def start_gateway(workdir: Path, simulator_url: str, port: int) -> subprocess.Popen[bytes]:
    config = gateway_config(
        workdir,
        f"""
providers:
  openai-format: {{kind: openai, base_url: "{simulator_url}/v1"}}
  anthropic-format: {{kind: anthropic, base_url: "{simulator_url}"}}
models:
  - name: via-openai
    deployments: [{{provider: openai-format, model: bench-model}}]
  - name: via-anthropic
    deployments: [{{provider: anthropic-format, model: bench-model}}]
""",
    )
    return launch_gateway(config, port)


def one_run(args: argparse.Namespace, figures: Figures, workdir: Path) -> None:
    upstream = start_simulator(workdir, free_port())
    port = free_port()
    gateway = start_gateway(workdir, upstream.url, port)
    via = f"http://127.0.0.1:{port}/v1/chat/completions"
    openai_direct = f"{upstream.url}/v1/chat/completions"
    anthropic_direct = f"{upstream.url}/v1/messages"
    anthropic_body = {
        "model": "bench-model",
        "max_tokens": 4096,
        "system": PROMPT[0]["content"],
        "messages": PROMPT[1:],
    }
    try:
        wrk(via, orjson.dumps({"model": "via-anthropic", "messages": PROMPT}), 4, 2, workdir)  # warm up
        for stream in (False, True):
            kind = "stream" if stream else "plain"
            openai_extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}
            cases = (
                ("openai direct", openai_direct, {"model": "bench-model", "messages": PROMPT, **openai_extra}),
                (
                    "openai gateway",
                    via,
                    {"model": "via-openai", "messages": PROMPT, **({"stream": True} if stream else {})},
                ),
                ("anthropic direct", anthropic_direct, {**anthropic_body, **({"stream": True} if stream else {})}),
                (
                    "anthropic gateway",
                    via,
                    {"model": "via-anthropic", "messages": PROMPT, **({"stream": True} if stream else {})},
                ),
            )
            for label, url, body in cases:
                load = wrk(url, orjson.dumps(body), 1, args.duration, workdir)
                figures.add(f"{label} {kind} p50", load.p50_ms)
                figures.add(f"{label} {kind} errors", load.errors)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
        upstream.process.send_signal(signal.SIGTERM)
        upstream.process.wait(timeout=10)


def report(figures: Figures, runs: int) -> str:
    m = figures.median
    lines = [
        f"medians of {runs} run(s), concurrency 1; gateway on core 0, simulator (zero latency) and wrk on core 1",
        "",
        f"{'p50 (ms)':10} {'openai direct':>14} {'openai via':>11} {'added':>7} "
        f"{'anthropic direct':>17} {'anthropic via':>14} {'added':>7} {'translation':>12}",
    ]
    for kind in ("plain", "stream"):
        od, og = m(f"openai direct {kind} p50"), m(f"openai gateway {kind} p50")
        ad, ag = m(f"anthropic direct {kind} p50"), m(f"anthropic gateway {kind} p50")
        lines.append(
            f"{kind:10} {od:14.3f} {og:11.3f} {og - od:7.3f} {ad:17.3f} {ag:14.3f} {ag - ad:7.3f} "
            f"{(ag - ad) - (og - od):12.3f}"
        )
    errors = sum(sum(v) for k, v in figures.values.items() if "errors" in k)
    lines.append(f"errors (non-2xx or socket): {errors}")
    per_run = [
        (a - b) - (c - d)
        for a, b, c, d in zip(
            figures.values["anthropic gateway plain p50"],
            figures.values["anthropic direct plain p50"],
            figures.values["openai gateway plain p50"],
            figures.values["openai direct plain p50"],
            strict=True,
        )
    ]
    lines.append(f"translation added, plain, per run (ms): {', '.join(f'{x:.3f}' for x in per_run)}")
    lines.append(f"median of per-run translation (ms): {statistics.median(per_run):.3f}")
    return "\n".join(lines)


def adapter_work(adapter: Any, endpoint: Any, request: Any, body: bytes) -> None:
    """One request's translation work: build the upstream request, decode the reply, render OpenAI egress."""
    from sluicegate.wire.openai import OpenAIStreamEncoder, chat_response_body

    adapter.chat_request(endpoint, "bench-model", request)
    if not request.stream:
        chat_response_body(adapter.chat_response(body))
        return
    framer, decoder, encoder = adapter.stream_framer(), adapter.stream_decoder(), OpenAIStreamEncoder(request)
    for event, data in framer.feed(body):
        for chunk in decoder.decode(event, data):
            encoder.encode(chunk)


def in_process(repeat: int = 2000) -> str:
    """Median microseconds per request of each adapter's work, on the simulator's own recorded bodies."""
    import asyncio
    import time

    import httpx

    from sluicegate.canonical import ChatRequest
    from sluicegate.config.schema import ProviderConfig
    from sluicegate.providers.anthropic.adapter import AnthropicAdapter
    from sluicegate.providers.base import Endpoint
    from sluicegate.providers.openai.adapter import OpenAIAdapter
    from sluicegate.providers.simulator import create_app, parse_simulator_config

    app = create_app(parse_simulator_config("seed: 1\ndefault: {output_tokens: 21}\n", "<bench>"))

    async def fetch(path: str, body: bytes) -> bytes:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
            return (await client.post(path, content=body)).content

    adapters = {
        "openai": (
            OpenAIAdapter("openai"),
            Endpoint("o", ProviderConfig(kind="openai", base_url="http://sim/v1")),
            "/v1/chat/completions",
        ),
        "anthropic": (
            AnthropicAdapter(),
            Endpoint("a", ProviderConfig(kind="anthropic", base_url="http://sim")),
            "/v1/messages",
        ),
    }
    lines = [
        f"in-process, median of 5 x {repeat} (us per request)",
        f"{'':10} {'openai':>10} {'anthropic':>10} {'translation':>12}",
    ]
    results: dict[str, dict[str, float]] = {}
    for name, (adapter, endpoint, path) in adapters.items():
        for stream in (False, True):
            request = ChatRequest(model="m", messages=PROMPT, stream=stream)  # type: ignore[arg-type]
            upstream = adapter.chat_request(endpoint, "bench-model", request)
            body = asyncio.run(fetch(path, upstream.body))

            samples = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(repeat):
                    adapter_work(adapter, endpoint, request, body)
                samples.append((time.perf_counter() - started) / repeat * 1e6)
            results.setdefault("stream" if stream else "plain", {})[name] = statistics.median(samples)
    for kind, by in results.items():
        lines.append(f"{kind:10} {by['openai']:10.1f} {by['anthropic']:10.1f} {by['anthropic'] - by['openai']:12.1f}")
    return "\n".join(lines)


def run(runs: int, duration: float, in_process_only: bool = False) -> None:
    print(in_process())
    if in_process_only:
        return
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install wrk")
    figures = Figures()
    args = argparse.Namespace(duration=duration)
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="sluice-translation-") as workdir:
            one_run(args, figures, Path(workdir))
    print(report(figures, runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk load")
    parser.add_argument("--in-process-only", action="store_true", help="only the in-process timing")
    args = parser.parse_args()
    run(args.runs, args.duration, args.in_process_only)


if __name__ == "__main__":
    main()
