"""Budget alerts reach a webhook once per threshold per period, as Slack-compatible JSON."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sluicegate.state.config import WebhookConfig
from tests.admission.helpers import config, context, principal, stage


async def test_thresholds_post_once_each_to_the_webhook() -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    from prometheus_client import CollectorRegistry

    from sluicegate.events import EventBus
    from sluicegate.pipeline.settle import SettleStage
    from sluicegate.state.metrics import LimitMetrics
    from sluicegate.telemetry.alerts import BudgetAlerts

    cfg = config()
    admission = stage(cfg)
    alerts = BudgetAlerts([WebhookConfig(url=f"http://127.0.0.1:{port}/hook")])
    events = EventBus()
    alerts.listen(events)
    settle = SettleStage(admission.state, admission, LimitMetrics(CollectorRegistry()), events, (0.5, 0.8, 1.0))
    try:
        for _ in range(12):
            ctx = context(who=principal(budget_micros=1_000_000), max_tokens=16)
            try:
                await admission.on_request(ctx)
            except Exception:
                break
            ctx.attempts = 1
            ctx.cost_micros = 100_000  # ten of these spend the budget
            await settle.on_finish(ctx)
        await alerts.close()
    finally:
        await runner.cleanup()
    assert [m["sluicegate"]["threshold"] for m in received] == [0.5, 0.8, 1.0]
    assert all(isinstance(m["text"], str) and "key 'k1'" in m["text"] for m in received)
    assert received[-1]["sluicegate"]["spent_usd"] == "1.000000"
    await asyncio.sleep(0)
