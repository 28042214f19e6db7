"""Optional stages from configuration: where each sits, that an unlisted one is never imported, and that
a gateway with a do-nothing stage on every hook answers as one without."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from pydantic import ValidationError

from sluicegate.config.loader import parse_config
from sluicegate.config.schema import GatewayConfig
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc

NOOPS = ["noop_request", "noop_response", "noop_chunks", "noop_finish"]


def test_an_unknown_or_repeated_stage_is_refused_with_its_name() -> None:
    with pytest.raises(ValidationError, match=r"unknown stage 'firewal'.*noop_request"):
        GatewayConfig.model_validate({"pipeline": {"stages": ["firewal"]}})
    with pytest.raises(ValidationError, match="'noop_finish' is listed twice"):
        GatewayConfig.model_validate({"pipeline": {"stages": ["noop_finish", "noop_finish"]}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        GatewayConfig.model_validate({"pipeline": {"stage": []}})


def test_each_configured_stage_takes_its_place_on_the_request_path() -> None:
    config = GatewayConfig.model_validate({"pipeline": {"stages": list(reversed(NOOPS))}})
    hooks = Gateway(config, master_key="sk-master", environ={}).pipeline.hooks()
    on_request = hooks["on_request"]
    assert on_request[on_request.index("auth") :] == ["auth", "decide", "noop_request", "admission", "route"]
    assert on_request[0] == "ledger_guard"  # first: nothing is served while the spool could not record it
    assert hooks["on_response"] == ["noop_response"]
    assert hooks["on_chunk"] == ["meter"]  # the meter before any chunk stage
    assert hooks["on_chunks"] == ["noop_chunks"]
    assert hooks["on_open"] == ["ledger"]  # a stream's in-flight row is spooled before its head leaves
    assert hooks["on_finish (before reply)"] == ["ledger"]
    assert hooks["on_finish"] == ["settle", "record", "audit", "noop_finish"]  # audit: on by default


def test_a_stage_that_is_not_configured_is_not_imported() -> None:
    script = (
        "import sys\n"
        "from sluicegate.config.schema import GatewayConfig\n"
        "from sluicegate.server.gateway import Gateway\n"
        "Gateway(GatewayConfig.model_validate({'pipeline': {'stages': ['noop_finish']}}), master_key='k', environ={})\n"
        "print(sorted(m for m in sys.modules if m.startswith('sluicegate.pipeline.stages.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, timeout=60).stdout
    assert out.decode().strip() == "['sluicegate.pipeline.stages.noop_finish']"


async def test_a_gateway_with_a_do_nothing_stage_on_every_hook_answers_whole_and_streamed(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    config = parse_config(
        f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/ledger.db", spool_dir: "{tmp_path}/spool"}}
server: {{access_log: {{enabled: false}}}}
providers:
  sim: {{kind: openai, base_url: "{simulator.url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
pipeline: {{stages: {orjson.dumps(NOOPS).decode()}}}
"""
    )
    gateway = Gateway(config, master_key="sk-master")
    await gateway.start()
    transport = httpx.ASGITransport(app=GatewayApp(gateway))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            auth = {"authorization": "Bearer sk-master"}
            whole = await client.post("/v1/chat/completions", json=body, headers=auth)
            streamed = await client.post("/v1/chat/completions", json={**body, "stream": True}, headers=auth)
    finally:
        await gateway.stop()
    assert whole.status_code == 200 and whole.json()["choices"][0]["message"]["content"]
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    assert '"content"' in streamed.text


def test_a_stage_verdict_is_on_the_context_and_heard_on_the_event_bus() -> None:
    from sluicegate.canonical import ChatRequest
    from sluicegate.events import EventBus, StageVerdict
    from sluicegate.pipeline.context import RequestContext
    from sluicegate.pipeline.stages import StageServices

    events = EventBus()
    heard: list[StageVerdict] = []
    events.subscribe(StageVerdict, heard.append)
    services = StageServices(GatewayConfig(), events)
    ctx = RequestContext("req-9", "chat", "openai", {}, ChatRequest("m", [{"role": "user", "content": "hi"}]))
    services.verdict(ctx, "firewall", "block", "prompt injection")
    assert ctx.verdicts == (StageVerdict("req-9", "firewall", "block", "prompt injection"),)
    assert heard == list(ctx.verdicts)
