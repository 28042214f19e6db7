"""What an operator sees: access log, metrics, health, graceful shutdown, config checks, the demo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import MASTER_KEY, UPSTREAM_KEY, Proc, free_port, start_gateway, start_process

SECRET_PROMPT = "the password is hunter2-swordfish"


def _access_lines(gateway: Proc, request_id: str, timeout: float = 3.0) -> dict[str, object]:
    log = Path(str(gateway.stdout).replace(".out", "-access.log"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                entry = json.loads(line)
                if entry["request_id"] == request_id:
                    return entry  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no access log line for {request_id}")


def test_access_log_has_one_structured_line_without_text_or_keys(gateway: Proc) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": SECRET_PROMPT}]
    )
    completion = raw.parse()
    entry = _access_lines(gateway, raw.headers["x-sluice-request-id"])
    assert entry["model"] == "gpt-4o-mini"
    assert entry["deployment"] == "sim/gpt-4o-mini"
    assert entry["status"] == 200
    assert entry["key_id"] == "master"
    assert entry["input_tokens"] == completion.usage.prompt_tokens  # type: ignore[union-attr]
    assert entry["output_tokens"] == completion.usage.completion_tokens  # type: ignore[union-attr]
    assert isinstance(entry["latency_ms"], float) and isinstance(entry["ttft_ms"], float)
    everything = gateway.logs() + Path(str(gateway.stdout).replace(".out", "-access.log")).read_text()
    assert "hunter2" not in everything
    assert completion.choices[0].message.content not in everything  # type: ignore[operator]
    assert MASTER_KEY not in everything
    assert UPSTREAM_KEY not in everything


def test_metrics_count_requests_tokens_and_errors(gateway: Proc) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="unheard-of", messages=[{"role": "user", "content": "hi"}])
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'sluicegate_requests_total{endpoint="chat",model="gpt-4o-mini",status="200"}' in text
    assert 'sluicegate_requests_total{endpoint="chat",model="unknown",status="404"}' in text
    assert "unheard-of" not in text  # unknown names never become labels
    assert 'sluicegate_tokens_total{kind="output",model="gpt-4o-mini"}' in text
    assert "sluicegate_request_duration_seconds_bucket" in text
    # spend by model and team (the master key has no team)
    assert 'sluicegate_spend_tokens_total{kind="output",model="gpt-4o-mini",team="none"}' in text
    assert 'sluicegate_spend_usd_total{model="gpt-4o-mini",team="none"}' in text


def test_health_endpoints(gateway: Proc) -> None:
    assert httpx.get(f"{gateway.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/ready").json()
    assert ready["status"] == "ready"
    assert {"name": "gpt-4o-mini", "deployments": ["sim/gpt-4o-mini"]} in ready["models"]


def test_sigterm_lets_inflight_streams_finish(simulator: Proc, tmp_path: Path) -> None:
    gateway = start_gateway(simulator, tmp_path, "drain")
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0)
    received: list[str] = []
    finish: list[str | None] = []

    def consume() -> None:
        stream = client.chat.completions.create(
            model="slow", messages=[{"role": "user", "content": "tell me a story"}], stream=True
        )
        for chunk in stream:
            if chunk.choices:
                received.append(chunk.choices[0].delta.content or "")
                if chunk.choices[0].finish_reason:
                    finish.append(chunk.choices[0].finish_reason)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 5
    while len(received) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    gateway.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{gateway.url}/health/live", timeout=1)  # no longer accepting
    thread.join(timeout=15)
    assert finish == ["length"] or finish == ["stop"], "the in-flight stream ran to its end"
    assert len(received) >= 60
    assert gateway.process.wait(timeout=10) == 0


def test_check_config_names_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "providers:\n"
        "  p:\n"
        "    kind: openai\n"
        "    base_url: http://127.0.0.1:1/v1\n"
        "    colour: blue\n"
        "models:\n"
        "  - name: m\n"
        "    deployments:\n"
        "      - provider: nowhere\n"
        "        model: x\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", "check-config", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"{config}:5: providers.p.colour: unknown key" in result.stderr


def test_check_config_reports_cross_references_and_accepts_good_files(tmp_path: Path) -> None:
    bad = tmp_path / "refs.yaml"
    bad.write_text(
        "providers: {}\nmodels:\n  - name: m\n    deployments:\n      - provider: nowhere\n        model: x\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", "check-config", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert f"{bad}:5: models[0].deployments[0].provider: unknown provider 'nowhere'" in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text(
        "providers:\n  p: {kind: openai, base_url: 'http://127.0.0.1:1/v1'}\n"
        "models:\n  - name: m\n    deployments: [{provider: p, model: x}]\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "sluicegate", "check-config", str(good)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_demo_serves_with_the_demo_key(tmp_path: Path) -> None:
    port = free_port()
    demo = start_process(["serve", "--demo", "--port", str(port)], port, tmp_path, "demo", ready_path="/health/ready")
    try:
        client = openai.OpenAI(base_url=f"{demo.url}/v1", api_key="sk-sluice-demo", max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert completion.choices[0].message.content
        deadline = time.monotonic() + 3
        while "sk-sluice-demo" not in demo.stdout.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        banner = demo.stdout.read_text()
        assert f"http://127.0.0.1:{port}/v1" in banner and "curl" in banner
        # the access log goes to its own file, not between the banner's lines
        assert "access log .sluicegate/demo-access.log" in banner
        access = tmp_path / ".sluicegate" / "demo-access.log"
        while not access.exists() and time.monotonic() < deadline + 3:
            time.sleep(0.05)
        time.sleep(0.5)  # the access log is flushed every 0.25 s
        assert '"model":"gpt-4o-mini"' in access.read_text()
        assert not [line for line in demo.stdout.read_text().splitlines() if line.startswith("{")]
    finally:
        demo.stop()
