"""Shadow mode: a candidate classifier and pool decide beside the live route on a share of requests; the
client gets the live decision, and `GET /admin/routing/shadow` reports agreement and projected cost."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc

EASY = "Hi! Thanks for the quick answer yesterday."
HARD = "Prove that there are infinitely many primes of the form 4k + 3, rigorously."


def _yaml(tmp_path: Path, simulator_url: str, shadow: str) -> str:
    return f"""
server: {{access_log: {{enabled: false}}}}
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/gw.db", spool_dir: "{tmp_path}/spool"}}
providers:
  sim: {{kind: openai, base_url: "{simulator_url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
  - name: omni
    deployments: [{{provider: sim, model: gpt-4o}}]
  - name: opus
    deployments: [{{provider: sim, model: claude-opus-4}}]
  - name: auto
    routing: {{strategy: auto}}
    pool: [mini, omni, opus]
classify: {{shadow: {shadow}}}
"""


async def test_a_candidate_pool_is_decided_beside_the_live_one_and_reported(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    config = parse_config(_yaml(tmp_path, simulator.url, "{share: 1.0, classifier: heuristic, pool: [mini, omni]}"))
    gateway = Gateway(config, master_key="sk-master")
    await gateway.start()
    auth = {"authorization": "Bearer sk-master"}
    try:
        transport = httpx.ASGITransport(app=GatewayApp(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client:
            tiers = []
            for text in (EASY, HARD, HARD + " Then generalise.", EASY + " Bye!"):
                body = {"model": "auto", "messages": [{"role": "user", "content": text}], "max_tokens": 20}
                response = await client.post("/v1/chat/completions", json=body, headers=auth)
                assert response.status_code == 200, response.text
                tiers.append(response.headers["x-sluice-tier"])
            assert gateway.auto_route is not None and gateway.auto_route.shadow is not None
            await gateway.auto_route.shadow.drain()
            report = (await client.get("/admin/routing/shadow", headers=auth)).json()
    finally:
        await gateway.stop()
    assert tiers == ["economy", "flagship", "flagship", "economy"]  # the live decisions were acted on
    assert report["enabled"] is True and report["decided"] == 4 and report["classifier"] == "heuristic"
    assert report["agreement"] == {"group": 0.5, "tier": 0.5}  # the candidate pool has no flagship
    cost = report["projected_cost_usd"]
    assert cost["shadow"] < cost["live"] and cost["difference"] < 0
    assert {"live": "flagship", "shadow": "balanced", "requests": 2} in report["tiers"]


async def test_without_shadow_the_report_says_it_is_off(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    gateway = Gateway(parse_config(_yaml(tmp_path, simulator.url, "{share: 0}")), master_key="sk-master")
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/admin/routing/shadow", headers={"authorization": "Bearer sk-master"})
    assert response.json() == {"enabled": False}
