"""`sluicegate top`: a live terminal view of a running gateway, refreshed in place.

Requests and errors per second come from two scrapes of `/metrics` an interval apart; spend, budget burn
and deployment health from the admin API (`/admin/spend`, `/admin/teams`, `/admin/routing/deployments`)
with the key given, so a team admin sees its team and no deployments. Rendered with rich.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sluicegate.console import gateway_key, gateway_url


@dataclass
class Sample:
    at: float
    requests: dict[str, float] = field(default_factory=dict)  # by model
    errors: dict[str, float] = field(default_factory=dict)  # by model


@dataclass
class Snapshot:
    """What one refresh shows."""

    rates: list[tuple[str, float, float]]  # model, requests/s, errors/s
    spend_hour: float | None
    spend_month: float | None
    budgets: list[tuple[str, float, float, float]]  # team, spent, budget, month-end forecast
    deployments: list[dict[str, Any]] | None  # None: not shown to this key
    problem: str | None = None


class Gateway:
    def __init__(self, url: str, key: str) -> None:
        self._client = httpx.Client(base_url=url.rstrip("/"), headers={"authorization": f"Bearer {key}"}, timeout=10)

    def sample(self) -> Sample:
        text = self._client.get("/metrics").text
        sample = Sample(time.monotonic())
        for family in text_string_to_metric_families(text):
            if family.name in ("sluicegate_requests", "sluicegate_errors"):
                target = sample.requests if family.name == "sluicegate_requests" else sample.errors
                for s in family.samples:
                    if s.name.endswith("_total"):
                        model = s.labels.get("model", "")
                        target[model] = target.get(model, 0.0) + s.value
        return sample

    def admin(self, path: str, **query: str) -> Any:
        response = self._client.get(path, params=query)
        if response.status_code in (401, 403):
            return None
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self._client.close()


def snapshot(gateway: Gateway, before: Sample, after: Sample, now: dt.datetime) -> Snapshot:
    elapsed = max(after.at - before.at, 1e-6)
    models = sorted(set(after.requests) | set(after.errors))
    rates = [
        (
            model,
            (after.requests.get(model, 0.0) - before.requests.get(model, 0.0)) / elapsed,
            (after.errors.get(model, 0.0) - before.errors.get(model, 0.0)) / elapsed,
        )
        for model in models
    ]
    rates.sort(key=lambda r: -r[1])
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    next_month = (month_start + dt.timedelta(days=32)).replace(day=1)
    hour = gateway.admin("/admin/spend", by="model", since="1h")
    month = gateway.admin("/admin/spend", by="team", since=month_start.isoformat())
    teams = gateway.admin("/admin/teams")
    report = gateway.admin("/admin/routing/deployments")
    spent_by_team = {r["group"]: float(r["cost_usd"]) for r in (month or {}).get("rows", [])}
    elapsed_days = max((now - month_start).total_seconds() / 86400, 1 / 24)
    period_days = (next_month - month_start).total_seconds() / 86400
    budgets = []
    for team in (teams or {}).get("teams", []):
        if team.get("budget_usd") and (team.get("budget_period") or "monthly") == "monthly":
            spent = spent_by_team.get(team["id"], 0.0)
            budgets.append((team["id"], spent, float(team["budget_usd"]), spent / elapsed_days * period_days))
    budgets.sort(key=lambda b: -b[1] / b[2])
    return Snapshot(
        rates=rates,
        spend_hour=sum(float(r["cost_usd"]) for r in hour["rows"]) if hour is not None else None,
        spend_month=sum(spent_by_team.values()) if month is not None else None,
        budgets=budgets,
        deployments=report["deployments"] if report is not None else None,
        problem=None if month is not None else "this key may not read spend",
    )


def render(view: Snapshot, url: str) -> Group:
    total = sum(r[1] for r in view.rates)
    errors = sum(r[2] for r in view.rates)
    share = f"{100 * errors / total:.1f}%" if total else "0%"
    head = Text(
        f"sluicegate top  {url}  {time.strftime('%H:%M:%S')}   "
        f"{total:,.1f} requests/s   {errors:,.2f} errors/s ({share})   "
        f"spend {_usd(view.spend_hour)} in the last hour, {_usd(view.spend_month)} this month",
        style="bold",
    )
    models = Table(title="Models", title_justify="left", expand=True)
    for name, justify in (("model", "left"), ("requests/s", "right"), ("errors/s", "right")):
        models.add_column(name, justify=justify)  # type: ignore[arg-type]
    for model, rate, error_rate in view.rates[:12]:
        models.add_row(model, f"{rate:,.1f}", f"{error_rate:,.2f}")
    burn = Table(title="Budget burn (monthly team budgets)", title_justify="left", expand=True)
    for name in ("team", "spent", "budget", "used", "month-end forecast"):
        burn.add_column(name, justify="left" if name == "team" else "right")
    for team, spent, budget, forecast in view.budgets[:10]:
        over = forecast > budget
        burn.add_row(
            team,
            _usd(spent),
            _usd(budget),
            f"{100 * spent / budget:.0f}%",
            Text(f"{_usd(forecast)}{'  OVER' if over else ''}", style="bold" if over else ""),
        )
    parts: list[Any] = [head, models, burn if view.budgets else Text("Budget burn: no team has a monthly budget")]
    if view.deployments is None:
        parts.append(Text("Deployments: shown to the master key only"))
    else:
        deployments = Table(title="Deployments", title_justify="left", expand=True)
        for name in ("deployment", "breaker", "errors (recent)", "in flight", "req/min", "TTFT p50", "total p95"):
            deployments.add_column(name, justify="left" if name in ("deployment", "breaker") else "right")
        for d in view.deployments:
            state = d["breaker"]["state"]
            deployments.add_row(
                d["deployment"],
                Text(state.upper() if state != "closed" else state, style="bold" if state != "closed" else ""),
                _errors(d["breaker"]),
                str(d["in_flight"]),
                str(d["requests_last_minute"]),
                _ms(d["latency"]["ttft_ms"]["p50"]),
                _ms(d["latency"]["total_ms"]["p95"]),
            )
        parts.append(deployments)
    if view.problem:
        parts.append(Text(view.problem))
    return Group(*parts)


def _errors(breaker: dict[str, Any]) -> str:
    calls = breaker.get("window_calls") or 0
    return f"{breaker['window_failures']}/{calls}" if calls else "-"


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.6f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def run(args: argparse.Namespace) -> int:
    url = gateway_url(args)
    key = gateway_key(args)
    if args.interval <= 0:
        print("sluicegate top: --interval must be above 0", file=sys.stderr)
        return 2
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per scrape would scroll the view away
    gateway = Gateway(url, key)
    console = Console()
    try:
        before = gateway.sample()
        if args.once:
            time.sleep(args.interval)
            after = gateway.sample()
            console.print(render(snapshot(gateway, before, after, dt.datetime.now(dt.UTC)), url))
            return 0
        with Live(console=console, auto_refresh=False, screen=False) as live:
            while True:
                time.sleep(args.interval)
                after = gateway.sample()
                live.update(render(snapshot(gateway, before, after, dt.datetime.now(dt.UTC)), url), refresh=True)
                before = after
    except KeyboardInterrupt:
        return 0
    except httpx.HTTPError as exc:
        print(f"sluicegate top: cannot read {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        gateway.close()


def add_top_command(commands: Any) -> None:
    top = commands.add_parser("top", help="a live view of a running gateway: traffic, errors, spend, deployments")
    top.add_argument("--url", help="the gateway's base URL (default: SLUICEGATE_URL, else http://127.0.0.1:4000)")
    top.add_argument("--key", help="admin or master key (default: SLUICEGATE_ADMIN_KEY, SLUICEGATE_MASTER_KEY)")
    top.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes (default 2)")
    top.add_argument("--once", action="store_true", help="print one view (two samples an interval apart) and exit")
    top.set_defaults(func=run)
