"""Configurations that cannot work fail loudly, and `serve` never hangs: one line and a non-zero exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.conftest import MASTER_KEY, free_port

PROVIDER = "providers:\n  p: {kind: openai, base_url: 'http://127.0.0.1:1/v1'}\n"


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k != "SLUICE_TEST_PROVIDER_KEY"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )


def test_check_config_names_unknown_fallback_and_downgrade_groups(tmp_path: Path) -> None:
    config = tmp_path / "refs.yaml"
    config.write_text(
        PROVIDER + "models:\n"
        "  - name: chat\n"
        "    deployments: [{provider: p, model: x}]\n"
        "    routing:\n"
        "      fallbacks: [chat-bakup]\n"
        "      fallbacks_by_error: {rate_limited: [embed]}\n"
        "  - name: embed\n"
        "    kind: embedding\n"
        "    deployments: [{provider: p, model: e}]\n"
        "budgets:\n"
        "  downgrade: {at: 0.9, to: cheap-chat}\n"
    )
    result = _run(["check-config", str(config)], tmp_path)
    assert result.returncode == 1
    assert f"{config}:7: models[0].routing.fallbacks[0]: unknown fallback model 'chat-bakup'" in result.stderr
    assert "models[0].routing.fallbacks_by_error.rate_limited[0]: fallback model 'embed' is a embedding model" in (
        result.stderr
    )
    assert f"{config}:13: budgets.downgrade.to: unknown downgrade target model 'cheap-chat'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_provider_secret_is_an_error_or_with_the_flag_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "secrets.yaml"
    config.write_text(
        "providers:\n"
        "  openai:\n"
        "    kind: openai\n"
        "    base_url: http://127.0.0.1:1/v1\n"
        "    api_key_env: SLUICE_TEST_PROVIDER_KEY\n"
        "models:\n  - name: m\n    deployments: [{provider: openai, model: x}]\n"
    )
    result = _run(["check-config", str(config)], tmp_path)
    assert result.returncode == 1
    assert f"{config}:5: providers.openai.api_key_env" in result.stderr
    assert "SLUICE_TEST_PROVIDER_KEY is not set" in result.stderr
    allowed = _run(["check-config", "--allow-missing-secrets", str(config)], tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert "warning:" in allowed.stderr and "provider 'openai'" in allowed.stderr
    present = _run(["check-config", str(config)], tmp_path, env={"SLUICE_TEST_PROVIDER_KEY": "sk-x"})
    assert present.returncode == 0, present.stderr
    serve = _run(
        ["serve", "--config", str(config), "--port", str(free_port())], tmp_path, {"SLUICEGATE_MASTER_KEY": MASTER_KEY}
    )
    assert serve.returncode == 1
    assert "SLUICE_TEST_PROVIDER_KEY is not set" in serve.stderr and "Traceback" not in serve.stderr


def test_empty_configuration_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("# nothing here yet\n")
    result = _run(["check-config", str(config)], tmp_path)
    assert result.returncode == 1
    assert "the file is empty" in result.stderr


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_serve_on_a_taken_port_exits_at_once_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for redis in ("", "redis:\n  url: redis://127.0.0.1:6379/0\n"):
            config = tmp_path / "taken.yaml"
            config.write_text(redis + PROVIDER + "models:\n  - name: m\n    deployments: [{provider: p, model: x}]\n")
            # generous for a loaded CI machine: before the fix it never returned at all
            result = _run(
                ["serve", "--config", str(config), "--port", str(port)],
                tmp_path,
                {"SLUICEGATE_MASTER_KEY": MASTER_KEY},
                timeout=30,
            )
            assert result.returncode == 1
            line = _one_line_error(result)
            assert f"cannot listen on 127.0.0.1:{port}: address already in use" in line


def test_serve_with_an_unreachable_database_exits_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "nodb.yaml"
    config.write_text(
        f"store:\n  database_url: postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test\n  timeout_seconds: 1\n"
        + PROVIDER
        + "models:\n  - name: m\n    deployments: [{provider: p, model: x}]\n"
    )
    result = _run(
        ["serve", "--config", str(config), "--port", str(free_port())],
        tmp_path,
        {"SLUICEGATE_MASTER_KEY": MASTER_KEY},
        timeout=30,
    )
    assert result.returncode == 1
    assert _one_line_error(result).startswith("sluicegate serve: start-up failed:")
