"""Operational alerts to webhooks (Slack-compatible or generic JSON), each linking to the dashboard view it
concerns: projected overspend, cost spikes, breakers open, error-rate and latency objectives per model
group, classification drift and spool pressure.

An alert is raised for a condition (its kind and subject) once: while the condition holds it is not sent
again (unless it still holds after `repeat_hours`), and once it clears it may fire again. At most
`max_per_minute` alerts are sent a minute; the rest are dropped and counted. The checks run in a task
every `check_seconds`, reading the ledger's roll-ups and the request metrics: nothing on the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from sluicegate.clock import Clock
from sluicegate.config.schema import AlertsConfig, AlertWebhook
from sluicegate.events import BreakerTransition, ClassificationDrift, EventBus
from sluicegate.state.periods import period_bounds, period_start
from sluicegate.store.spend import SpendFilter, SpendLedger
from sluicegate.telemetry.metrics import GatewayMetrics

log = logging.getLogger("sluicegate.alerts")

_MAX_IN_FLIGHT = 64


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str  # projected_overspend, cost_spike, breaker_open, error_rate, latency, classification_drift, ...
    subject: str  # what it is about: "team:search", "deployment:sim/gpt-4o", "gpt-4o"
    severity: str  # "warning" or "critical"
    summary: str  # one line for a person
    details: dict[str, Any] = field(default_factory=dict)  # the figures, for machines
    view: str = "#/spend"  # the dashboard's view (appended to the dashboard URL)


def _usd(micros: float) -> str:
    return f"{micros / 1_000_000:.2f}"


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="minutes").replace("+00:00", "Z")


class AlertSender:
    """De-duplicates, rate-limits and posts alerts in the background (never waits, never raises)."""

    def __init__(
        self,
        webhooks: Iterable[AlertWebhook],
        clock: Clock,
        *,
        dashboard_url: str = "",
        max_per_minute: int = 20,
        repeat_hours: float = 24.0,
    ) -> None:
        self._webhooks = list(webhooks)
        self._clock = clock
        self._dashboard = dashboard_url.rstrip("/")
        self._max_per_minute = max_per_minute
        self._repeat = repeat_hours * 3600
        self._active: dict[tuple[str, str], float] = {}  # condition -> when it was last sent
        self._sent_at: deque[float] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    def link(self, view: str) -> str:
        return f"{self._dashboard}/ui/{view}" if self._dashboard else ""

    def raise_alert(self, alert: Alert) -> bool:
        """Sends `alert` unless its condition is already raised (or the minute's allowance is spent)."""
        now = self._clock.monotonic()
        key = (alert.kind, alert.subject)
        last = self._active.get(key)
        if last is not None and now - last < self._repeat:
            return False
        while self._sent_at and now - self._sent_at[0] >= 60:
            self._sent_at.popleft()
        if len(self._sent_at) >= self._max_per_minute or len(self._tasks) >= _MAX_IN_FLIGHT:
            self.dropped += 1
            log.warning("alert dropped (rate limit): %s %s", alert.kind, alert.subject)
            return False
        self._sent_at.append(now)
        self._active[key] = now
        self.sent += 1
        log.warning("alert: %s", alert.summary)
        if self._webhooks:
            task = asyncio.get_running_loop().create_task(self._post(alert))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def clear(self, kind: str, subject: str) -> None:
        """The condition is over: the next time it holds, it is alerted again."""
        self._active.pop((kind, subject), None)

    def active(self, kind: str) -> set[str]:
        return {subject for k, subject in self._active if k == kind}

    def message(self, alert: Alert, style: str) -> dict[str, Any]:
        link = self.link(alert.view)
        if style == "slack":
            icon = ":rotating_light:" if alert.severity == "critical" else ":warning:"
            text = f"{icon} Sluicegate: {alert.summary}"
            if link:
                text += f" <{link}|Open the dashboard>"
            return {"text": text, "sluicegate": {"event": alert.kind, "subject": alert.subject, **alert.details}}
        return {
            "alert": alert.kind,
            "subject": alert.subject,
            "severity": alert.severity,
            "summary": alert.summary,
            "details": alert.details,
            "dashboard_url": link or None,
            "ts": self._clock.now(),
        }

    async def _post(self, alert: Alert) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient()
        for hook in self._webhooks:
            try:
                response = await self._client.post(
                    hook.url, json=self.message(alert, hook.format), timeout=hook.timeout_seconds
                )
                ok = response.status_code < 300
            except httpx.HTTPError as exc:
                log.warning("alert webhook failed: %s", type(exc).__name__)
                ok = False
            if not ok:
                self.failed += 1

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class SpoolState(Protocol):
    @property
    def spool_trouble(self) -> bool: ...

    @property
    def spool_free_bytes(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class BudgetLine:
    """A budget to forecast: its scope ("team:search", "global"), amount and period."""

    scope: str
    limit_micros: int
    period: str


BudgetSource = Callable[[], Any]  # async () -> list[BudgetLine]
_SpendCache = dict[tuple[str, float, float], dict[str | None, int]]


class AlertMonitor:
    """The periodic checks and the event listeners that raise alerts through an `AlertSender`."""

    def __init__(
        self,
        config: AlertsConfig,
        sender: AlertSender,
        clock: Clock,
        *,
        spend: SpendLedger | None = None,
        budgets: BudgetSource | None = None,
        metrics: GatewayMetrics | None = None,
        spool: SpoolState | None = None,
        zone: ZoneInfo = ZoneInfo("UTC"),
    ) -> None:
        self._config = config
        self.sender = sender
        self._clock = clock
        self._spend = spend
        self._budgets = budgets
        self._metrics = metrics
        self._spool = spool
        self._zone = zone
        self._previous: dict[str, tuple[int, int, list[int]]] = {}  # group -> (requests, errors, latency counts)
        self._task: asyncio.Task[None] | None = None

    def listen(self, events: EventBus) -> None:
        events.subscribe(BreakerTransition, self._breaker)
        events.subscribe(ClassificationDrift, self._drift)

    # -- events -----------------------------------------------------------------------------------------

    def _breaker(self, event: BreakerTransition) -> None:
        subject = f"deployment:{event.deployment}"
        if event.state != "open":
            if event.state == "closed":
                self.sender.clear("breaker_open", subject)
            return
        self.sender.raise_alert(
            Alert(
                "breaker_open",
                subject,
                "critical",
                f"deployment {event.deployment} is out of rotation: its circuit breaker opened ({event.reason}).",
                {"deployment": event.deployment, "reason": event.reason, "open_for_seconds": event.open_for},
                "#/deployments",
            )
        )

    def _drift(self, event: ClassificationDrift) -> None:
        self.sender.raise_alert(
            Alert(
                "classification_drift",
                event.what,
                "warning",
                f"classification drift in {event.what}: {event.current:.1%} now against a baseline of "
                f"{event.baseline:.1%}{' (' + event.detail + ')' if event.detail else ''}.",
                {"what": event.what, "current": event.current, "baseline": event.baseline, "detail": event.detail},
                "#/spend",
            )
        )

    # -- periodic checks --------------------------------------------------------------------------------

    async def check(self) -> None:
        """Every check once (the task calls this every `check_seconds`)."""
        self.check_spool()
        self.check_objectives()
        if self._spend is not None:
            if self._budgets is not None:
                await self.check_forecasts()
            await self.check_spikes()

    def check_spool(self) -> None:
        if self._spool is None or not self._config.spool_pressure:
            return
        if not self._spool.spool_trouble:
            self.sender.clear("spool_pressure", "ledger")
            return
        free = self._spool.spool_free_bytes
        self.sender.raise_alert(
            Alert(
                "spool_pressure",
                "ledger",
                "critical",
                "the ledger spool is under pressure (its disk is nearly full or failing); new requests may be "
                "refused until it recovers.",
                {"free_bytes": free},
                "#/deployments",
            )
        )

    async def check_forecasts(self) -> None:
        assert self._spend is not None and self._budgets is not None
        now = self._clock.now()
        window = self._config.forecast.burn_window_hours * 3600
        raised: set[str] = set()
        lines: list[BudgetLine] = await self._budgets()
        by_kind: _SpendCache = {}
        for line in lines:
            if line.period == "total":
                continue
            period_id, end = period_bounds(line.period, now, self._zone)  # type: ignore[arg-type]
            start = period_start(period_id, self._zone)
            if end is None or start is None:
                continue
            since = max(start, now - window)
            if now - since < self._config.forecast.min_elapsed_hours * 3600:
                continue
            kind, _, ident = line.scope.partition(":")
            spent_in_period = await self._spent(by_kind, kind, start, now, ident)
            spent_recently = await self._spent(by_kind, kind, since, now, ident)
            rate = spent_recently / (now - since)  # micros per second
            if rate <= 0 or spent_in_period >= line.limit_micros:
                continue  # nothing burning, or already spent (the budget's own threshold alerts say so)
            exhausted_at = now + (line.limit_micros - spent_in_period) / rate
            if exhausted_at >= end:
                continue
            raised.add(line.scope)
            view = f"#/spend?team={quote(ident)}" if kind == "team" else "#/spend"
            self.sender.raise_alert(
                Alert(
                    "projected_overspend",
                    line.scope,
                    "warning",
                    f"at the current burn (${_usd(rate * 3600)}/h) {_who(line.scope)} runs out on "
                    f"{_iso(exhausted_at)}, before its {line.period} period ends on {_iso(end)} "
                    f"(${_usd(spent_in_period)} of ${_usd(line.limit_micros)} spent).",
                    {
                        "scope": line.scope,
                        "period": line.period,
                        "spent_usd": _usd(spent_in_period),
                        "limit_usd": _usd(line.limit_micros),
                        "burn_usd_per_hour": _usd(rate * 3600),
                        "projected_exhaustion": _iso(exhausted_at),
                        "period_end": _iso(end),
                    },
                    view,
                )
            )
        for scope in self.sender.active("projected_overspend") - raised:
            self.sender.clear("projected_overspend", scope)

    async def _spent(
        self,
        cache: dict[tuple[str, float, float], dict[str | None, int]],
        kind: str,
        since: float,
        until: float,
        ident: str,
    ) -> int:
        """A scope's spend over [since, until), one report per (kind, range) whatever the number of scopes."""
        assert self._spend is not None
        key = (kind, since, until)
        if key not in cache:
            where = SpendFilter(since=_utc(since), until=_utc(until))
            if kind == "global":
                rows = await self._spend.report("tenant", where)
                cache[key] = {"": sum(r.cost_micros for r in rows)}
            else:
                cache[key] = {r.group: r.cost_micros for r in await self._spend.report(kind, where)}
        return cache[key].get(ident if kind != "global" else "", 0)

    async def check_spikes(self) -> None:
        assert self._spend is not None
        settings = self._config.cost_spike
        now = self._clock.now()
        window = settings.window_minutes * 60
        baseline = settings.baseline_hours * 3600
        raised: set[str] = set()
        min_micros = int(settings.min_usd * 1_000_000)
        for kind in settings.entities:
            recent = await self._spend.report(kind, SpendFilter(since=_utc(now - window), until=_utc(now)))
            before = await self._spend.report(
                kind, SpendFilter(since=_utc(now - window - baseline), until=_utc(now - window))
            )
            total = sum(r.cost_micros for r in recent)
            base = {r.group: r.cost_micros for r in before}
            for row in recent:
                if row.group is None or row.cost_micros < min_micros:
                    continue
                rate = row.cost_micros / (window / 3600)  # micros an hour
                base_rate = base.get(row.group, 0) / (baseline / 3600)
                share = row.cost_micros / total if total else 0.0
                spiked = base_rate > 0 and rate >= settings.factor * base_rate
                dominant = share >= settings.share and len(recent) > 1
                if not (spiked or dominant):
                    continue
                subject = f"{kind}:{row.group}"
                raised.add(subject)
                why = (
                    f"{rate / base_rate:.1f}x its own baseline of ${_usd(base_rate)}/h"
                    if spiked
                    else f"{share:.0%} of all spend"
                )
                if spiked and dominant:
                    why += f", {share:.0%} of all spend"
                view = f"#/spend?team={quote(row.group)}" if kind == "team" else "#/spend"
                self.sender.raise_alert(
                    Alert(
                        "cost_spike",
                        subject,
                        "warning",
                        f"{kind} {row.group} spends ${_usd(rate)}/h over the last {settings.window_minutes} min: "
                        f"{why}.",
                        {
                            "entity": subject,
                            "rate_usd_per_hour": _usd(rate),
                            "baseline_usd_per_hour": _usd(base_rate),
                            "ratio": round(rate / base_rate, 2) if base_rate else None,
                            "share": round(share, 4),
                            "window_minutes": settings.window_minutes,
                        },
                        view,
                    )
                )
        for subject in self.sender.active("cost_spike") - raised:
            self.sender.clear("cost_spike", subject)

    def check_objectives(self) -> None:
        if self._metrics is None or not self._config.objectives:
            return
        for objective in self._config.objectives:
            requests, errors, counts = self._metrics.totals(objective.group)
            previous = self._previous.get(objective.group)
            self._previous[objective.group] = (requests, errors, counts)
            if previous is None:
                continue
            served = requests - previous[0]
            if served < objective.min_requests:
                continue
            failed = errors - previous[1]
            if objective.error_rate is not None:
                rate = failed / served
                self._objective(
                    "error_rate",
                    objective.group,
                    rate > objective.error_rate,
                    f"{objective.group}: {rate:.1%} of {served} requests failed "
                    f"(objective {objective.error_rate:.1%}).",
                    {"group": objective.group, "requests": served, "errors": failed, "error_rate": round(rate, 4),
                     "objective": objective.error_rate},
                )  # fmt: skip
            if objective.p99_seconds is not None:
                p99 = self._metrics.quantile([c - p for c, p in zip(counts, previous[2], strict=True)], 0.99)
                self._objective(
                    "latency",
                    objective.group,
                    p99 > objective.p99_seconds,
                    f"{objective.group}: p99 latency {p99:g}s over {served} requests (objective "
                    f"{objective.p99_seconds:g}s).",
                    {"group": objective.group, "requests": served, "p99_seconds": p99,
                     "objective_seconds": objective.p99_seconds},
                )  # fmt: skip

    def _objective(self, kind: str, group: str, breached: bool, summary: str, details: dict[str, Any]) -> None:
        if not breached:
            self.sender.clear(kind, group)
            return
        self.sender.raise_alert(Alert(kind, group, "warning", summary, details, "#/deployments"))

    # -- the task ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._config.check_seconds)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: the next check tries again
                log.warning("alert checks failed (%s)", type(exc).__name__)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.sender.close()


def _who(scope: str) -> str:
    kind, _, ident = scope.partition(":")
    return "the global budget" if kind == "global" else f"the budget of {kind} '{ident}'"


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def budget_lines(entities: Mapping[str, Iterable[Any]], global_limit: tuple[int, str] | None) -> list[BudgetLine]:
    """The budgets to forecast, from rows of tenants, teams, users and keys (`kind` -> rows)."""
    lines = [BudgetLine("global", *global_limit)] if global_limit is not None else []
    for kind, rows in entities.items():
        for row in rows:
            if row.budget_micros:
                lines.append(BudgetLine(f"{kind}:{row.id}", row.budget_micros, row.budget_period or "monthly"))
    return lines
