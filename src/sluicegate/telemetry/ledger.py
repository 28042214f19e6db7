"""The spend ledger: one row per request (refused ones included), spooled to disk, written in batches.

The finish stage appends a line to the spool before the client receives the end of its answer (no
database I/O on the request path) and, while the writer keeps up, hands the same record to the writer in
memory, which puts it in the database's form when it takes it. The writer inserts
batches with ON CONFLICT DO NOTHING on the request id. When it falls behind by more than the in-memory
allowance (a database outage, a long overload) it drops the in-memory copies and reads the spool instead,
from where it stands, until it has caught up; after a restart it replays whatever the spool still holds.
So after an outage or a killed process every record arrives exactly once, and memory stays bounded
whatever the outage length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from sluicegate.errors import GatewayError
from sluicegate.keys.clock import Clock, system_clock
from sluicegate.pipeline.bill import Bill, request_bill, stream_estimate
from sluicegate.pipeline.context import RequestContext
from sluicegate.telemetry.refusals import refused_anonymously
from sluicegate.telemetry.spool import Cursor, Spool

log = logging.getLogger("sluicegate.ledger")


IN_FLIGHT = "in_flight"  # the outcome of a stream's row until its final row replaces it


def in_flight_row(ctx: RequestContext, now: float, *, exact_prompt: bool = True) -> dict[str, Any]:
    """The row of a stream still running: its usage so far, estimated. Spooled when its head goes to the
    client and every few seconds after, it is what the ledger keeps of a stream whose process is killed;
    the final row replaces it (the table's upsert only ever overwrites an in-flight row)."""
    usage = stream_estimate(ctx, exact_prompt=exact_prompt)
    deployment = ctx.deployment
    price = deployment.price if deployment is not None else None
    micros = price.cost_micros(usage) if price is not None else None
    row = ledger_row(ctx, now, Bill(usage, micros, True))
    row["outcome"] = IN_FLIGHT
    return row


def ledger_row(ctx: RequestContext, now: float, bill: Bill | None = None) -> dict[str, Any]:
    """The ledger record of a finished request, as JSON-ready values (the spool's line format)."""
    principal = ctx.principal
    request = ctx.request
    headers = ctx.headers
    feature = headers.get("x-sluice-feature")
    end_user = headers.get("x-sluice-user")
    if request is not None:
        end_user = request.user or end_user
        if feature is None:
            metadata = request.params.get("metadata")
            if isinstance(metadata, dict) and isinstance(metadata.get("feature"), str):
                feature = metadata["feature"]
    if feature is None and principal is not None:
        feature = principal.metadata.get("feature")  # a key made for one feature
    if bill is None:
        bill = request_bill(ctx)  # the same bill the budgets were charged
    usage = bill.usage
    deployment = ctx.deployment
    latency = ctx.latency
    ttft = ctx.time_to_first_token
    return {
        "request_id": ctx.request_id,
        "ts": now,
        "tenant_id": principal.tenant_id if principal else None,
        "team_id": principal.team_id if principal else None,
        "user_id": principal.user_id if principal else None,
        "key_id": principal.key_id if principal else None,
        "feature": feature[:200] if feature else None,
        "end_user": end_user[:200] if end_user else None,
        "endpoint": ctx.endpoint,
        "model": ctx.model[:200],
        "deployment": deployment.name[:200] if deployment else None,
        "provider": deployment.endpoint.name[:64] if deployment else None,
        "input_tokens": usage.input_tokens if usage else 0,
        "output_tokens": usage.output_tokens if usage else 0,
        "cached_input_tokens": usage.cached_input_tokens if usage else 0,
        "reasoning_tokens": usage.reasoning_tokens if usage else 0,
        "cost_micros": bill.micros,
        "usage_estimated": bill.estimated,
        "latency_ms": round(latency * 1000, 3) if latency is not None else None,
        "ttft_ms": round(ttft * 1000, 3) if ttft is not None else None,
        "cache_status": ctx.cache_status[:16] if ctx.cache_status else None,
        "outcome": ctx.outcome[:32],
        "status": ctx.status,
        "stream": bool(getattr(request, "stream", False)),
        "requested_model": ctx.requested_model[:200] if request is not None else None,
        "route_tier": ctx.route_tier[:32] if ctx.route_tier else None,
        "task_type": ctx.task_type[:32] if ctx.task_type else None,
        "complexity": ctx.complexity,
        "guardrail_action": ctx.guardrail_action[:16] if ctx.guardrail_action else None,
        "guardrail_categories": ",".join(sorted(ctx.guardrail_categories))[:200] or None,
        "saved_micros": ctx.saved_micros,
        "trace_id": ctx.trace_id[:32] if ctx.trace_id else None,
    }


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_safe(record: dict[str, Any]) -> dict[str, Any]:
    """The record with lone surrogates (which JSON as UTF-8 cannot carry) replaced by U+FFFD."""
    return {k: _SURROGATE.sub("\ufffd", v) if isinstance(v, str) else v for k, v in record.items()}


def ledger_unavailable() -> GatewayError:
    return GatewayError(
        503,
        "The gateway cannot record requests right now (its ledger spool is full or failing), so it serves "
        "none it could not bill; retry shortly.",
        type="server_error",
        code="ledger_unavailable",
        headers={"retry-after": "5"},
    )


Alert = Callable[[str, str, dict[str, Any]], None]  # (event, text, details): to the operators' webhooks
SpoolPolicy = Literal["refuse", "serve"]


def refused_as_data(exc: DBAPIError) -> bool:
    """The database refused the rows themselves (SQLSTATE class 22 or 23), as opposed to being away."""
    if isinstance(exc, (DataError, IntegrityError)):
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state[:2] in ("22", "23")


class LedgerTable(Protocol):
    """Where the rows go (`store.spend.SpendLedger`)."""

    def prepare(self, record: Mapping[str, Any]) -> Any: ...

    def unattributed(self, record: Mapping[str, Any]) -> Any: ...

    def close_in_flight(self, prefix: str, since: float) -> Awaitable[int]: ...

    def insert_prepared(self, rows: Sequence[Any]) -> Awaitable[None]: ...


_LINGER_SECONDS = 0.05
_MEMORY_BATCHES = 40  # rows held in memory for the writer, in batches; beyond that it reads the spool
_UNSPOOLED_LIMIT = 10_000  # records the spool could not take, held for it or the database meanwhile
_TEND_SECONDS = 1.0  # how often the writer looks at the spool's free space
_ALERT_EVERY_SECONDS = 60.0  # one alert of a kind a minute at most; the metrics count every event
_PROGRESS_SECONDS = 2.0  # how often the row of each open stream is spooled again with its usage so far


class _Batch:
    __slots__ = ("after", "records", "rows")

    def __init__(self, records: list[dict[str, Any]], rows: list[Any], after: Cursor) -> None:
        self.records = records
        self.rows = rows
        self.after = after


class LedgerGuard:
    """A request stage, first of all under policy "refuse": no request is served that could not be recorded."""

    name = "ledger_guard"

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    async def on_request(self, ctx: RequestContext) -> None:
        if not self._ledger.accepting:
            raise ledger_unavailable()


class Ledger:
    """The finish stage and its writer task. Its row is spooled before the client receives the end of its
    answer (`before_reply`): a process killed at any moment loses no answer a client got."""

    name = "ledger"
    before_reply = True

    def __init__(
        self,
        spool: Spool,
        table: LedgerTable,
        *,
        batch_size: int = 100,
        timeout: float = 5.0,
        clock: Clock = system_clock,
        reserve_bytes: int = 1 << 20,
        full_policy: SpoolPolicy = "refuse",
        alert: Alert | None = None,
    ) -> None:
        self._spool = spool
        self._reserve_bytes = reserve_bytes
        self.full_policy = full_policy
        self.alert = alert
        self._last_alert: dict[str, float] = {}
        self._table = table
        self._batch_size = batch_size
        self._timeout = timeout
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cursor = Cursor(0, 0)
        # (record, spool cursor after it) for every record after the writer's cursor, while `_in_memory`;
        # otherwise the writer reads them back from the spool. Either way the writer prepares the rows for
        # the database, off the request's path (the record is spooled before the client's answer goes).
        self._memory: deque[tuple[dict[str, Any], Cursor]] = deque()
        self._in_memory = False
        self._memory_limit = batch_size * _MEMORY_BATCHES
        self.written = 0  # rows handed to the database (replayed duplicates included)
        self.failures = 0
        self.rejected = 0  # rows the database refused as data (kept in the spool's rejected file)
        self.unattributed = 0  # of those, rows recorded without their texts (so still in every report)
        self.lost = 0  # records neither spooled nor written (the spool failed and the holding area was full)
        self.spool_failures = 0
        self.healthy = True
        # Records the spool could not take (a full disk): held here, in order, until the spool or the database
        # takes them. While any wait, or free space is under the reserve, `accepting` is False and (policy
        # "refuse") new requests are answered 503 `ledger_unavailable` before anything is served.
        self._unspooled: deque[dict[str, Any]] = deque()
        self.accepting = True
        self._spool_trouble = False
        self.spool_free_bytes: int | None = None
        self._tended = 0.0
        # Streams whose head went to a client, by request id: their in-flight rows are spooled again every
        # few seconds (a stopping gateway ends them through `Pipeline.interrupt`).
        self._open: dict[str, RequestContext] = {}
        self._progressed = 0.0

    def on_open(self, ctx: RequestContext) -> None:
        """A stream's head is about to reach the client: its in-flight row is spooled first (one buffered
        append, as for any row), so a process killed from here on still leaves a row for it."""
        self._open[ctx.request_id] = ctx
        record = in_flight_row(ctx, self._clock(), exact_prompt=False)  # no tokenizer on the request path
        after = self._append(record)
        if after is not None:
            self._follow(after, record)

    def open_streams(self) -> int:
        return len(self._open)

    def _spool_progress(self) -> None:
        """Spools the in-flight row of each stream open for a while again, with its usage so far: after a
        kill, the ledger has each one's estimate as of at most this interval before."""
        now = time.monotonic()
        if not self._open or now - self._progressed < _PROGRESS_SECONDS:
            return
        self._progressed = now
        started_before = time.perf_counter() - _PROGRESS_SECONDS
        wall = self._clock()
        for ctx in list(self._open.values()):
            if not ctx.sealed and ctx.started < started_before:
                record = in_flight_row(ctx, wall)
                after = self._append(record)
                if after is not None:
                    self._follow(after, record)

    async def on_finish(self, ctx: RequestContext) -> None:
        self._open.pop(ctx.request_id, None)
        if refused_anonymously(ctx):  # anyone can send those, and no provider was paid: no row
            return
        record = ledger_row(ctx, self._clock())
        after = self._append(record)
        if after is not None:
            self._follow(after, record)

    def _follow(self, after: Cursor, record: dict[str, Any] | None = None) -> None:
        """The writer takes what was just spooled: from memory while it keeps up, else from the spool."""
        if self._in_memory:
            if record is not None and len(self._memory) < self._memory_limit:
                self._memory.append((record, after))  # put in the database's form by the writer, later
            else:  # too far behind (or not kept): the spool has it all, read from there
                self._leave_memory()
        self._wake.set()

    def _append(self, record: dict[str, Any]) -> Cursor | None:
        """Spools the record; None when the spool could not take it (it is then held for the writer)."""
        try:
            try:
                return self._spool.append(record)
            except TypeError:  # a text JSON cannot carry (a lone surrogate): the record is never lost for it
                record = json_safe(record)
                return self._spool.append(record)
        except Exception as exc:  # a full disk must not fail the request; the record is held, loudly
            self._spool_failed(record, exc)
            return None

    def _spool_failed(self, record: dict[str, Any], exc: Exception) -> None:
        self.spool_failures += 1
        self._leave_memory()  # what follows may not be contiguous with the spool any more
        if len(self._unspooled) < _UNSPOOLED_LIMIT:
            self._unspooled.append(record)
        else:
            self.lost += 1
            log.error("ledger record of %s lost: the spool fails and the holding area is full", record["request_id"])
            self._alert("ledger_record_lost", "a ledger record was lost: the spool fails and memory is full", {})
        self._set_trouble(True, f"the spool could not take a record ({type(exc).__name__})")
        self._wake.set()

    def _set_trouble(self, trouble: bool, reason: str) -> None:
        """Whether the spool can take records; under policy "refuse", new requests are refused meanwhile."""
        if trouble == self._spool_trouble:
            return
        self._spool_trouble = trouble
        self.accepting = not trouble or self.full_policy == "serve"
        if not trouble:
            log.warning("ledger spool recovered: %s", reason)
            return
        action = "new requests are refused with 503 ledger_unavailable" if not self.accepting else "requests are served"
        log.error("ledger spool under pressure (%s); %s", reason, action)
        self._alert(
            "ledger_spool_pressure",
            f"Sluicegate: the ledger spool of this instance is under pressure ({reason}); {action}.",
            {"reason": reason, "free_bytes": self.spool_free_bytes, "held_records": len(self._unspooled)},
        )

    def _alert(self, event: str, text: str, details: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self._last_alert.get(event, -_ALERT_EVERY_SECONDS) < _ALERT_EVERY_SECONDS:
            return
        self._last_alert[event] = now
        if self.alert is not None:
            try:
                self.alert(event, text, details)
            except Exception as exc:  # an alert must never stop the writer
                log.warning("ledger alert failed: %s", type(exc).__name__)

    @property
    def spool_trouble(self) -> bool:
        """The spool cannot take records now (whatever the policy does about it)."""
        return self._spool_trouble

    async def _tend_spool(self) -> None:
        """Looks at the spool's free space (at most every second), puts held records back in the spool or
        straight in the database, and lifts the refusal once the spool takes records again."""
        now = time.monotonic()
        if now - self._tended < _TEND_SECONDS and not (self._unspooled and self.healthy):
            return
        self._tended = now
        try:
            free = self.spool_free_bytes = self._spool.free_bytes()
        except OSError:
            free = None
        roomy = free is None or free >= self._reserve_bytes
        if roomy and self._spool_trouble:
            try:  # after a failed write, the disk must take a write again before it is trusted
                self._spool.probe()
            except OSError:
                roomy = False
        while self._unspooled and roomy:
            record = self._unspooled[0]
            try:
                self._spool.append(record)
            except OSError:
                break
            self._unspooled.popleft()
            self._leave_memory()  # the writer reads them back from the spool
        if self._unspooled and self.healthy:  # the spool still refuses them: straight to the database
            held = list(self._unspooled)[: self._batch_size]
            try:
                await self._write(_Batch(held, [self._table.prepare(record) for record in held], self._cursor))
            except Exception as exc:  # the database is away too: they wait here (and the refusal stands)
                log.warning("held ledger records could not be written yet: %s", type(exc).__name__)
            else:
                for _ in held:
                    self._unspooled.popleft()
                self.written += len(held)
        if not roomy:
            self._set_trouble(True, f"{free} bytes free on its disk (reserve {self._reserve_bytes}) or writes fail")
        elif self._unspooled:
            self._set_trouble(True, f"{len(self._unspooled)} records wait for it")
        else:
            self._set_trouble(False, f"{free} bytes free and no record waiting")

    async def _close_dead_streams(self) -> None:
        """Once the segments of dead processes are replayed (the writer has caught up), the in-flight rows
        of their streams are marked `interrupted`: those streams will never end."""
        done = []
        for owner in self._spool.dead_owners:
            try:
                closed = await asyncio.wait_for(
                    self._table.close_in_flight(owner["prefix"], float(owner.get("started", 0))), self._timeout
                )
            except Exception as exc:  # the database is away: next time
                log.warning("could not close the streams of a stopped instance yet: %s", type(exc).__name__)
                break
            done.append(owner)
            if closed:
                log.warning("%d stream(s) left by an instance that stopped are marked interrupted", closed)
        self._spool.forget_dead_owners(done)

    def held_records(self) -> int:
        return len(self._unspooled)

    def _leave_memory(self) -> None:
        """The writer reads the spool from its cursor on, until it has caught up again."""
        self._in_memory = False
        self._memory.clear()

    async def start(self) -> None:
        self._cursor = self._spool.start()
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()  # replay whatever a previous process left

    async def stop(self, drain_seconds: float = 5.0) -> None:
        """Flushes what it can within `drain_seconds`; the rest stays in the spool for the next start.
        Tried even while the last write failed: a database that came back moments before the stop (the
        writer between two retries) still takes what waits, rather than leaving it to a start that may
        never come (an instance scaled down)."""
        if self._task is None:
            return
        deadline = time.monotonic() + drain_seconds
        while not self._spool.caught_up(self._cursor) and time.monotonic() < deadline:
            self._wake.set()
            await asyncio.sleep(0.02)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def pending(self) -> bool:
        return not self._spool.caught_up(self._cursor)

    async def _insert_each(self, batch: _Batch) -> None:
        for record, row in zip(batch.records, batch.rows, strict=True):
            try:
                await asyncio.wait_for(self._table.insert_prepared([row]), self._timeout)
            except DBAPIError as exc:
                if not refused_as_data(exc):
                    raise
                await self._record_unattributed(record, type(exc).__name__)

    async def _record_unattributed(self, record: dict[str, Any], reason: str) -> None:
        """A row the database refused even with its texts normalised: its spend is still recorded, without
        the texts (`model` = "(unattributed)"), and the whole record is kept in the rejected file."""
        try:
            row = self._table.unattributed(record)
            await asyncio.wait_for(self._table.insert_prepared([row]), self._timeout)
        except DBAPIError as exc:
            if not refused_as_data(exc):
                raise
            self._set_aside(record, f"{reason}; even without its texts: {type(exc).__name__}")
            return
        except Exception as exc:  # a record that cannot even be put in that form: set aside, loudly
            if isinstance(exc, (OSError, TimeoutError)):
                raise
            self._set_aside(record, f"{reason}; even without its texts: {type(exc).__name__}")
            return
        self.unattributed += 1
        self._set_aside(record, f"{reason}; recorded as unattributed spend")

    def _next_batch(self) -> _Batch | None:
        """The next rows after the cursor: from memory while it holds them, else from the spool."""
        if self._in_memory:
            if not self._memory:
                return None
            # Behind by more than a batch (a busy core): larger inserts, so the writer's turns on a busy
            # event loop, not the database, stop being what limits it. Memory mode costs the loop little.
            size = self._batch_size if len(self._memory) <= 2 * self._batch_size else 4 * self._batch_size
            taken = [self._memory.popleft() for _ in range(min(size, len(self._memory)))]
            records, after = [t[0] for t in taken], taken[-1][1]
        else:
            records, after = self._spool.read(self._cursor, self._batch_size)
            if self._spool.caught_up(after):
                # Nothing is in flight between here and the next await: every record appended from now on
                # follows `after`, so memory can take over.
                self._in_memory = True
                self._memory.clear()
        kept, rows = [], []
        for record in records:
            try:
                rows.append(self._table.prepare(record))
            except Exception as exc:  # a line no version of the table can take: set aside, never a stall
                self._set_aside(record, f"unreadable record: {type(exc).__name__}")
                continue
            kept.append(record)
        if not kept:
            self._advance(after)
            return None
        return _Batch(kept, rows, after)

    def _set_aside(self, record: Any, reason: str) -> None:
        """Keeps a record the table cannot take in the spool's rejected file, loudly, so the rest flow."""
        if not isinstance(record, dict):
            record = {"line": record}
        try:
            self._spool.reject(record, reason)
        except (OSError, TypeError) as exc:
            log.error("could not keep the refused ledger record in the rejected file: %s", type(exc).__name__)
        self.rejected += 1
        log.error(
            "the ledger row of %s was set aside (%s); kept in %s",
            record.get("request_id"),
            reason,
            self._spool.rejected_path,
        )
        self._alert(
            "ledger_row_refused",
            f"Sluicegate: the database refused a ledger row ({reason}). The whole record is kept in "
            f"{self._spool.rejected_path}.",
            {"request_id": record.get("request_id"), "reason": reason},
        )

    def _advance(self, after: Cursor) -> None:
        if self._spool.caught_up(after) and self._spool.size >= 256 * 1024:
            try:
                self._spool.rotate()  # keeps what a restart must replay small
            except OSError:
                pass  # a full disk: the segment is kept a while longer
            else:
                after = Cursor(self._spool.segment, 0)
        if after != self._cursor:
            self._cursor = after
            self._spool.release_before(after)

    async def _write(self, batch: _Batch) -> None:
        try:
            await asyncio.wait_for(self._table.insert_prepared(batch.rows), self._timeout)
        except DBAPIError as exc:
            if not refused_as_data(exc):
                raise
            await self._insert_each(batch)  # a refused row must not hold back the rest

    async def _run(self) -> None:
        delay = 0.1
        batch: _Batch | None = None
        while True:
            await self._spool.sync_if_due()
            await self._tend_spool()
            self._spool_progress()
            if batch is None:
                try:
                    batch = self._next_batch()
                except OSError as exc:  # the spool could not be read (a disk error): try again, loudly
                    log.error("could not read the ledger spool: %s", type(exc).__name__)
                    await asyncio.sleep(1.0)
                    continue
            if batch is None:
                if self._spool.dead_owners and self.healthy:
                    await self._close_dead_streams()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                continue
            try:
                await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                if self.healthy:
                    log.error("ledger database unreachable (%s); records wait in the spool", type(exc).__name__)
                self.healthy = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue  # the same batch again: it is still in the spool should the process die meanwhile
            if not self.healthy:
                log.warning("ledger database is back; replaying the spool")
            self.healthy = True
            delay = 0.1
            size = len(batch.rows)
            self.written += size
            self._advance(batch.after)
            batch = None
            if size < self._batch_size // 4:
                # Let a small batch grow before the next transaction: fewer, larger inserts cost the event
                # loop's process far less (the rows are already durable in the spool meanwhile).
                await asyncio.sleep(_LINGER_SECONDS)
