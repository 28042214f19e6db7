"""Shared fixtures: real simulator and gateway processes on free loopback ports."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

MASTER_KEY = "sk-test-master-0123456789abcdef"
UPSTREAM_KEY = "sk-upstream-secret-do-not-log-42"

# Whole virtual keys (prefix + 43 characters of base62), the master key and the provider credential: none
# may appear in anything a gateway or simulator wrote (logs, access logs, spool, ledger, rejected rows).
_KEY_MATERIAL = re.compile(
    rb"sk-sluice-[A-Za-z0-9]{43}(?![A-Za-z0-9])|"
    + re.escape(MASTER_KEY.encode())
    + rb"|"
    + re.escape(UPSTREAM_KEY.encode())
)
_WRITTEN_BY_TESTS = {".yaml", ".yml", ".py", ".pem", ".key", ".crt"}  # configs and certificates the tests made


def key_material_in(root: Path) -> list[str]:
    """Where key material appears in the files under `root` that the processes under test wrote."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or path.suffix in _WRITTEN_BY_TESTS:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        match = _KEY_MATERIAL.search(data)
        if match:
            found.append(f"{path.relative_to(root)}: {match.group()[:14].decode(errors='replace')}...")
    return found


@pytest.fixture(scope="session", autouse=True)
def no_key_material_left_behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole session: a secrets scan over everything its gateways and simulators left on disk."""
    yield
    found = key_material_in(tmp_path_factory.getbasetemp())
    assert not found, "key material written to disk:\n" + "\n".join(found[:20])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


@dataclass
class Proc:
    process: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_process(
    args: list[str],
    port: int,
    workdir: Path,
    name: str,
    env: dict[str, str] | None = None,
    ready_path: str = "/health/live",
    timeout: float = 20.0,
) -> Proc:
    stdout = workdir / f"{name}.out"
    stderr = workdir / f"{name}.err"
    full_env = {**os.environ, **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "sluicegate", *args],
        stdout=stdout.open("wb"),
        stderr=stderr.open("wb"),
        env=full_env,
        cwd=workdir,  # the embedded store (.sluicegate/) lands in the test's own folder
    )
    proc = Proc(process, port, stdout, stderr)
    try:
        wait_http(f"{proc.url}{ready_path}", process, timeout)
    except RuntimeError:
        proc.stop()
        raise RuntimeError(f"{name} did not start:\n{proc.logs()}") from None
    return proc


SIMULATOR_YAML = f"""
seed: 7
api_key: {UPSTREAM_KEY}
default:
  ttft_ms: 0
  latency_ms: 0
  tokens_per_second: 0
  output_tokens: {{min: 8, max: 24}}
models:
  slow-model:
    ttft_ms: 20
    tokens_per_second: 40
    output_tokens: 60
"""


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    workdir = tmp_path_factory.mktemp("simulator")
    config = workdir / "simulator.yaml"
    config.write_text(SIMULATOR_YAML)
    port = free_port()
    proc = start_process(
        ["simulator", "--port", str(port), "--config", str(config)],
        port,
        workdir,
        "simulator",
        ready_path="/_sim/stats",
    )
    yield proc
    proc.stop()


def gateway_yaml(simulator_url: str, extra: str = "") -> str:
    return f"""
server:
  max_body_bytes: 65536
  graceful_shutdown_seconds: 20
  access_log:
    path: ACCESS_LOG
providers:
  sim:
    kind: openai
    base_url: {simulator_url}/v1
    api_key_env: SIM_UPSTREAM_KEY
  sim-fast-timeout:
    kind: openai_compatible
    base_url: {simulator_url}/v1
    api_key_env: SIM_UPSTREAM_KEY
    timeouts: {{connect: 1, first_byte: 1, idle: 1, total: 3}}
  sim-without-key:
    kind: openai
    base_url: {simulator_url}/v1
models:
  - name: gpt-4o-mini
    deployments:
      - provider: sim
        model: gpt-4o-mini
  - name: faulty
    deployments:
      - provider: sim
        model: faulty-model
    routing:  # these tests check how each failure reaches the client, so the breaker must not step in
      breaker: {{enabled: false}}
  - name: slow
    deployments:
      - provider: sim
        model: slow-model
  - name: hangs
    deployments:
      - provider: sim-fast-timeout
        model: hang-model
  - name: no-credential
    deployments:
      - provider: sim-without-key
        model: gpt-4o-mini
  - name: text-embedding-3-small
    kind: embedding
    deployments:
      - provider: sim
        model: text-embedding-3-small
{extra}
"""


def start_gateway(
    simulator: Proc,
    workdir: Path,
    name: str = "gateway",
    extra: str = "",
    graceful_seconds: float = 20,
    timeout: float = 20.0,
) -> Proc:
    access_log = workdir / f"{name}-access.log"
    config = workdir / f"{name}.yaml"
    text = gateway_yaml(simulator.url, extra).replace("ACCESS_LOG", str(access_log))
    config.write_text(text.replace("graceful_shutdown_seconds: 20", f"graceful_shutdown_seconds: {graceful_seconds}"))
    port = free_port()
    return start_process(
        ["serve", "--config", str(config), "--port", str(port)],
        port,
        workdir,
        name,
        env={"SLUICEGATE_MASTER_KEY": MASTER_KEY, "SIM_UPSTREAM_KEY": UPSTREAM_KEY},
        ready_path="/health/ready",
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("gateway"))
    yield proc
    proc.stop()


@pytest.fixture
def sim_control(simulator: Proc) -> Iterator[httpx.Client]:
    """The simulator's control API; clears injected faults after each test."""
    with httpx.Client(base_url=simulator.url, timeout=5) as client:
        yield client
        client.delete("/_sim/faults")
