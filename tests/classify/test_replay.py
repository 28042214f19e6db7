"""`sluicegate replay`: given the live configuration it reproduces the live decisions exactly, from the
requests or from the ledger; under a new configuration it says which requests change tier."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sluicegate.classify.evaluate import load
from sluicegate.cli import main
from sluicegate.config.loader import parse_config
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc

DATA = Path(__file__).resolve().parent.parent / "data" / "classify" / "prompts.jsonl"


def _config(tmp_path: Path, simulator_url: str, pool: str) -> str:
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
    pool: {pool}
"""


async def test_replay_reproduces_the_live_decisions_and_finds_what_a_new_pool_changes(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    live_yaml = _config(tmp_path, simulator.url, "[mini, omni, opus]")
    gateway = Gateway(parse_config(live_yaml), master_key="sk-master")
    rows = load(DATA, "test")[::16][:24]  # a spread of tasks, tiers and languages
    captured = []
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=GatewayApp(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client:
            for row in rows:
                body = {"model": "auto", "messages": row.messages, "max_tokens": 30}
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-master"}
                )
                assert response.status_code == 200, response.text
                reason = response.headers["x-sluice-route-reason"]
                group = reason.split("(", 1)[1].split(")", 1)[0]
                captured.append({"body": body, "route_tier": response.headers["x-sluice-tier"], "group": group})
    finally:
        await gateway.stop()
    assert len({c["route_tier"] for c in captured}) == 3  # the spread reaches every tier
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(c) + "\n" for c in captured))
    live = tmp_path / "live.yaml"
    live.write_text(live_yaml)

    assert main(["replay", "--requests", str(requests), "--config", str(live)]) == 0
    out = capsys.readouterr().out
    assert f"requests        {len(rows)} (0 for models" in out
    assert "changed         0 requests" in out

    assert main(["replay", "--ledger", str(tmp_path / "gw.db"), "--config", str(live)]) == 0
    out = capsys.readouterr().out
    assert f"requests        {len(rows)} (0 for models" in out and "changed         0 requests" in out

    cheaper = tmp_path / "cheaper.yaml"
    cheaper.write_text(_config(tmp_path, simulator.url, "[mini, omni]"))  # no flagship any more
    changes = tmp_path / "changes.jsonl"
    assert main(["replay", "--requests", str(requests), "--config", str(cheaper), "--changes", str(changes)]) == 0
    out = capsys.readouterr().out
    flagship = sum(c["route_tier"] == "flagship" for c in captured)
    assert f"changed         {flagship} requests" in out
    moved = [json.loads(line) for line in changes.read_text().splitlines()]
    assert len(moved) == flagship and all(m["from"]["tier"] == "flagship" and m["to"]["group"] == "omni" for m in moved)
    assert main(["replay", "--ledger", str(tmp_path / "gw.db"), "--config", str(cheaper)]) == 0
    assert f"changed         {flagship} requests" in capsys.readouterr().out


def test_replay_names_a_line_that_is_not_a_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(_config(tmp_path, "http://127.0.0.1:9", "[mini, omni, opus]"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}\n{"model": "auto"}\n')
    assert main(["replay", "--requests", str(bad), "--config", str(config)]) == 1
    assert "bad.jsonl:2: not a chat request" in capsys.readouterr().err


async def test_captured_requests_are_redacted_rotated_and_replay_to_the_live_decisions(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    capture = tmp_path / "capture.jsonl"
    live_yaml = _config(tmp_path, simulator.url, "[mini, omni, opus]")
    config = parse_config(live_yaml + f'capture: {{path: "{capture}", share: 1.0, max_bytes: 4096, keep: 2}}\n')
    gateway = Gateway(config, master_key="sk-master")
    rows = load(DATA, "train")[::40][:20]
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=GatewayApp(gateway))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=30) as client:
            secret = [{"role": "user", "content": "Email jane.doe@example.com the invoice total, please."}]
            for messages in [secret] + [r.messages for r in rows]:
                body = {"model": "auto", "messages": messages, "max_tokens": 20}
                response = await client.post(
                    "/v1/chat/completions", json=body, headers={"authorization": "Bearer sk-master"}
                )
                assert response.status_code == 200, response.text
    finally:
        await gateway.stop()  # the writer drains what was captured
    files = sorted(tmp_path.glob("capture.jsonl*"))
    assert [f.name for f in files] == ["capture.jsonl", "capture.jsonl.1", "capture.jsonl.2"]  # rotated, 2 kept
    assert all(f.stat().st_size <= 4096 for f in files)
    lines = [json.loads(line) for f in reversed(files) for line in f.read_text().splitlines()]
    text = json.dumps(lines)
    assert "jane.doe@example.com" not in text
    assert all(line["body"]["model"] == "auto" and line["route_tier"] for line in lines)
    live = tmp_path / "live.yaml"
    live.write_text(live_yaml)
    assert main(["replay", "--requests", str(files[0]), "--config", str(live)]) == 0
    assert "changed         0 requests" in capsys.readouterr().out
