"""The audit log: security-relevant events (admin changes, key lifecycle, operator actions, breaker
transitions, firewall blocks and redactions, configuration loads, and per-minute tallies of failed
authentications and budget refusals and downgrades), PII masked, chained and written in batches by a
background task: nothing on the request path waits for the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluicegate.clock import Clock
from sluicegate.events import (
    AdminAction,
    AdminChange,
    AuthFailure,
    BreakerTransition,
    EventBus,
    OperatorAction,
    StageVerdict,
)
from sluicegate.pipeline.context import RequestContext
from sluicegate.store.audit import AuditChain, AuditEntry, AuditTable

log = logging.getLogger("sluicegate.audit")

_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_SECRET = re.compile(r"\b(sk-(?:[A-Za-z]+-)?)[A-Za-z0-9_-]{12,}([A-Za-z0-9]{4})\b")
_IPV4 = re.compile(r"\b(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}\b")
_IPV6 = re.compile(r"\b([0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,4}):[0-9a-fA-F:]+\b")
_SECRET_FIELDS = frozenset({"key", "key_hash", "previous_hash", "secret", "password", "token", "authorization"})
_MAX_TALLIES = 1000  # distinct (kind, actor, target) tallies per window; the rest share "other"
_OTHER = "other"


def mask_text(text: str) -> str:
    """E-mail addresses keep their first letter and domain, secrets their last four characters, network
    addresses their network part."""
    text = _EMAIL.sub(r"\1***@\2", text)
    text = _SECRET.sub(r"\1...\2", text)
    text = _IPV4.sub(r"\1.x", text)
    return _IPV6.sub(r"\1:x", text)


def mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: "[redacted]" if k in _SECRET_FIELDS and v is not None else mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    return value


@dataclass(slots=True)
class _Pending:
    ts: float
    kind: str
    actor: str
    action: str
    target: str
    data: dict[str, Any]


@dataclass(slots=True)
class _Tally:
    first: float
    last: float
    count: int
    samples: list[str]


class AuditLog:
    """A listener of the event bus, a finish stage (the tallies) and a writer task.

    Events are queued in memory (bounded: past `max_queue` they are counted as dropped and logged, never
    waited for) and written every `flush_seconds`, with a head checkpoint per batch."""

    name = "audit"

    def __init__(
        self,
        table: AuditTable,
        instance: str,
        clock: Clock,
        *,
        retention_days: float = 90.0,
        max_queue: int = 10_000,
        flush_seconds: float = 0.5,
        window_seconds: float = 60.0,
    ) -> None:
        self._table = table
        self.chain = AuditChain(instance)
        self._clock = clock
        self._retention = retention_days * 86400.0
        self._max_queue = max_queue
        self._flush_seconds = flush_seconds
        self._window = window_seconds
        self._queue: deque[_Pending] = deque()
        self._batch: list[AuditEntry] = []  # chained but not yet committed (retried whole)
        self._tallies: dict[tuple[str, str, str], _Tally] = {}
        self._window_start = clock.now()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._pruned = 0.0
        self.written = 0
        self.dropped = 0
        self.failures = 0
        self.healthy = True

    # -- what is recorded -------------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        actor: str,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
        detail: Any = None,
    ) -> None:
        """Queues a record (masked and chained later, by the writer). Never waits, never raises."""
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("audit queue full (%d records): %d record(s) dropped", self._max_queue, self.dropped)
            return
        data = {}
        if before is not None:
            data["before"] = before
        if after is not None:
            data["after"] = after
        if detail is not None:
            data["detail"] = detail
        self._queue.append(_Pending(self._clock.now(), kind, actor, action, target, data))

    def listen(self, events: EventBus) -> None:
        events.subscribe(AdminAction, self._admin_action)
        events.subscribe(AdminChange, self._admin_change)
        events.subscribe(OperatorAction, self._operator_action)
        events.subscribe(BreakerTransition, self._breaker)
        events.subscribe(StageVerdict, self._verdict)
        events.subscribe(AuthFailure, self._auth_failure)

    def _auth_failure(self, event: AuthFailure) -> None:
        self._tally("auth_failures", mask_text(event.client or "unknown"), f"{event.surface}:{event.reason}", None)

    def _admin_action(self, event: AdminAction) -> None:
        self.record("admin_request", event.who, event.action, event.target, detail={"status": event.status})

    def _admin_change(self, event: AdminChange) -> None:
        kind = "key_lifecycle" if event.target.startswith("key:") else "admin_change"
        self.record(kind, event.who, event.action, event.target, before=event.before, after=event.after)

    def _operator_action(self, event: OperatorAction) -> None:
        self.record("operator_action", "operator", event.action, event.entity, detail={"detail": event.detail})

    def _breaker(self, event: BreakerTransition) -> None:
        detail = {"reason": event.reason, "open_for": event.open_for}
        self.record("breaker", "gateway", event.state, f"deployment:{event.deployment}", detail=detail)

    def _verdict(self, event: StageVerdict) -> None:
        if event.verdict in ("block", "redact"):
            detail = {"request_id": event.request_id, "detail": event.detail}
            self.record("firewall", "gateway", event.verdict, f"stage:{event.stage}", detail=detail)

    async def on_finish(self, ctx: RequestContext) -> None:
        """Tallies what a request tells about security: a failed authentication, a budget refusal or
        downgrade. Nothing to do for most requests."""
        if ctx.status < 400 and not ctx.choices:
            return
        if ctx.status == 401:
            self._tally(
                "auth_failures", mask_text(ctx.client or "unknown"), ctx.error_code or "unauthorized", ctx.request_id
            )
        refusal = ctx.refusal
        if refusal is not None and refusal.kind.startswith("budget"):
            actor = ctx.principal.key_id if ctx.principal else "unknown"
            self._tally("budget_refusals", actor, f"{refusal.kind}:{refusal.scope or '-'}", ctx.request_id)
        for choice in ctx.choices:
            if choice.reason == "budget_downgrade":
                actor = ctx.principal.key_id if ctx.principal else "unknown"
                self._tally("budget_downgrades", actor, f"{choice.requested}->{choice.chosen}", ctx.request_id)

    def _tally(self, kind: str, actor: str, target: str, request_id: str | None) -> None:
        now = self._clock.now()
        key = (kind, actor, target)
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= _MAX_TALLIES:
                key = (kind, _OTHER, _OTHER)
                tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = _Tally(now, now, 0, [])
        tally.count += 1
        tally.last = now
        if request_id is not None and len(tally.samples) < 3:
            tally.samples.append(request_id)

    def _close_window(self, force: bool = False) -> None:
        now = self._clock.now()
        if not self._tallies or (not force and now - self._window_start < self._window):
            if not self._tallies:
                self._window_start = now
            return
        tallies, self._tallies = self._tallies, {}
        self._window_start = now
        for (kind, actor, target), tally in tallies.items():
            detail = {"count": tally.count, "first": tally.first, "last": tally.last, "sample_requests": tally.samples}
            self.record(kind, actor, "tally", target, detail=detail)

    # -- the writer ---------------------------------------------------------------------------------------

    def _take(self) -> None:
        """Moves queued records into the batch, masked and in the database's form."""
        while self._queue and len(self._batch) < 500:
            item = self._queue.popleft()
            data = orjson.dumps(mask(item.data), option=orjson.OPT_SORT_KEYS, default=str).decode()
            self._batch.append(
                AuditEntry(
                    round(item.ts * 1_000_000),
                    item.kind[:32],
                    mask_text(item.actor)[:200],
                    item.action[:64],
                    mask_text(item.target)[:300],
                    data,
                )
            )

    async def flush(self) -> None:
        """Writes everything queued now (raises if the database refuses; the batch is kept for a retry)."""
        while self._queue or self._batch:
            self._take()
            await self._table.append(self.chain, self._batch)
            self.written += len(self._batch)
            self._batch = []

    async def _prune_if_due(self) -> None:
        now = self._clock.now()
        if now - self._pruned < 6 * 3600:
            return
        self._pruned = now
        try:
            pruned = await self._table.prune(round((now - self._retention) * 1_000_000))
        except Exception as exc:
            log.warning("audit retention pruning failed (%s); next try in 6 hours", type(exc).__name__)
            return
        if pruned:
            log.info("audit retention: %d record(s) older than %g days pruned", pruned, self._retention / 86400)

    async def _run(self) -> None:
        delay = self._flush_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            self._close_window()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.healthy:
                    log.error("audit log database unreachable (%s); records wait in memory", type(exc).__name__)
                self.healthy = False
                delay = min(delay * 2, 5.0)
                continue
            if not self.healthy:
                log.warning("audit log database is back")
            self.healthy = True
            delay = self._flush_seconds
            await self._prune_if_due()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._close_window(force=True)
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except Exception as exc:
            lost = len(self._queue) + len(self._batch)
            log.error("audit log: %d record(s) not written at shutdown (%s)", lost, type(exc).__name__)


class AuditCollector(Collector):
    """The audit log's records written and dropped, and whether its database takes them."""

    def __init__(self, audit: AuditLog) -> None:
        self._audit = audit

    def collect(self) -> Iterator[Metric]:
        audit = self._audit
        records = CounterMetricFamily(
            "sluicegate_audit_records",
            "Audit records by fate: written, or dropped (the queue was full while the database was away).",
            labels=["fate"],
        )
        records.add_metric(["written"], audit.written)
        records.add_metric(["dropped"], audit.dropped)
        yield records
        yield GaugeMetricFamily(
            "sluicegate_audit_writer_healthy",
            "1 while the database takes audit records, else 0.",
            value=int(audit.healthy),
        )
