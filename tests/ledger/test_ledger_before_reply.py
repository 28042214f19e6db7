"""The ledger row of an answer is on disk (spooled) before the client can receive the answer's last byte,
so a gateway killed at any moment loses no answer a client got: whole replies, streams and errors."""

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


def spooled_ids(spool: Path) -> set[str]:
    ids = set()
    for segment in spool.rglob("*.jsonl"):
        for line in segment.read_bytes().splitlines():
            ids.add(orjson.loads(line)["request_id"])
    return ids


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}, 200),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "stream": True}, 200),
        ({"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}, 404),
    ],
    ids=["whole", "stream", "error"],
)
async def test_the_row_is_spooled_before_the_last_byte_leaves(
    simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any], status: int
) -> None:
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    spool = tmp_path / "spool"
    config = parse_config(
        f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/ledger.db", spool_dir: "{spool}"}}
providers:
  sim: {{kind: openai, base_url: "{simulator.url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
"""
    )
    gateway = Gateway(config, master_key="sk-master")
    app = GatewayApp(gateway)
    await gateway.start()
    raw = orjson.dumps(body)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", b"Bearer sk-master"), (b"content-length", str(len(raw)).encode())],
    }
    seen: dict[str, Any] = {}
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["id"] = dict(message["headers"])[b"x-sluice-request-id"].decode()
        elif not message.get("more_body"):  # the answer's last bytes
            seen["spooled_by_then"] = seen["id"] in spooled_ids(spool)

    try:
        await app(scope, receive, send)
    finally:
        await gateway.stop()
    assert seen["status"] == status
    assert seen["spooled_by_then"] is True
