"""What tracing costs per request: the configuration users run (a virtual key with budgets and limits),
the gateway pinned to core 0, at c=64 (so its core is saturated and requests/s is the inverse of its CPU
time per request), without `tracing` and with it at a sample ratio (default 10%) exporting to a local
OTLP/HTTP endpoint that accepts and discards. Legs are interleaved round by round.

    python bench/tracing.py [--runs 3] [--duration 6] [--ratio 0.1]

Prints requests/s of each leg and the difference as µs per request (1/rps_on - 1/rps_off).
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

import overhead as ob
from workers import limited_gateway

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""


def leg(ratio: float | None, receiver: str, duration: float, root: Path) -> float:
    def launch(workdir: Path, upstream: ob.Upstream, port: int) -> subprocess.Popen[bytes]:
        config = ob.gateway_config(
            workdir,
            f"""
providers:
  json: {{kind: openai, base_url: "{upstream.url}/json/v1"}}
models:
  - name: bench-json
    deployments: [{{provider: json, model: bench-model, price: {ob.PRICE}}}]
""",
        )
        if ratio is not None:
            with config.open("a") as file:
                file.write(f"tracing: {{endpoint: '{receiver}', sample_ratio: {ratio}}}\n")
        return ob.launch_gateway(config, port)

    with limited_gateway(root, launch) as (url, key, workdir):
        plain = orjson.dumps({"model": "bench-json", "messages": ob.PROMPT})
        ob.wrk(url, plain, 8, 2, workdir, key)  # warm
        load = ob.wrk(url, plain, 64, duration, workdir, key)
        if load.errors:
            sys.exit(f"{load.errors} requests failed: the figures would not mean anything")
        return load.rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--ratio", type=float, default=0.1)
    args = parser.parse_args()
    receiver_port = ob.free_port()
    sink = subprocess.Popen(["taskset", "-c", "1", sys.executable, "-c", RECEIVER, str(receiver_port)])
    receiver = f"http://127.0.0.1:{receiver_port}/v1/traces"
    legs: dict[str, float | None] = {"tracing off": None, f"tracing at {args.ratio:.0%}": args.ratio}
    results: dict[str, list[float]] = {name: [] for name in legs}
    try:
        with tempfile.TemporaryDirectory(prefix="sluice-tracing-") as root:
            for run in range(args.runs):
                names = list(legs) if run % 2 == 0 else list(reversed(legs))
                for name in names:
                    results[name].append(leg(legs[name], receiver, args.duration, Path(root)))
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(timeout=10)
    off, on = (statistics.median(results[name]) for name in legs)
    print(f"medians of {args.runs} interleaved runs, c=64, gateway on one core, virtual key with budgets and limits")
    for name, rows in results.items():
        print(f"{name:20} {statistics.median(rows):10.0f} requests/s   runs: {', '.join(f'{r:.0f}' for r in rows)}")
    print(f"tracing costs {1e6 / on - 1e6 / off:.1f} µs per request")


if __name__ == "__main__":
    main()
