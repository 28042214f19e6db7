"""Gateway overhead against a direct call and against a bare proxy hop, measured at the client.

    python bench/overhead.py [--runs 3] [--duration 8] [--auth full|no-limits|master] [--unique-prompts]
                             [--upstream nginx|simulator] [--gap-ms 1.0] [--no-bare-proxy]
                             [--redis-url URL] [--database-url URL]
                             [--stages noop_request,noop_response,noop_chunks,noop_finish]

What users run by default (`--auth full`): a virtual key with a key budget, whose team has a budget too,
with RPM, TPM and concurrency limits on the key and RPM/TPM on the team (in-process hot state unless
--redis-url), the SQLite ledger (PostgreSQL with --database-url), Prometheus metrics and the access log to
a file. The limits are set high enough never to refuse: every request pays for checking, reserving and
settling them. `--auth no-limits` is a virtual key with no budget or limit, `--auth master` the master
key (no key lookup, no budget, no limit): labelled variants, for comparison.

Starts the upstreams on core 1 (Debian's nginx answering with OpenAI-format bodies, all of a stream's 24
events in one write, or the simulator in zero-latency mode; and `paced_upstream.py`, writing each of 24
events separately, --gap-ms apart, as providers stream) and the gateway on core 0, then drives them with
`wrk` (pinned to core 1) one after the other in the same run: latency at concurrency 1 and 64,
requests/s at saturation, streams/s with both upstreams (with the streams' p50/p99), added time to first
token (against nginx's burst, and against the simulator streaming 200 tokens/s), the gateway's peak RSS,
and how many ledger rows were still to be written to the database when the c=64 load ended (they wait in
the spool meanwhile). The same loads then go through a bare proxy hop on the same core (`bare_proxy.py`:
what a Python proxy costs with no gateway features, on this machine today; skip with --no-bare-proxy),
so every figure is also a ratio to the hop measured in the same run. Prints a table of medians over
--runs runs. With --stages, the gateway runs with those optional pipeline stages configured (the `noop_*`
ones do nothing: what each hook itself costs).
Needs `wrk` and `nginx` (apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson

MASTER_KEY = "sk-bench-master"
PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in two sentences."},
]
STREAM_EVENTS = 24
UNIQUE_PROMPTS = "SLUICEGATE_BENCH_UNIQUE_PROMPTS"  # set by --unique-prompts, read where wrk's script is written
PACED_TOKENS_PER_SECOND = 200  # the token-by-token upstream: 5 ms between events


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


# -- upstream bodies -----------------------------------------------------------------------------


def completion_body() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "bench-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hamlet avenges his father. Almost everyone dies."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 31, "completion_tokens": 10, "total_tokens": 41},
        }
    )


def stream_body() -> bytes:
    def event(choices: list[dict[str, object]], usage: dict[str, int] | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-model",
            "choices": choices,
            "usage": usage,
        }
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])]
    for i in range(STREAM_EVENTS - 3):
        events.append(event([{"index": 0, "delta": {"content": f" word{i}"}, "finish_reason": None}]))
    events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    events.append(event([], {"prompt_tokens": 31, "completion_tokens": STREAM_EVENTS - 3, "total_tokens": 52}))
    return b"".join(events) + b"data: [DONE]\n\n"


# -- processes -----------------------------------------------------------------------------------


@dataclass
class Upstream:
    url: str
    process: subprocess.Popen[bytes]


def start_nginx(workdir: Path, port: int) -> Upstream:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    workdir.chmod(0o755)  # nginx workers run unprivileged and must read the bodies
    (workdir / "completion.json").write_bytes(completion_body())
    (workdir / "stream.sse").write_bytes(stream_body())
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
error_log {workdir}/nginx-error.log warn;
pid {workdir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {workdir};
        location = /json/v1/chat/completions {{
            default_type application/json;
            error_page 405 =200 /completion.json;
            try_files /completion.json =404;
        }}
        location = /sse/v1/chat/completions {{
            default_type text/event-stream;
            error_page 405 =200 /stream.sse;
            try_files /stream.sse =404;
        }}
        location = /completion.json {{ default_type application/json; }}
        location = /stream.sse {{ default_type text/event-stream; }}
    }}
}}
"""
    )
    process = subprocess.Popen(
        ["taskset", "-c", "1", nginx, "-c", str(conf), "-p", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return Upstream(url, process)


def start_simulator(workdir: Path, port: int, tokens_per_second: float = 0) -> Upstream:
    """The simulator in zero-latency mode, or streaming `tokens_per_second` (the first event at once)."""
    config = workdir / f"simulator-{port}.yaml"
    config.write_text(
        f"seed: 1\ndefault: {{latency_ms: 0, ttft_ms: 0, tokens_per_second: {tokens_per_second}, "
        f"output_tokens: {STREAM_EVENTS - 3}}}\n"
    )
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            sys.executable,
            "-m",
            "sluicegate",
            "simulator",
            "--port",
            str(port),
            "--config",
            str(config),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/_sim/stats")
    return Upstream(url, process)


def gateway_config(
    workdir: Path,
    providers_and_models: str,
    stages: list[str] | None = None,
    redis_url: str | None = None,
    database_url: str | None = None,
) -> Path:
    """The benchmarks' gateway configuration: the default pipeline's access log (to a file) and store (the
    SQLite ledger, `ledger_rows` reads it, or `database_url`), the in-process hot state (or Redis at
    `redis_url`, under a key prefix of this run's own), with the given providers and models (and optional
    stages)."""
    config = workdir / "gateway.yaml"
    pipeline = f"pipeline: {{stages: {orjson.dumps(stages).decode()}}}\n" if stages else ""
    database = database_url or f"sqlite+aiosqlite:///{workdir}/bench.db"
    redis = ""
    if redis_url:
        redis = f'redis: {{url: "{redis_url}"}}\nlimits: {{backend: redis, key_prefix: "sgbench-{os.getpid()}"}}\n'
    config.write_text(
        f"""
server:
  access_log: {{path: {workdir}/access.log}}
store: {{database_url: "{database}", spool_dir: "{workdir}/spool"}}
{redis}{pipeline}{providers_and_models}"""
    )
    return config


def launch_gateway(config: Path, port: int) -> subprocess.Popen[bytes]:
    """`sluicegate serve` on `config`, pinned to core 0, once it answers."""
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            "-m",
            "sluicegate",
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        env={**os.environ, "SLUICEGATE_MASTER_KEY": MASTER_KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/health/live")
    return process


def start_paced_upstream(port: int, gap_ms: float) -> Upstream:
    """`bench/paced_upstream.py` (each stream event written on its own, `gap_ms` apart) on core 1."""
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            sys.executable,
            str(Path(__file__).with_name("paced_upstream.py")),
            str(port),
            "--gap-ms",
            str(gap_ms),
            "--events",
            str(STREAM_EVENTS),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url)
    return Upstream(url, process)


def start_bare_proxy(port: int, upstreams: dict[str, str]) -> subprocess.Popen[bytes]:
    """`bench/bare_proxy.py` (the reference hop: no gateway features) pinned to core 0, once it answers."""
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            sys.executable,
            str(Path(__file__).with_name("bare_proxy.py")),
            str(port),
            *(f"{model}={url}" for model, url in upstreams.items()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/health")
    return process


# gpt-4o-mini's list price, so that budgets reserve and settle real amounts
PRICE = "{input: 0.15, output: 0.60}"


def start_gateway(
    workdir: Path,
    upstream: Upstream,
    kind: str,
    port: int,
    paced: Upstream | None = None,
    stages: list[str] | None = None,
    evented: Upstream | None = None,
    redis_url: str | None = None,
    database_url: str | None = None,
) -> subprocess.Popen[bytes]:
    json_base = f"{upstream.url}/json/v1" if kind == "nginx" else f"{upstream.url}/v1"
    sse_base = f"{upstream.url}/sse/v1" if kind == "nginx" else f"{upstream.url}/v1"
    paced_base = f"{(paced or upstream).url}/v1"
    evented_base = f"{(evented or upstream).url}/v1"
    config = gateway_config(
        workdir,
        f"""
providers:
  json: {{kind: openai, base_url: "{json_base}"}}
  sse: {{kind: openai, base_url: "{sse_base}"}}
  paced: {{kind: openai, base_url: "{paced_base}"}}
  evented: {{kind: openai, base_url: "{evented_base}"}}
models:
  - name: bench-json
    deployments: [{{provider: json, model: bench-model, price: {PRICE}}}]
  - name: bench-stream
    deployments: [{{provider: sse, model: bench-model, price: {PRICE}}}]
  - name: bench-paced
    deployments: [{{provider: paced, model: bench-model, price: {PRICE}}}]
  - name: bench-evented
    deployments: [{{provider: evented, model: bench-model, price: {PRICE}}}]
""",
        stages,
        redis_url,
        database_url,
    )
    return launch_gateway(config, port)


# Limits far above what one core serves, so that nothing is refused but every request checks, reserves and
# settles them: RPM and TPM in a 60 s sliding window, requests in flight, and budgets of a million dollars.
FULL_LIMITS = {
    "team": {"rpm": 10_000_000, "tpm": 2_000_000_000, "budget_usd": "1000000", "budget_period": "monthly"},
    "key": {
        "rpm": 10_000_000,
        "tpm": 2_000_000_000,
        "max_concurrency": 10_000,
        "budget_usd": "1000000",
        "budget_period": "monthly",
    },
}


def virtual_key(port: int, limits: bool = True) -> str:
    """A virtual key made through the admin API, so the gateway leg pays for key lookup and attribution;
    with `limits`, its team and itself carry the budgets and limits of `FULL_LIMITS`."""
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    team = "bench-limited" if limits else "bench"
    if limits:
        httpx.post(
            f"http://127.0.0.1:{port}/admin/teams", json={"id": team, **FULL_LIMITS["team"]}, headers=admin, timeout=10
        ).raise_for_status()
    response = httpx.post(
        f"http://127.0.0.1:{port}/admin/keys",
        json={"team": team, "user": "bench-user", "models": ["bench-*"], **(FULL_LIMITS["key"] if limits else {})},
        headers=admin,
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["key"])


def ledger_rows(workdir: Path) -> int:
    """Rows in the gateway's SQLite ledger now (-1 with another database: not counted)."""
    if not (workdir / "bench.db").exists():
        return -1
    with sqlite3.connect(workdir / "bench.db", timeout=10) as db:
        return int(db.execute("SELECT count(*) FROM spend_ledger").fetchone()[0])


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- load ----------------------------------------------------------------------------------------


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(url: str, body: bytes, connections: int, duration: float, workdir: Path, key: str = MASTER_KEY) -> Load:
    script = workdir / "post.lua"
    body_file = workdir / "body.json"
    body_file.write_bytes(body)
    unique = os.environ.get(UNIQUE_PROMPTS) == "1"
    script.write_text(
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        + (
            # every request its own prompt (a response cache's miss path), the same work on both legs
            # (numbered from a random start below 1e9, which LuaJIT still prints whole: each wrk run asks its own)
            f"local n = {secrets.randbelow(10**9)}\nlocal template = wrk.body\n"
            "request = function() n = n + 1\n"
            '  return wrk.format(nil, nil, nil, (template:gsub("two sentences", "two sentences " .. n, 1))) end\n'
            if unique
            else ""
        )
    )
    output = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    return Load(rps, p50, p99, errors)


_FIRST_TOKEN = re.compile(rb'"content":\s*"[^"]')  # a delta with text in it (the role-only opener has "")


def ttft_ms(url: str, body: bytes, samples: int, key: str = MASTER_KEY) -> float:
    """Median time from sending a streamed request to receiving its first token (the first event with
    text, not the role-only opener: a gateway that holds a stream until its first token is timed to the
    same event as the direct call), one request at a time on a kept-alive connection. The client is a
    plain socket, so its own cost and noise are a few µs; it runs on core 1 with the upstream and wrk,
    never on the gateway's core."""
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})
    try:
        return _ttft_ms(url, body, samples, key)
    finally:
        os.sched_setaffinity(0, affinity)


def _ttft_ms(url: str, body: bytes, samples: int, key: str) -> float:
    parts = urlsplit(url)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nhost: {parts.netloc}\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    times = []
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(samples + 20):
            started = time.perf_counter()
            sock.sendall(request)
            received, first = b"", None
            while not _complete(received):
                data = sock.recv(1 << 16)
                if not data:
                    raise RuntimeError(f"{url} closed the connection")
                received += data
                if first is None and _FIRST_TOKEN.search(received):
                    first = time.perf_counter() - started
            if first is None or not received.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{url} answered without a token: {received[:200]!r}")
            times.append(first * 1000)
    return statistics.median(times[20:])


def _complete(response: bytes) -> bool:
    """Whether `response` (head and body so far) is a whole HTTP/1.1 response, chunked or by length."""
    head_end = response.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = response[:head_end].lower()
    length = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
    if length:
        return len(response) - head_end - 4 >= int(length.group(1))
    return response.endswith(b"\r\n0\r\n\r\n")


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Figures:
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(value)

    def median(self, name: str) -> float:
        return statistics.median(self.values[name])


@dataclass
class Leg:
    """One side of the comparison: where its requests go and what they ask for."""

    label: str
    json_url: str
    sse_url: str
    paced_url: str
    plain: bytes
    streamed: bytes
    paced: bytes
    evented_url: str
    evented: bytes
    key: str = MASTER_KEY


def measure(leg: Leg, args: argparse.Namespace, figures: Figures, workdir: Path) -> None:
    d, label, key = args.duration, leg.label, leg.key
    c1 = wrk(leg.json_url, leg.plain, 1, d, workdir, key)
    written = ledger_rows(workdir)
    c64 = wrk(leg.json_url, leg.plain, 64, d, workdir, key)
    if label == "gateway" and written >= 0:  # how far the ledger's database writes trail the requests, at the end
        figures.add("ledger lag", c64.rps * round(d) - (ledger_rows(workdir) - written))
    figures.add(f"{label} c1 p50", c1.p50_ms)
    figures.add(f"{label} c1 p99", c1.p99_ms)
    figures.add(f"{label} c64 p50", c64.p50_ms)
    figures.add(f"{label} c64 p99", c64.p99_ms)
    figures.add(f"{label} rps", c64.rps)
    streams = wrk(leg.sse_url, leg.streamed, 64, d, workdir, key)
    figures.add(f"{label} streams/s", streams.rps)
    figures.add(f"{label} stream p50", streams.p50_ms)
    figures.add(f"{label} stream p99", streams.p99_ms)
    evented = wrk(leg.evented_url, leg.evented, 64, d, workdir, key)
    figures.add(f"{label} evented streams/s", evented.rps)
    figures.add(f"{label} evented p50", evented.p50_ms)
    figures.add(f"{label} evented p99", evented.p99_ms)
    figures.add(f"{label} errors", c1.errors + c64.errors + streams.errors + evented.errors)
    figures.add(f"{label} ttft", ttft_ms(leg.sse_url, leg.streamed, args.ttft_samples, key))
    figures.add(f"{label} paced ttft", ttft_ms(leg.paced_url, leg.paced, args.ttft_samples, key))


def one_run(args: argparse.Namespace, figures: Figures, workdir: Path) -> None:
    upstream_port, gateway_port = free_port(), free_port()
    starter: Callable[[Path, int], Upstream] = start_nginx if args.upstream == "nginx" else start_simulator
    upstream = starter(workdir, upstream_port)
    # A provider streams token by token: the first event arrives alone. nginx sends all 24 at once, which
    # makes its time to first event the time to relay the whole stream; this upstream measures the first.
    paced = start_simulator(workdir, free_port(), tokens_per_second=PACED_TOKENS_PER_SECOND)
    evented = start_paced_upstream(free_port(), args.gap_ms)
    stages = [name for name in args.stages.split(",") if name] if args.stages else None
    gateway = start_gateway(
        workdir, upstream, args.upstream, gateway_port, paced, stages, evented, args.redis_url, args.database_url
    )
    bare: subprocess.Popen[bytes] | None = None
    try:
        direct_json = (
            f"{upstream.url}/json/v1/chat/completions"
            if args.upstream == "nginx"
            else f"{upstream.url}/v1/chat/completions"
        )
        direct_sse = f"{upstream.url}/sse/v1/chat/completions" if args.upstream == "nginx" else direct_json
        direct_paced = f"{paced.url}/v1/chat/completions"
        direct_evented = f"{evented.url}/v1/chat/completions"
        streamed_direct = orjson.dumps(
            {"model": "bench-model", "messages": PROMPT, "stream": True, "stream_options": {"include_usage": True}}
        )
        plain = orjson.dumps({"model": "bench-json", "messages": PROMPT})
        streamed = orjson.dumps({"model": "bench-stream", "messages": PROMPT, "stream": True})
        paced_body = orjson.dumps({"model": "bench-paced", "messages": PROMPT, "stream": True})
        evented_body = orjson.dumps({"model": "bench-evented", "messages": PROMPT, "stream": True})
        direct = Leg(
            "direct",
            direct_json,
            direct_sse,
            direct_paced,
            orjson.dumps({"model": "bench-model", "messages": PROMPT}),
            streamed_direct,
            streamed_direct,
            direct_evented,
            streamed_direct,
        )
        via = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        key = MASTER_KEY if args.auth == "master" else virtual_key(gateway_port, limits=args.auth == "full")
        wrk(via, plain, 8, 2, workdir, key)  # warm the gateway's pools and caches
        measure(direct, args, figures, workdir)
        gateway_leg = Leg("gateway", via, via, via, plain, streamed, paced_body, via, evented_body, key)
        measure(gateway_leg, args, figures, workdir)
        figures.add("gateway peak rss", peak_rss_mb(gateway.pid))
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=30)
        if args.bare_proxy:  # the same loads through a hop with no gateway features, on the same core
            bare_port = free_port()
            bare = start_bare_proxy(
                bare_port,
                {
                    "bench-json": direct_json,
                    "bench-stream": direct_sse,
                    "bench-paced": direct_paced,
                    "bench-evented": direct_evented,
                },
            )
            hop = f"http://127.0.0.1:{bare_port}/v1/chat/completions"
            wrk(hop, plain, 8, 2, workdir)
            measure(Leg("bare", hop, hop, hop, plain, streamed, paced_body, hop, evented_body), args, figures, workdir)
            figures.add("bare peak rss", peak_rss_mb(bare.pid))
    finally:
        for process in (gateway, bare):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        upstream.process.send_signal(signal.SIGQUIT if args.upstream == "nginx" else signal.SIGTERM)
        upstream.process.wait(timeout=10)
        for process in (paced.process, evented.process):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)


_ROWS = (  # (figure, key, compared as a difference (added) or as a ratio)
    ("latency c=1 p50 (ms)", "c1 p50", "added"),
    ("latency c=1 p99 (ms)", "c1 p99", "added"),
    ("latency c=64 p50 (ms)", "c64 p50", "added"),
    ("latency c=64 p99 (ms)", "c64 p99", "added"),
    ("requests/s, c=64", "rps", "ratio"),
    ("streams/s (24 events at once), c=64", "streams/s", "ratio"),
    ("  stream p50 (ms)", "stream p50", "added"),
    ("  stream p99 (ms)", "stream p99", "added"),
    ("streams/s (24 paced events), c=64", "evented streams/s", "ratio"),
    ("  paced stream p50 (ms)", "evented p50", "added"),
    ("  paced stream p99 (ms)", "evented p99", "added"),
    ("time to first token c=1 (ms)", "ttft", "added"),
    ("  same, token-by-token upstream", "paced ttft", "added"),
)


def report(figures: Figures, args: argparse.Namespace) -> str:
    m = figures.median
    legs = ["gateway"] + (["bare"] if "bare rps" in figures.values else [])
    header = f"{'figure':36} {'direct':>10}" + "".join(f" {leg:>10} {'added/ratio':>12}" for leg in legs)
    if len(legs) > 1:
        header += f" {'gateway/bare':>13}"
    auth = {
        "full": "virtual key with key and team budgets, RPM/TPM/concurrency limits",
        "no-limits": "virtual key, no budget or limit",
        "master": "master key, no budget or limit",
    }[args.auth]
    state = f"Redis hot state ({args.redis_url})" if args.redis_url else "in-process hot state"
    store = "PostgreSQL ledger" if args.database_url and "postgres" in args.database_url else "SQLite ledger"
    lines = [
        f"medians of {args.runs} run(s); gateway{' and bare proxy' if len(legs) > 1 else ''} pinned to core 0, "
        "upstreams and wrk to core 1",
        f"gateway: {auth}; {state}; {store}; metrics; access log to a file; paced events {args.gap_ms} ms apart",
        "",
        header,
    ]
    for name, key, compare in _ROWS:
        direct = m(f"direct {key}")
        line = f"{name:36} {direct:10.3f}"
        for leg in legs:
            value = m(f"{leg} {key}")
            line += f" {value:10.3f} {(value - direct if compare == 'added' else value / direct):12.3f}"
        if len(legs) > 1:  # the gateway against the hop measured in the same run
            gateway, bare = m(f"gateway {key}"), m(f"bare {key}")
            line += f" {gateway / bare:13.3f}" if compare == "ratio" else f" {gateway - bare:+13.3f}"
        lines.append(line)
    rss = "".join(f" {m(f'{leg} peak rss'):10.1f} {'':>12}" for leg in legs)
    lines.append(f"{'peak RSS (MB)':36} {'':>10}" + rss)
    if "ledger lag" in figures.values:
        lines.append(f"{'ledger rows behind after c=64':36} {'':>10} {m('ledger lag'):10.0f}")
    errors = sum(sum(v) for k, v in figures.values.items() if "errors" in k)
    lines.append(f"{'errors (non-2xx or socket)':36} {errors:>10}")
    lines.append("gateway/bare: the gateway's figure over the bare hop's (ratios), or minus it (ms)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk load")
    parser.add_argument("--ttft-samples", type=int, default=300)
    parser.add_argument("--upstream", choices=("nginx", "simulator"), default="nginx")
    parser.add_argument(
        "--auth",
        choices=("full", "no-limits", "master"),
        default="full",
        help="full: a virtual key with key and team budgets and RPM/TPM/concurrency limits (the default); "
        "no-limits: a virtual key without them; master: the master key",
    )
    parser.add_argument("--virtual-key", action="store_true", help="the same as --auth no-limits (older name)")
    parser.add_argument("--gap-ms", type=float, default=1.0, help="ms between the paced upstream's events")
    parser.add_argument("--redis-url", help="hot state in this Redis (under a key prefix of the run's own)")
    parser.add_argument("--database-url", help="the gateway's store (default: a SQLite file in the run's folder)")
    parser.add_argument(
        "--no-bare-proxy",
        dest="bare_proxy",
        action="store_false",
        help="skip the bare hop (bench/bare_proxy.py: uvicorn, aiohttp, orjson; no gateway features)",
    )
    # --bare-proxy: the hop is measured by default now; the flag stays accepted
    parser.add_argument("--bare-proxy", dest="legacy_bare_proxy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--stages",
        default="",
        help="optional pipeline stages for the gateway leg, comma-separated (e.g. "
        "noop_request,noop_response,noop_chunks,noop_finish: the cost of each hook)",
    )
    parser.add_argument(
        "--translation",
        action="store_true",
        help="instead: an Anthropic-format upstream behind the OpenAI ingress vs a pass-through (bench/translation.py)",
    )
    parser.add_argument(
        "--unique-prompts",
        action="store_true",
        help="every wrk request its own prompt, on every leg (e.g. --stages response_cache: each request a miss)",
    )
    args = parser.parse_args()
    if args.unique_prompts:
        os.environ[UNIQUE_PROMPTS] = "1"
    if args.virtual_key:
        args.auth = "no-limits"
    if args.translation:
        import translation

        translation.run(args.runs, args.duration)
        return
    for tool in ("wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: apt-get install wrk nginx-light")
    figures = Figures()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="sluice-bench-") as workdir:
            one_run(args, figures, Path(workdir))
    print(report(figures, args))


if __name__ == "__main__":
    main()
