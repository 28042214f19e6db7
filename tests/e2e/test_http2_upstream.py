"""End to end over HTTP/2: the gateway reaches the simulator over TLS with h2 (hypercorn serving it), for a
provider configured with `http2: true`; the official SDK sees ordinary replies and streams."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import trustme
from openai import OpenAI

from tests.conftest import MASTER_KEY, SIMULATOR_YAML, UPSTREAM_KEY, Proc, free_port, start_process

_SERVE = """
import asyncio, sys
from hypercorn.asyncio import serve
from hypercorn.config import Config
from sluicegate.providers.simulator import create_app, load_simulator_config

config = Config()
config.bind = [f"127.0.0.1:{sys.argv[1]}"]
config.certfile = config.keyfile = sys.argv[2]
config.alpn_protocols = ["h2", "http/1.1"]
config.loglevel = "WARNING"
asyncio.run(serve(create_app(load_simulator_config(sys.argv[3])), config))
"""


@pytest.fixture(scope="module")
def h2_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, str]]:
    workdir = tmp_path_factory.mktemp("http2")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(workdir / "server.pem"))
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    (workdir / "simulator.yaml").write_text(SIMULATOR_YAML)
    sim_port = free_port()
    simulator = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(sim_port), str(workdir / "server.pem"), str(workdir / "simulator.yaml")],
        stdout=(workdir / "simulator.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    sim_url = f"https://127.0.0.1:{sim_port}"
    config = workdir / "gateway.yaml"
    config.write_text(
        f"""
providers:
  sim:
    kind: openai
    base_url: {sim_url}/v1
    api_key_env: SIM_UPSTREAM_KEY
    http2: true
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: gpt-4o-mini-slow
    deployments: [{{provider: sim, model: slow-model}}]
"""
    )
    port = free_port()
    try:
        trust = ssl.create_default_context(cafile=str(workdir / "ca.pem"))
        deadline = time.monotonic() + 20
        while True:  # hypercorn is up once it answers over TLS
            try:
                httpx.get(f"{sim_url}/_sim/stats", verify=trust, timeout=1)
                break
            except httpx.HTTPError:
                if simulator.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / "simulator.out").read_text()) from None
                time.sleep(0.05)
        gateway = start_process(
            ["serve", "--config", str(config), "--port", str(port)],
            port,
            workdir,
            "gateway",
            env={
                "SLUICEGATE_MASTER_KEY": MASTER_KEY,
                "SIM_UPSTREAM_KEY": UPSTREAM_KEY,
                "SSL_CERT_FILE": str(workdir / "ca.pem"),  # the gateway trusts the test's own CA
            },
            ready_path="/health/ready",
        )
        yield gateway, str(sim_port)
        gateway.stop()
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)


def connections_to(port: str) -> int:
    """Established TCP connections to the simulator's port (the gateway is the only client here)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True)
    return len(out.stdout.splitlines())


def test_replies_and_streams_over_http2(h2_gateway: tuple[Proc, str]) -> None:
    gateway, _ = h2_gateway
    client = OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content and reply.usage is not None and reply.usage.completion_tokens > 0
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_calls_in_flight_share_one_connection(h2_gateway: tuple[Proc, str]) -> None:
    gateway, sim_port = h2_gateway
    client = OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)

    def slow_call(_: int) -> int:  # slow-model streams for about 1.5 s: the eight calls overlap
        stream = client.chat.completions.create(
            model="gpt-4o-mini-slow", messages=[{"role": "user", "content": "Hello"}], stream=True
        )
        return sum(1 for _ in stream)

    with ThreadPoolExecutor(8) as pool:
        calls = [pool.submit(slow_call, n) for n in range(8)]
        time.sleep(0.8)
        in_flight = connections_to(sim_port)
        assert all(call.result(timeout=30) > 0 for call in calls)
    assert in_flight == 1  # over HTTP/1.1 this would be one socket per call
