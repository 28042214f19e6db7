"""`sluicegate top --once` against a running gateway: traffic rates from two scrapes, spend and budget burn,
deployment health for the master key, and none of it for a key that may not see it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import MASTER_KEY, Proc

AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def top(gw: Proc, key: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "top", "--url", gw.url, "--key", key, "--once", "--interval", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "160"},
    )


def test_top_shows_traffic_spend_budgets_and_deployments(gateway: Proc, tmp_path: Path) -> None:
    team = f"top-{os.getpid()}"
    assert httpx.post(f"{gateway.url}/admin/teams", json={"id": team, "budget_usd": "50"}, headers=AUTH).is_success
    key = httpx.post(f"{gateway.url}/admin/keys", json={"team": team}, headers=AUTH).json()["key"]
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=20) as client:
            while not stop.is_set():
                client.post(
                    f"{gateway.url}/v1/chat/completions",
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
                )
                time.sleep(0.02)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(0.5)
        done = top(gateway, MASTER_KEY, tmp_path)
    finally:
        stop.set()
        worker.join()
    assert done.returncode == 0, done.stderr
    out = done.stdout
    head = out.splitlines()[0]
    rate = float(head.split("requests/s")[0].split()[-1].replace(",", ""))
    assert rate > 1  # the traffic thread sends tens a second
    assert "gpt-4o-mini" in out
    assert team in out and "$50.00" in out  # its monthly budget, with its burn
    assert "sim/gpt-4o-mini" in out and "closed" in out


def test_top_for_a_viewer_shows_no_deployments(gateway: Proc, tmp_path: Path) -> None:
    team = f"top-viewer-{os.getpid()}"
    httpx.post(f"{gateway.url}/admin/teams", json={"id": team}, headers=AUTH)
    viewer = httpx.post(f"{gateway.url}/admin/keys", json={"team": team, "role": "viewer"}, headers=AUTH).json()
    done = top(gateway, viewer["key"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "shown to the master key only" in done.stdout


def test_top_without_a_key_or_gateway_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SLUICEGATE_ADMIN_KEY", "SLUICEGATE_MASTER_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "top", "--url", "http://127.0.0.1:9", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "give --key" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", "top", "--url", "http://127.0.0.1:9", "--key", "k", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 1 and "cannot read http://127.0.0.1:9" in done.stderr
    assert "Traceback" not in done.stderr
