"""OpenTelemetry traces: a span per request, per pipeline stage and per upstream attempt, with the GenAI
semantic conventions, exported over OTLP/HTTP; built (and OpenTelemetry imported) only when `tracing` is
configured, so with it off nothing on the request path changes.

How it stays cheap: every request gets a W3C trace id at the start (the client's, from `traceparent`, or a
new one), which the response header `x-sluice-trace-id`, the access log and the ledger row carry. Whether
it is sampled is decided then (the client's sampled flag, else the trace id against `sample_ratio`, the
way OpenTelemetry's TraceIdRatioBased sampler reads it). Only a sampled request's stage hooks are timed,
two clock reads each; its spans are created once it has finished, with the times recorded, and handed to
the SDK's batch processor, which exports them from its own thread.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from sluicegate.config.schema import TracingConfig
from sluicegate.pipeline.context import RequestContext

TRACE_HEADER = "x-sluice-trace-id"
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(slots=True)
class Trace:
    """A sampled request's trace: its parent (the client's span, if it sent one) and its stages' timings."""

    parent_span_id: int | None
    stages: list[tuple[str, str, float, float]] = field(default_factory=list)  # name, hook, start, end


def parse_traceparent(value: str | None) -> tuple[str, int, bool] | None:
    """(trace id, parent span id, sampled) from a W3C `traceparent` header, or None when it is absent or
    invalid (then the request starts a trace of its own)."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None or match.group(1) == _ZERO_TRACE or match.group(2) == _ZERO_SPAN:
        return None
    return match.group(1), int(match.group(2), 16), bool(int(match.group(3), 16) & 1)


class _Ids(RandomIdGenerator):
    """The SDK's id generator, but the next trace id is the request's own (spans are made after the fact)."""

    def __init__(self) -> None:
        self.next_trace_id: int | None = None

    def generate_trace_id(self) -> int:
        trace_id, self.next_trace_id = self.next_trace_id, None
        return trace_id if trace_id is not None else super().generate_trace_id()


class Tracing:
    def __init__(self, config: TracingConfig) -> None:
        self._bound = round(config.sample_ratio * (1 << 64))  # TraceIdRatioBased: the id's lower 64 bits
        self._ids = _Ids()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}), id_generator=self._ids
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=config.endpoint, timeout=config.export_timeout_seconds),
                max_queue_size=config.max_queue,
                schedule_delay_millis=config.export_interval_seconds * 1000,
            )
        )
        self._tracer = self.provider.get_tracer("sluicegate")
        # span times are recorded with perf_counter (CLOCK_MONOTONIC here, like the router's clock); this maps
        # them to the wall clock OpenTelemetry wants, in nanoseconds
        self._offset_ns = time.time_ns() - time.perf_counter_ns()

    def stages(self, pipeline: Sequence[object]) -> list[object]:
        """`pipeline` with the trace's first stage before it, its last after it, and every stage's request,
        response and finish hooks timed when the request is sampled."""
        return [TraceStart(self), *(_Timed.wrap(stage) for stage in pipeline), TraceFinish(self)]

    def start(self, ctx: RequestContext) -> None:
        incoming = parse_traceparent(ctx.headers.get("traceparent"))
        if incoming is not None:
            trace_id, parent, sampled = incoming
            ctx.trace_id = trace_id
            if sampled:
                ctx.trace = Trace(parent)
            return
        trace_id = os.urandom(16).hex()
        ctx.trace_id = trace_id
        if int(trace_id[16:], 16) < self._bound:
            ctx.trace = Trace(None)

    def finish(self, ctx: RequestContext) -> None:
        trace = ctx.trace
        if not isinstance(trace, Trace) or ctx.trace_id is None:
            return
        offset = self._offset_ns
        started = round(ctx.started * 1e9) + offset
        # the request's span covers its finish stages too (the ledger, the access log), which run after the
        # answer is complete
        last = max([ctx.finished_at or 0.0, *(end for _, _, _, end in trace.stages)]) or time.perf_counter()
        ended = round(last * 1e9) + offset
        parent = None
        if trace.parent_span_id is not None:
            remote = SpanContext(int(ctx.trace_id, 16), trace.parent_span_id, True, TraceFlags(TraceFlags.SAMPLED))
            parent = set_span_in_context(NonRecordingSpan(remote))
        else:
            self._ids.next_trace_id = int(ctx.trace_id, 16)
        operation = "embeddings" if ctx.endpoint == "embeddings" else "chat"
        root = self._tracer.start_span(
            f"{operation} {ctx.requested_model or '?'}",
            context=parent,
            kind=SpanKind.SERVER,
            start_time=started,
            attributes=_request_attributes(ctx, operation),
        )
        if ctx.status >= 500 or ctx.outcome not in ("ok", "client_error"):
            root.set_status(Status(StatusCode.ERROR, ctx.outcome))
        inside = set_span_in_context(root)
        for name, hook, begin, end in trace.stages:
            span = self._tracer.start_span(
                f"stage {name}",
                context=inside,
                start_time=round(begin * 1e9) + offset,
                attributes={"sluicegate.stage": name, "sluicegate.hook": hook},
            )
            span.end(end_time=round(end * 1e9) + offset)
        for attempt in ctx.attempt_log:
            if not attempt.started:
                continue
            span = self._tracer.start_span(
                f"{operation} {attempt.model or attempt.deployment}",
                context=inside,
                kind=SpanKind.CLIENT,
                start_time=round(attempt.started * 1e9) + offset,
                attributes={
                    "gen_ai.operation.name": operation,
                    "gen_ai.request.model": attempt.model or attempt.deployment,
                    "gen_ai.provider.name": provider_name(attempt.provider),
                    "sluicegate.deployment": attempt.deployment,
                    "sluicegate.attempt.outcome": attempt.outcome,
                },
            )
            if attempt.outcome not in ("ok", "cancelled"):
                span.set_status(Status(StatusCode.ERROR, attempt.outcome))
            span.end(end_time=round((attempt.ended or attempt.started) * 1e9) + offset)
        root.end(end_time=ended)

    async def stop(self) -> None:
        self.provider.shutdown()  # exports what is queued (bounded by the exporter's timeout)


# the GenAI semantic conventions' names for the provider families this gateway speaks
_PROVIDER_NAMES = {"gemini": "gcp.gemini", "bedrock": "aws.bedrock", "azure": "azure.ai.openai"}


def provider_name(family: str) -> str:
    return _PROVIDER_NAMES.get(family, family)


def _request_attributes(ctx: RequestContext, operation: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": ctx.requested_model or "",
        "http.response.status_code": ctx.status,
        "sluicegate.request_id": ctx.request_id,
        "sluicegate.outcome": ctx.outcome,
        "sluicegate.client_format": ctx.client_format,
    }
    request = ctx.request
    for name, attribute in (("max_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        value = getattr(request, name, None)
        if value is not None:
            attributes[f"gen_ai.request.{attribute}"] = value
    if ctx.deployment is not None:
        attributes["gen_ai.response.model"] = ctx.deployment.model
        attributes["gen_ai.provider.name"] = provider_name(ctx.deployment.family)
        attributes["sluicegate.deployment"] = ctx.deployment.name
    if ctx.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = ctx.usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = ctx.usage.output_tokens
    if ctx.cost_micros is not None:
        attributes["sluicegate.cost_usd"] = ctx.cost_micros / 1_000_000
    if ctx.route_reason:
        attributes["sluicegate.route_reason"] = ctx.route_reason
    if ctx.principal is not None:  # ids, never secrets; the key id names the key, not its material
        attributes["sluicegate.key_id"] = ctx.principal.key_id
        if ctx.principal.team_id:
            attributes["sluicegate.team"] = ctx.principal.team_id
    for name in ("route_tier", "task_type", "cache_status", "guardrail_action"):
        value = getattr(ctx, name)
        if value is not None:
            attributes[f"sluicegate.{name}"] = value
    if ctx.time_to_first_token is not None:
        attributes["sluicegate.time_to_first_token_s"] = ctx.time_to_first_token
    return attributes


class TraceStart:
    """First on the request path: gives the request its trace id and decides whether it is sampled."""

    name = "trace"

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    async def on_request(self, ctx: RequestContext) -> None:
        self._tracing.start(ctx)
        return None


class TraceFinish:
    """Last: a sampled request's spans, once everything else has run."""

    name = "trace_export"

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing

    async def on_finish(self, ctx: RequestContext) -> None:
        self._tracing.finish(ctx)


class _Timed:
    """A stage whose request, response and finish hooks are timed on sampled requests; every other hook and
    attribute is the stage's own."""

    def __init__(self, stage: object) -> None:
        self._stage = stage
        self.name: str = getattr(stage, "name", type(stage).__name__)
        for hook in ("on_request", "on_response", "on_finish"):
            inner = getattr(stage, hook, None)
            if inner is not None:
                setattr(self, hook, _timed(self.name, hook, inner))

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._stage, attribute)

    @staticmethod
    def wrap(stage: object) -> object:
        if not any(hasattr(stage, hook) for hook in ("on_request", "on_response", "on_finish")):
            return stage
        return _Timed(stage)


def _timed(name: str, hook: str, inner: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def timed(ctx: RequestContext, *args: Any) -> Any:
        trace = ctx.trace
        if trace is None:
            return await inner(ctx, *args)
        began = time.perf_counter()
        try:
            return await inner(ctx, *args)
        finally:
            trace.stages.append((name, hook, began, time.perf_counter()))

    return timed
