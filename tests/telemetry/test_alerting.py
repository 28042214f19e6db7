"""Alerts to a local webhook receiver: each fires once per condition with the right figures, links to the
dashboard, and fires again only once its condition has cleared; the forecast fires on a burn that exhausts
a budget before its period ends and not on one that will not (synthetic time: ManualClock)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sluicegate.clock import ManualClock
from sluicegate.config.schema import AlertsConfig, AlertWebhook
from sluicegate.events import BreakerTransition, ClassificationDrift, EventBus
from sluicegate.store.db import Store
from sluicegate.store.spend import SpendLedger
from sluicegate.telemetry.alerting import AlertMonitor, AlertSender, BudgetLine
from sluicegate.telemetry.metrics import GatewayMetrics

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC).timestamp()  # the 10th: 21.5 days left in March


class Receiver:
    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, path: str) -> list[dict[str, Any]]:
        return [body for p, body in self.posts if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def monitor_for(receiver: Receiver, clock: ManualClock, **settings: Any) -> AlertMonitor:
    config = AlertsConfig(
        webhooks=[
            AlertWebhook(url=f"{receiver.url}/slack", format="slack"),
            AlertWebhook(url=f"{receiver.url}/json", format="json"),
        ],
        dashboard_url="https://gw.example.com/",
        **settings,
    )
    sender = AlertSender(config.webhooks, clock, dashboard_url=config.dashboard_url, max_per_minute=5)
    return AlertMonitor(config, sender, clock)


async def delivered(monitor: AlertMonitor) -> None:
    await asyncio.sleep(0)
    await monitor.sender.close()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SpendLedger]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/alerts.db")
    await store.migrate()
    ledger = SpendLedger(store)
    yield ledger
    await ledger.close()
    await store.close()


def spend_rows(prefix: str, team: str, user: str, start: float, hours: float, usd_per_hour: float) -> list[dict]:
    """One request every 6 minutes over `hours` before `start`, at `usd_per_hour`."""
    rows = []
    for i in range(int(hours * 10)):
        rows.append(
            {
                "request_id": f"{prefix}_{i}",
                "ts": start - 360 * (i + 0.5),
                "tenant_id": "acme",
                "team_id": team,
                "user_id": user,
                "key_id": f"key_{user}",
                "feature": None,
                "end_user": None,
                "endpoint": "chat",
                "model": "gpt-4o",
                "deployment": "sim/gpt-4o",
                "provider": "sim",
                "input_tokens": 100,
                "output_tokens": 10,
                "cached_input_tokens": 0,
                "reasoning_tokens": 0,
                "cost_micros": round(usd_per_hour * 1_000_000 / 10),
                "latency_ms": 1.0,
                "ttft_ms": None,
                "cache_status": None,
                "outcome": "ok",
                "status": 200,
                "stream": False,
            }
        )
    return rows


async def test_forecast_fires_for_a_burn_that_exhausts_the_budget_before_period_end(
    receiver: Receiver, ledger: SpendLedger
) -> None:
    clock = ManualClock(NOW)
    # search: $10/h for the last 24 h ($240 of $500 spent): $260 left lasts 26 h, well before March ends
    # ads: $0.10/h ($2.40 of $500): it would take months
    await ledger.insert(spend_rows("s", "search", "ann", NOW, 24, 10.0) + spend_rows("a", "ads", "bob", NOW, 24, 0.1))
    lines = [BudgetLine("team:search", 500_000_000, "monthly"), BudgetLine("team:ads", 500_000_000, "monthly")]

    async def budgets() -> list[BudgetLine]:
        return lines

    config = AlertsConfig(webhooks=[AlertWebhook(url=f"{receiver.url}/json", format="json")],
                          dashboard_url="https://gw.example.com")  # fmt: skip
    sender = AlertSender(config.webhooks, clock, dashboard_url=config.dashboard_url)
    monitor = AlertMonitor(config, sender, clock, spend=ledger, budgets=budgets)
    await monitor.check_forecasts()
    await monitor.check_forecasts()  # still burning: not sent twice
    await delivered(monitor)
    posts = receiver.of("/json")
    assert len(posts) == 1, posts
    alert = posts[0]
    assert (alert["alert"], alert["subject"]) == ("projected_overspend", "team:search")
    assert alert["details"] == {
        "scope": "team:search",
        "period": "monthly",
        "spent_usd": "240.00",
        "limit_usd": "500.00",
        "burn_usd_per_hour": "10.00",
        "projected_exhaustion": "2026-03-11T14:00Z",  # 26 hours from now
        "period_end": "2026-04-01T00:00Z",
    }
    assert alert["dashboard_url"] == "https://gw.example.com/ui/#/spend?team=search"
    assert "runs out on 2026-03-11T14:00Z" in alert["summary"]


async def test_a_burn_that_lasts_the_period_does_not_fire(receiver: Receiver, ledger: SpendLedger) -> None:
    clock = ManualClock(NOW)
    await ledger.insert(spend_rows("s", "search", "ann", NOW, 24, 10.0))  # $10/h: $5,400 until April

    async def budgets() -> list[BudgetLine]:
        return [BudgetLine("team:search", 6_000_000_000, "monthly"), BudgetLine("global", 10**12, "daily")]

    config = AlertsConfig(webhooks=[AlertWebhook(url=f"{receiver.url}/json", format="json")])
    monitor = AlertMonitor(config, AlertSender(config.webhooks, clock), clock, spend=ledger, budgets=budgets)
    await monitor.check_forecasts()
    await delivered(monitor)
    assert receiver.posts == []


async def test_cost_spike_against_its_own_baseline_and_a_dominant_share(
    receiver: Receiver, ledger: SpendLedger
) -> None:
    clock = ManualClock(NOW)
    hour = 3600
    rows = spend_rows("base_ann", "search", "ann", NOW - hour, 24, 1.0)  # ann: $1/h for a day
    rows += spend_rows("spike_ann", "search", "ann", NOW, 1, 12.0)  # then $12 in the last hour
    rows += spend_rows("base_bob", "search", "bob", NOW - hour, 24, 5.0)  # bob: steady $5/h
    rows += spend_rows("now_bob", "search", "bob", NOW, 1, 5.0)
    await ledger.insert(rows)
    config = AlertsConfig(
        webhooks=[AlertWebhook(url=f"{receiver.url}/json", format="json")], cost_spike={"entities": ["user"]}
    )
    monitor = AlertMonitor(config, AlertSender(config.webhooks, clock), clock, spend=ledger)
    await monitor.check_spikes()
    await monitor.check_spikes()
    await delivered(monitor)
    posts = receiver.of("/json")
    assert [(p["alert"], p["subject"]) for p in posts] == [("cost_spike", "user:ann")]
    details = posts[0]["details"]
    assert (details["rate_usd_per_hour"], details["baseline_usd_per_hour"], details["ratio"]) == ("12.00", "1.00", 12.0)
    assert details["share"] == round(12 / 17, 4)  # "one user is 70% of the bill"


async def test_breaker_open_once_per_opening_in_both_formats(receiver: Receiver) -> None:
    clock = ManualClock(NOW)
    events = EventBus()
    monitor = monitor_for(receiver, clock)
    monitor.listen(events)
    events.publish(BreakerTransition("sim/gpt-4o", "open", "5 consecutive failures", 30.0))
    events.publish(BreakerTransition("sim/gpt-4o", "half_open", "probe", 0.0))
    events.publish(BreakerTransition("sim/gpt-4o", "open", "probe failed", 60.0))  # still the same condition
    events.publish(BreakerTransition("sim/gpt-4o", "closed", "probe ok", 0.0))
    events.publish(BreakerTransition("sim/gpt-4o", "open", "5 consecutive failures", 30.0))  # a new opening
    await delivered(monitor)
    slack = receiver.of("/slack")
    assert len(slack) == 2 and len(receiver.of("/json")) == 2
    assert slack[0]["text"].startswith(":rotating_light: Sluicegate: deployment sim/gpt-4o is out of rotation")
    assert "<https://gw.example.com/ui/#/deployments|Open the dashboard>" in slack[0]["text"]
    assert receiver.of("/json")[0]["details"] == {
        "deployment": "sim/gpt-4o",
        "reason": "5 consecutive failures",
        "open_for_seconds": 30.0,
    }


async def test_alerts_are_rate_limited(receiver: Receiver) -> None:
    clock = ManualClock(NOW)
    events = EventBus()
    monitor = monitor_for(receiver, clock)  # 5 a minute
    monitor.listen(events)
    for i in range(8):
        events.publish(BreakerTransition(f"d{i}", "open", "x", 1.0))
    assert (monitor.sender.sent, monitor.sender.dropped) == (5, 3)
    clock.advance(61)
    events.publish(BreakerTransition("d7", "open", "x", 1.0))
    await delivered(monitor)
    assert len(receiver.of("/json")) == 6


async def test_error_rate_and_latency_objectives_per_group(receiver: Receiver) -> None:
    clock = ManualClock(NOW)
    metrics = GatewayMetrics(["gpt-4o", "gpt-4o-mini"])
    config = AlertsConfig(
        webhooks=[AlertWebhook(url=f"{receiver.url}/json", format="json")],
        objectives=[
            {"group": "gpt-4o", "error_rate": 0.05, "p99_seconds": 2.0, "min_requests": 20},
            {"group": "gpt-4o-mini", "error_rate": 0.05, "min_requests": 20},
        ],
    )
    monitor = AlertMonitor(config, AlertSender(config.webhooks, clock), clock, metrics=metrics)
    monitor.check_objectives()  # the first check only takes the counts
    for i in range(100):
        failed = i < 10
        metrics.observe("gpt-4o", "chat", 502 if failed else 200, "server_error" if failed else "ok",
                        8.0 if i % 25 == 0 else 0.2, None, None)  # fmt: skip
        metrics.observe("gpt-4o-mini", "chat", 200, "ok", 0.1, None, None)
    monitor.check_objectives()
    monitor.check_objectives()  # nothing new since: not judged, not resent
    await delivered(monitor)
    posts = {p["alert"]: p for p in receiver.of("/json")}
    assert set(posts) == {"error_rate", "latency"}
    assert posts["error_rate"]["details"] == {
        "group": "gpt-4o",
        "requests": 100,
        "errors": 10,
        "error_rate": 0.1,
        "objective": 0.05,
    }
    assert posts["latency"]["details"]["p99_seconds"] == 10.0  # the bucket holding 8 s
    assert posts["latency"]["subject"] == "gpt-4o"


async def test_classification_drift_and_spool_pressure(receiver: Receiver) -> None:
    clock = ManualClock(NOW)

    class Spool:
        spool_trouble = True
        spool_free_bytes = 4096

    config = AlertsConfig(webhooks=[AlertWebhook(url=f"{receiver.url}/json", format="json")])
    spool = Spool()
    monitor = AlertMonitor(config, AlertSender(config.webhooks, clock), clock, spool=spool)
    events = EventBus()
    monitor.listen(events)
    events.publish(ClassificationDrift("auto: tier large", 0.42, 0.1, "since 09:00"))
    monitor.check_spool()
    monitor.check_spool()
    spool.spool_trouble = False
    monitor.check_spool()
    spool.spool_trouble = True
    monitor.check_spool()  # a new episode
    await delivered(monitor)
    posts = sorted(receiver.of("/json"), key=lambda p: p["alert"])  # sent concurrently: any order
    assert [p["alert"] for p in posts] == ["classification_drift", "spool_pressure", "spool_pressure"]
    assert posts[0]["details"] == {
        "what": "auto: tier large",
        "current": 0.42,
        "baseline": 0.1,
        "detail": "since 09:00",
    }
    assert posts[1]["details"] == {"free_bytes": 4096}


async def test_the_gateway_wires_alerts_when_a_webhook_is_configured(receiver: Receiver, tmp_path: Path) -> None:
    from sluicegate.config.loader import parse_config
    from sluicegate.server.gateway import Gateway

    config = parse_config(
        f"""
store: {{database_url: "sqlite+aiosqlite:///{tmp_path}/gw.db", spool_dir: "{tmp_path}/spool"}}
server: {{access_log: {{enabled: false}}}}
providers:
  sim: {{kind: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: SIM_KEY}}
models:
  - name: gpt-4o-mini
    deployments: [{{provider: sim, model: gpt-4o-mini}}]
alerts: {{webhooks: [{{url: "{receiver.url}/json", format: json}}], dashboard_url: "http://gw:4000"}}
""",
        "<test>",
    )
    gateway = Gateway(config, master_key="sk-master-test", environ={"SIM_KEY": "x"})
    assert gateway.alerts is not None
    await gateway.start()
    try:
        gateway.events.publish(BreakerTransition("sim/gpt-4o-mini", "open", "5 consecutive failures", 30.0))
    finally:
        await gateway.stop()
    [post] = receiver.of("/json")
    assert post["alert"] == "breaker_open" and post["dashboard_url"] == "http://gw:4000/ui/#/deployments"
