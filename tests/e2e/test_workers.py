"""`sluicegate serve --workers N`: several processes on one port under a supervising parent, sharing limits
through Redis, answering /metrics for all of them, replacing a killed worker, restarting one by one on
SIGHUP without a failed request, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, gateway_yaml, start_process

WINDOW = 15.0  # the RPM window: long enough that a burst of 16 requests fits in it on a loaded machine
RPM = 5
PROMPT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def post(gw: Proc, body: dict[str, object] = PROMPT) -> httpx.Response:
    # a new connection each time, so the kernel spreads the requests across the workers
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body, headers=AUTH, timeout=20)


def worker_of(response: httpx.Response) -> str:
    return response.headers["x-sluice-request-id"][:16]  # each process's ids carry its own prefix


def ledger_rows(workdir: Path) -> int:
    with sqlite3.connect(workdir / ".sluicegate" / "sluicegate.db") as db:
        return int(db.execute("select count(*) from spend_ledger where status = 200").fetchone()[0])


def start_workers(simulator: Proc, workdir: Path, count: int, prefix: str) -> Proc:
    """`serve --workers count` on the shared Redis (under its own key prefix), once every worker is up."""
    extra = f"""
redis:
  url: redis://127.0.0.1:6379/0
limits:
  key_prefix: {prefix}
  window_seconds: {WINDOW}
"""
    config = workdir / "gateway.yaml"
    config.write_text(gateway_yaml(simulator.url, extra).replace("ACCESS_LOG", str(workdir / "access.log")))
    port = free_port()
    proc = start_process(
        ["serve", "--config", str(config), "--port", str(port), "--workers", str(count)],
        port,
        workdir,
        "workers",
        env={"SLUICEGATE_MASTER_KEY": MASTER_KEY, "SIM_UPSTREAM_KEY": UPSTREAM_KEY},
        ready_path="/health/ready",
    )
    wait_for(lambda: len(children(proc.process.pid)) == count)
    return proc


@pytest.fixture(scope="module")
def workers(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, Path]]:
    workdir = tmp_path_factory.mktemp("workers")
    prefix = "sgtest-workers-" + secrets.token_hex(4)
    proc = start_workers(simulator, workdir, 2, prefix)
    yield proc, workdir
    proc.stop()
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def test_both_workers_serve_one_port_and_metrics_count_every_request(workers: tuple[Proc, Path]) -> None:
    gw, workdir = workers
    before = requests_counted(gw)
    responses = [post(gw) for _ in range(40)]
    assert [r.status_code for r in responses] == [200] * 40
    assert len({worker_of(r) for r in responses}) == 2  # 40 connections spread over both processes
    # whichever worker a scrape reaches, it counts the requests of both
    for _ in range(4):
        assert requests_counted(gw) - before == 40
    wait_for(lambda: ledger_rows(workdir) >= 40, timeout=15)


def requests_counted(gw: Proc) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "sluicegate_requests":
            for sample in family.samples:
                if sample.labels.get("model") == "gpt-4o-mini" and sample.labels.get("status") == "200":
                    total += sample.value
    return total


def test_a_key_rate_limit_holds_across_workers(workers: tuple[Proc, Path]) -> None:
    gw, _ = workers
    created = httpx.post(f"{gw.url}/admin/keys", json={"team": "workers", "rpm": RPM}, headers=AUTH, timeout=10).json()
    headers = {"authorization": f"Bearer {created['key']}"}  # a new key: its window is empty
    began = time.monotonic()
    burst = [httpx.post(f"{gw.url}/v1/chat/completions", json=PROMPT, headers=headers, timeout=20) for _ in range(16)]
    statuses = [r.status_code for r in burst]
    assert time.monotonic() - began < WINDOW, "the burst outlasted the window: the machine is too slow for it"
    assert statuses.count(200) == RPM, statuses
    assert statuses.count(429) == 16 - RPM
    assert len({worker_of(r) for r in burst}) == 2


def test_a_killed_worker_is_replaced_and_no_answer_is_missing_from_the_ledger(workers: tuple[Proc, Path]) -> None:
    gw, workdir = workers
    victims = children(gw.process.pid)
    victim = min(victims)
    answered = ledger_rows(workdir)
    os.kill(victim, signal.SIGKILL)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=2)
    for _ in range(20):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    answered += 20
    wait_for(lambda: len(children(gw.process.pid) - victims) == 1)  # a replacement
    assert victim not in children(gw.process.pid)
    wait_for(lambda: ledger_rows(workdir) >= answered, timeout=20)
    assert "worker 0" in gw.logs() or "worker 1" in gw.logs()  # the parent said what happened


def test_sighup_restarts_every_worker_without_a_failed_request(workers: tuple[Proc, Path]) -> None:
    gw, _ = workers
    old = children(gw.process.pid)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key=MASTER_KEY, max_retries=2)
    gw.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    served = 0
    while time.monotonic() < deadline:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        served += 1
        current = children(gw.process.pid)
        if len(current) == 2 and not current & old:
            break
    assert not children(gw.process.pid) & old, "the old workers are still there"
    assert served > 0


def test_sigterm_stops_every_worker_and_exits_zero(simulator: Proc, tmp_path: Path) -> None:
    proc = start_workers(simulator, tmp_path, 3, f"sgtest-workers-stop-{secrets.token_hex(4)}")
    pids = children(proc.process.pid)
    proc.process.send_signal(signal.SIGTERM)
    assert proc.process.wait(timeout=30) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in (Path(f"/proc/{pid}") / "stat").read_text().split()[2]


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--workers", "2"], 1, "server.workers > 1 needs redis.url"),
        (["--demo", "--workers", "2"], 2, "use --workers 1"),
        (["--workers", "0"], 2, "--workers must be at least 1"),
    ],
)
def test_workers_refused_without_shared_state(
    simulator: Proc, tmp_path: Path, args: list[str], status: int, message: str
) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(gateway_yaml(simulator.url).replace("ACCESS_LOG", str(tmp_path / "access.log")))
    command = [sys.executable, "-m", "sluicegate", "serve", "--port", str(free_port()), *args]
    if "--demo" not in args:
        command += ["--config", str(config)]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "SLUICEGATE_MASTER_KEY": MASTER_KEY, "SIM_UPSTREAM_KEY": UPSTREAM_KEY},
    )
    assert done.returncode == status
    assert message in done.stderr
    assert "Traceback" not in done.stderr
