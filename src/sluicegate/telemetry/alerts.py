"""Budget alerts: a Slack-compatible JSON message to each configured webhook when a budget first crosses
a threshold in a period (the hot state makes "first" hold across every gateway instance). A listener of
the gateway's `BudgetThreshold` events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx

from sluicegate.events import BudgetThreshold, EventBus
from sluicegate.pricing import micros_to_usd
from sluicegate.state.config import WebhookConfig

log = logging.getLogger("sluicegate.alerts")

_MAX_IN_FLIGHT = 64


def alert_message(event: BudgetThreshold) -> dict[str, Any]:
    kind, _, ident = event.scope.partition(":")
    who = "the global budget" if kind == "global" else f"the budget of {kind} '{ident}'"
    threshold = event.threshold
    percent = round(threshold * 100)
    spent = micros_to_usd(event.spent_micros)
    limit = micros_to_usd(event.limit_micros)
    text = f":warning: Sluicegate: {who} has reached {percent}% (${spent} of ${limit}, period {event.period})."
    if threshold >= 1:
        text = f":no_entry: Sluicegate: {who} is spent (${spent} of ${limit}, period {event.period}); "
        text += "requests against it are refused."
    return {
        "text": text,
        "sluicegate": {
            "event": "budget_threshold",
            "scope": event.scope,
            "period": event.period,
            "threshold": threshold,
            "spent_usd": spent,
            "limit_usd": limit,
        },
    }


class BudgetAlerts:
    def __init__(self, webhooks: list[WebhookConfig], on_result: Callable[[str], None] | None = None) -> None:
        self._webhooks = webhooks
        self._on_result = on_result
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def listen(self, events: EventBus) -> None:
        """Alerts on every budget threshold published on `events` (when any webhook is configured)."""
        if self._webhooks:
            events.subscribe(BudgetThreshold, self.notify)

    def notify(self, event: BudgetThreshold) -> None:
        """Sends in the background; never delays or fails the request that crossed the threshold."""
        self._post(alert_message(event), f"{event.scope} {event.threshold}")

    def notify_event(self, event: str, text: str, details: dict[str, Any]) -> None:
        """An operational alert (the ledger's: spool pressure, a refused row) to the same webhooks."""
        self._post({"text": f":rotating_light: {text}", "sluicegate": {"event": event, **details}}, event)

    def _post(self, message: dict[str, Any], what: str) -> None:
        if not self._webhooks:
            return
        if len(self._tasks) >= _MAX_IN_FLIGHT:
            log.warning("alert dropped (too many in flight): %s", what)
            self._count("failed")
            return
        task = asyncio.get_running_loop().create_task(self._send_all(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_all(self, message: dict[str, Any]) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient()
        for hook in self._webhooks:
            try:
                response = await self._client.post(hook.url, json=message, timeout=hook.timeout_seconds)
                ok = response.status_code < 300
            except httpx.HTTPError as exc:
                log.warning("budget alert webhook failed: %s", type(exc).__name__)
                ok = False
            else:
                if not ok:
                    log.warning("budget alert webhook answered HTTP %d", response.status_code)
            self._count("sent" if ok else "failed")

    def _count(self, outcome: str) -> None:
        if self._on_result is not None:
            self._on_result(outcome)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
