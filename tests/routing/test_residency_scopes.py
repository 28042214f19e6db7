"""Data residency set on a team, tenant or key: held through strategy, retry and fallback, or refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

GROUPS = """
  - name: rs-geo
    routing: {strategy: cost, fallbacks: [rs-geo-backup]}
    deployments:
      - {provider: sim, model: rs-geo-us, region: us-east-1, price: {input: 1, output: 1}}
      - {provider: sim, model: rs-geo-eu, region: eu-west-1, price: {input: 5, output: 5}}
  - name: rs-geo-backup
    deployments:
      - {provider: sim, model: rs-geo-us2, region: us-west-2}
"""
MESSAGES = [{"role": "user", "content": "hello"}]
ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def gateway(simulator: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    proc = start_gateway(simulator, tmp_path_factory.mktemp("residency-scopes"), "residency-scopes-gateway", GROUPS)
    yield proc
    proc.stop()


def admin(gateway: Proc, method: str, path: str, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    response = httpx.request(method, f"{gateway.url}/admin/{path}", json=body, headers=ADMIN, timeout=10)
    assert response.status_code == status, response.text
    return dict(response.json())


def chat(gateway: Proc, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "rs-geo", "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def test_team_restricted_to_eu_never_leaves_it_while_its_sibling_team_goes_anywhere(
    gateway: Proc, sim_control: httpx.Client
) -> None:
    admin(gateway, "POST", "tenants", {"id": "rs-acme"})
    team = admin(gateway, "POST", "teams", {"id": "rs-gdpr", "tenant": "rs-acme", "allowed_regions": ["eu"]})
    assert team["allowed_regions"] == ["eu"]
    admin(gateway, "POST", "teams", {"id": "rs-free", "tenant": "rs-acme"})
    eu_key = str(admin(gateway, "POST", "keys", {"team": "rs-gdpr"})["key"])
    free_key = str(admin(gateway, "POST", "keys", {"team": "rs-free"})["key"])

    assert chat(gateway, free_key).headers["x-sluice-deployment"] == "sim/rs-geo-us", "the cheapest, in the US"
    for _ in range(3):
        served = chat(gateway, eu_key)
        assert served.status_code == 200 and served.headers["x-sluice-deployment"] == "sim/rs-geo-eu"

    sim_control.put("/_sim/faults/rs-geo-eu", json={"faults": [{"type": "outage"}]})
    for _ in range(3):
        down = chat(gateway, eu_key)
        assert down.status_code >= 500, "no retry or fallback out of the EU"
        assert down.json()["error"]["message"]
        assert down.headers.get("x-sluice-deployment", "sim/rs-geo-eu") == "sim/rs-geo-eu"
    sim_control.put("/_sim/faults/rs-geo-us", json={"faults": [{"type": "outage"}]})
    rescued = chat(gateway, free_key)
    assert rescued.status_code == 200, rescued.text
    assert rescued.headers["x-sluice-deployment"] in ("sim/rs-geo-eu", "sim/rs-geo-us2")


def test_restrictions_that_do_not_overlap_refuse_every_request_naming_the_conflict(gateway: Proc) -> None:
    admin(gateway, "POST", "tenants", {"id": "rs-eu-corp", "allowed_regions": ["eu"]})
    admin(gateway, "POST", "teams", {"id": "rs-eu-team", "tenant": "rs-eu-corp"})
    created = admin(gateway, "POST", "keys", {"team": "rs-eu-team", "allowed_regions": ["us"]})
    refused = chat(gateway, str(created["key"]))
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "region_conflict"
    assert "tenant 'rs-eu-corp' allows eu" in error["message"] and "allows us" in error["message"]

    fixed = admin(gateway, "PATCH", f"keys/{created['key_id']}", {"allowed_regions": ["eu-west-1"]}, status=200)
    assert fixed["allowed_regions"] == ["eu-west-1"]
    served = chat(gateway, str(created["key"]))
    assert served.status_code == 200 and served.headers["x-sluice-deployment"] == "sim/rs-geo-eu"
    shown = admin(gateway, "GET", "tenants/rs-eu-corp", {}, status=200)
    assert shown["allowed_regions"] == ["eu"]


def cli(*args: str, gateway: Proc, cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "sluicegate", *args, "--url", gateway.url, "--key", MASTER_KEY, "--json"],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_cli_regions_flag_on_tenants_teams_and_keys(gateway: Proc, tmp_path: Path) -> None:
    tenant = cli("tenants", "create", "rs-cli", "--regions", "eu,us-east-1", gateway=gateway, cwd=tmp_path)
    assert tenant["allowed_regions"] == ["eu", "us-east-1"]
    team = cli("teams", "create", "rs-cli-team", "--tenant", "rs-cli", "--regions", "eu", gateway=gateway, cwd=tmp_path)
    assert team["allowed_regions"] == ["eu"]
    key = cli("keys", "create", "--team", "rs-cli-team", "--regions", "eu-west-1", gateway=gateway, cwd=tmp_path)
    assert key["allowed_regions"] == ["eu-west-1"]
    assert chat(gateway, str(key["key"])).headers["x-sluice-deployment"] == "sim/rs-geo-eu"
