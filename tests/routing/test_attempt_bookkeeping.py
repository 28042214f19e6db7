"""A whole answer's upstream call is settled (in-flight slot, breaker, latency statistics) once the client
has the answer, whatever happens in between: no slot is ever left taken."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc


async def call(app: GatewayApp, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    raw = orjson.dumps(body)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", b"Bearer k")],
    }
    sent: dict[str, Any] = {}
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
        else:
            sent["body"] = sent.get("body", b"") + message.get("body", b"")

    await app(scope, receive, send)
    return sent["status"], orjson.loads(sent["body"])


async def test_whole_answers_leave_no_slot_taken(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    config = parse_config(
        f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/ledger.db", spool_dir: "{tmp_path}/spool"}}
providers:
  sim: {{kind: openai, base_url: "{simulator.url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
"""
    )
    gateway = Gateway(config, master_key="k")
    app = GatewayApp(gateway)
    await gateway.start()
    health = gateway.router.health["sim/gpt-4o-mini"]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
    try:
        for _ in range(3):
            status, _ = await call(app, body)
            assert status == 200
        assert health.limit.in_flight == 0 and health.stats.total.count == 3

        def broken(*_: Any) -> bytes:  # the answer came back, then rendering it failed
            raise RuntimeError("boom")

        from sluicegate.wire import openai as openai_wire

        monkeypatch.setattr(openai_wire.OpenAIWire, "chat_response_body", staticmethod(broken))
        app = GatewayApp(gateway)  # its wire object reads the patched renderer
        status, reply = await call(app, body)
        assert status == 500 and reply["error"]["type"]
        assert health.limit.in_flight == 0 and health.stats.total.count == 4
    finally:
        await gateway.stop()
