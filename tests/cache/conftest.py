"""Gateways with the response cache on, in this process (ASGI), against the session's simulator."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from tests.conftest import UPSTREAM_KEY, Proc

MASTER = "sk-master-cache-tests"
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(eq=False)
class CacheGateway:
    gateway: Gateway
    client: httpx.AsyncClient
    db: Path

    async def key(self, tenant: str, team: str | None = None, metadata: dict[str, str] | None = None) -> str:
        """A virtual key of `tenant` (and `team`, made if new)."""
        team = team or f"{tenant}-team"
        await self.admin("POST", "/admin/tenants", {"id": tenant})
        await self.admin("POST", "/admin/teams", {"id": team, "tenant": tenant})
        created = await self.admin("POST", "/admin/keys", {"team": team, "metadata": metadata or {}})
        return str(created["key"])

    async def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.client.request(method, path, json=body, headers={"authorization": f"Bearer {MASTER}"})
        assert response.status_code < 300 or response.status_code == 409, response.text
        return response.json() if response.content else None

    async def ask(
        self,
        key: str = MASTER,
        content: str = "What is the capital of France?",
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> httpx.Response:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **params}
        return await self.client.post(
            "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}", **(headers or {})}
        )

    def ledger(self, request_id: str) -> dict[str, Any]:
        """The ledger row of a request (read after the gateway stopped, so every row is written)."""
        with sqlite3.connect(self.db) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("select * from spend_ledger where request_id = ?", (request_id,)).fetchone()
        assert row is not None, request_id
        return dict(row)


Factory = Callable[..., Awaitable[CacheGateway]]


def cache_yaml(
    simulator: Proc,
    tmp: Path,
    cache: str = "",
    models: str = "",
    redis: bool = False,
    extra: str = "",
    stages: str = "[response_cache]",
) -> str:
    return f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp}/ledger.db", spool_dir: "{tmp}/spool", spool_fsync: never}}
server: {{access_log: {{enabled: false}}}}
{f"redis: {{url: '{REDIS_URL}'}}" if redis else ""}
providers:
  sim: {{kind: openai, base_url: "{simulator.url}/v1", api_key_env: SIM_UPSTREAM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: {models or "gpt-4o-mini"}}}]
  - name: faulty
    deployments: [{{provider: sim, model: faulty-model}}]
    routing: {{breaker: {{enabled: false}}, retry: {{max_attempts: 1}}}}
pipeline: {{stages: {stages}}}
response_cache:
  {cache or "store: memory"}
{extra}
"""


@pytest.fixture
async def cache_gateway(simulator: Proc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Factory]:
    """Builds started gateways (`await cache_gateway(cache="...")`); all are stopped at the end."""
    monkeypatch.setenv("SIM_UPSTREAM_KEY", UPSTREAM_KEY)
    made: list[CacheGateway] = []

    async def make(
        cache: str = "", models: str = "", redis: bool = False, extra: str = "", stages: str = "[response_cache]"
    ) -> CacheGateway:
        folder = tmp_path / f"gw{len(made)}"
        folder.mkdir()
        config = parse_config(cache_yaml(simulator, folder, cache, models, redis, extra, stages))
        gateway = Gateway(config, master_key=MASTER)
        await gateway.start()
        host = gateway.model_host
        if host is not None and host.started:  # the model loaded before the first question, however slow the machine
            assert await host.backend.wait_ready(120)  # type: ignore[attr-defined]
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=GatewayApp(gateway)), base_url="http://gw")
        made.append(CacheGateway(gateway, client, folder / "ledger.db"))
        return made[-1]

    yield make
    for gw in made:
        await gw.client.aclose()
        await gw.gateway.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A prefix of this test's own in the shared Redis (never flushed: the test drops what it wrote)."""
    return "sgtest-rc-" + secrets.token_hex(5)
