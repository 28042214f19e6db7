"""One CLI convention, as a user meets it: the installed `sluicegate` script run in a fresh directory.

Commands that talk to a gateway take --url/--key (SLUICEGATE_URL/SLUICEGATE_KEY); commands that work on a
database directly require it to be named; errors are one line (a traceback only with --debug); lists print
as a table, JSON or CSV, with times in ISO 8601, never raw epochs.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import MASTER_KEY, Proc, free_port

SCRIPT = [shutil.which("sluicegate") or ""] if shutil.which("sluicegate") else [sys.executable, "-m", "sluicegate"]
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith("SLUICEGATE_")}
EPOCH = re.compile(r"\b1[6-9]\d{8}(\.\d+)?\b")  # seconds since 1970, as a raw number


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCRIPT, *args], capture_output=True, text=True, cwd=cwd, env={**CLEAN, **env}, timeout=60)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_command_that_needs_a_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    for args in (("keys", "create", "--team", "t"), ("db", "upgrade")):
        line = one_line_error(run(*args, cwd=tmp_path))
        assert "--url" in line and "--database-url" in line, line
    assert list(tmp_path.iterdir()) == []  # no .sluicegate/sluicegate.db made up in the current directory


def test_an_unreachable_gateway_is_one_line_for_every_command(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for args in (
        ("keys", "disable", "key_x"),
        ("limits", "list"),
        ("chaos", "--model", "m", "--warmup", "0", "--duration", "0.1"),
    ):
        line = one_line_error(run(*args, "--url", closed, "--key", "k", cwd=tmp_path))
        assert "cannot reach the gateway" in line or "Connect" in line, (args, line)


def test_a_bad_database_is_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    bad = f"sqlite+aiosqlite:///{tmp_path}/a-file/store.db"
    line = one_line_error(run("db", "upgrade", "--database-url", bad, cwd=tmp_path))
    assert line.startswith("sluicegate db: ") and "a-file" in line
    debug = run("--debug", "db", "upgrade", "--database-url", bad, cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_keys_update_disable_enable_against_a_running_gateway(gateway: Proc, tmp_path: Path) -> None:
    env = {"SLUICEGATE_URL": gateway.url, "SLUICEGATE_KEY": MASTER_KEY}
    made = run("keys", "create", "--team", "cli-conv", "--expires", "30d", "--output", "json", cwd=tmp_path, **env)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {created['key']}"}

    def status() -> int:
        return httpx.post(f"{gateway.url}/v1/chat/completions", json=chat, headers=headers, timeout=30).status_code

    assert status() == 200
    assert run("keys", "disable", created["key_id"], cwd=tmp_path, **env).returncode == 0
    assert status() == 401
    assert run("keys", "enable", created["key_id"], cwd=tmp_path, **env).returncode == 0
    assert status() == 200
    updated = run(
        "keys", "update", created["key_id"], "--models", "text-embedding-*", "-o", "json", cwd=tmp_path, **env
    )
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["models"] == ["text-embedding-*"]
    assert status() in (403, 404)  # the chat model is no longer the key's to use
    nothing = run("keys", "update", created["key_id"], cwd=tmp_path, **env)
    assert "nothing to change" in one_line_error(nothing)

    table = run("keys", "list", "--team", "cli-conv", cwd=tmp_path, **env)
    as_csv = run("keys", "list", "--team", "cli-conv", "--output", "csv", cwd=tmp_path, **env)
    for done in (table, as_csv, updated):
        assert done.returncode == 0, done.stderr
        assert "HTTP Request" not in done.stderr and " INFO " not in done.stderr  # no HTTP client chatter
        assert not EPOCH.search(done.stdout), done.stdout
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in (29|30)d\)", table.stdout), table.stdout
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert row["key_id"] == created["key_id"] and row["expires_at"].startswith("20")


def test_limits_list_prints_times_not_epochs(gateway: Proc, tmp_path: Path) -> None:
    env = {"SLUICEGATE_URL": gateway.url, "SLUICEGATE_KEY": MASTER_KEY}
    team = run("teams", "create", "cli-limits", "-o", "json", cwd=tmp_path, **env)
    assert team.returncode == 0, team.stderr
    put = run("limits", "emergency", "team:cli-limits", "--rpm", "5", "--minutes", "30", cwd=tmp_path, **env)
    assert put.returncode == 0, put.stderr
    try:
        listed = run("limits", "list", cwd=tmp_path, **env)
        assert listed.returncode == 0, listed.stderr
        assert "team:cli-limits" in listed.stdout and not EPOCH.search(listed.stdout)
        assert re.search(r"T\d\d:\d\d:\d\dZ \(in (29|30)m\)", listed.stdout), listed.stdout
    finally:
        run("limits", "clear", "team:cli-limits", cwd=tmp_path, **env)


def test_a_missing_key_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    line = one_line_error(run("keys", "list", "--url", "http://127.0.0.1:9", cwd=tmp_path))
    assert "SLUICEGATE_KEY" in line
