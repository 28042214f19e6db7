"""An unexpected failure inside the admin API is a JSON 500 in the gateway's error shape, never a trace."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx

from sluicegate.config.schema import GatewayConfig
from sluicegate.events import EventBus
from sluicegate.principal import MASTER
from sluicegate.server.admin import create_admin_app


class _BrokenService:
    async def list_keys(self, *args: Any) -> list[dict[str, Any]]:
        raise RuntimeError("database said: password=hunter2 at db.internal")


async def _master(headers: Any) -> Any:
    return MASTER


async def test_unexpected_error_is_a_shaped_500_without_detail() -> None:
    gateway = SimpleNamespace(
        accounts=SimpleNamespace(admin=_BrokenService()),
        auth=SimpleNamespace(authenticate=_master),
        config=GatewayConfig(),
        events=EventBus(),
    )
    app = create_admin_app(gateway)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
        response = await client.get("/admin/keys", headers={"authorization": "Bearer sk-anything"})
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    assert "hunter2" not in response.text and "Traceback" not in response.text
