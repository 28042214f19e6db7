"""Operator actions for a cost spike, through the CLI against a running gateway: an emergency rate limit
on a key, economy mode on a team (only the cheapest model group), both with an expiry and cleared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

EXTRA = """
  - name: bargain
    deployments:
      - provider: sim
        model: gpt-4o-mini
        id: sim/bargain
        price: {input: 0.01, output: 0.01}
"""
MASTER = {"authorization": f"Bearer {MASTER_KEY}"}
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


@pytest.fixture(scope="module")
def gw(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    workdir = tmp_path_factory.mktemp("operator")
    proc = start_gateway(simulator, workdir, "operator", EXTRA)
    proc.access_log = workdir / "operator-access.log"  # type: ignore[attr-defined]
    yield proc
    proc.stop()


def access_entries(gw: Proc, field: str) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        lines = gw.access_log.read_text().splitlines()  # type: ignore[attr-defined]
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        found = [e for e in entries if field in e]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def cli(gw: Proc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sluicegate", "limits", *args, "--url", gw.url],
        env={**os.environ, "SLUICEGATE_MASTER_KEY": MASTER_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_emergency_rate_limit_and_economy_mode(gw: Proc) -> None:
    created = httpx.post(f"{gw.url}/admin/keys", json={"team": "spiky"}, headers=MASTER, timeout=10)
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["key_id"]
    auth = {"authorization": f"Bearer {key}"}

    def chat() -> httpx.Response:
        return httpx.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=auth, timeout=10)

    assert chat().status_code == 200
    done = cli(gw, "emergency", f"key:{key_id}", "--rpm", "2", "--minutes", "5", "--reason", "cost spike")
    assert done.returncode == 0, done.stderr
    statuses = [chat() for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 429, 429]
    assert "emergency rate limit" in statuses[0].headers["x-sluice-operator-action"]
    assert statuses[2].json()["error"]["code"] == "rate_limit_exceeded"

    details = httpx.get(f"{gw.url}/admin/keys/{key_id}", headers=MASTER, timeout=10).json()
    assert [(a["rpm"], a["reason"]) for a in details["operator_actions"]] == [(2, "cost spike")]

    listed = cli(gw, "list")
    assert listed.returncode == 0 and f"key:{key_id}" in listed.stdout and "cost spike" in listed.stdout
    cleared = httpx.request(
        "DELETE", f"{gw.url}/admin/limits/overrides", json={"entity": f"key:{key_id}"}, headers=MASTER
    )
    assert cleared.json() == {"cleared": True}
    assert chat().status_code == 200

    assert cli(gw, "economy", "team:spiky", "--minutes", "5").returncode == 0
    team = httpx.get(f"{gw.url}/admin/teams/spiky", headers=MASTER, timeout=10).json()
    assert [a["economy"] for a in team["operator_actions"]] == [True]
    economy = chat()
    assert economy.status_code == 200
    assert economy.headers["x-sluice-economy-from"] == "gpt-4o-mini"
    assert economy.headers["x-sluice-deployment"] == "sim/bargain"
    assert cli(gw, "clear", "team:spiky").returncode == 0  # the CLI's way
    logged = access_entries(gw, "operator_action")
    assert any("emergency rate limit" in str(e["operator_action"]) for e in logged)
    assert any(e.get("economy_from") == "gpt-4o-mini" for e in access_entries(gw, "economy_from"))
    assert chat().headers["x-sluice-deployment"] == "sim/gpt-4o-mini"


def test_operator_actions_need_the_master_key_and_a_valid_body(gw: Proc) -> None:
    url = f"{gw.url}/admin/limits/overrides"
    assert httpx.get(url, timeout=10).status_code == 401
    bad = httpx.put(url, json={"entity": "team:x", "minutes": 5}, headers=MASTER, timeout=10)
    assert bad.status_code == 400 and "rpm" in bad.json()["error"]["message"]
    bad = httpx.put(url, json={"entity": "nobody", "rpm": 1, "minutes": 5}, headers=MASTER, timeout=10)
    assert bad.status_code == 400 and "entity" in bad.json()["error"]["message"]


def test_operator_endpoints_are_documented_in_the_admin_openapi(gw: Proc) -> None:
    paths = httpx.get(f"{gw.url}/admin/openapi.json", headers=MASTER, timeout=10).json()["paths"]
    assert {"get", "put", "delete"} <= set(paths["/admin/limits/overrides"])
    assert "put" in paths["/admin/routing/breakers"] and "get" in paths["/admin/routing/deployments"]
