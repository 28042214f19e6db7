"""The meter, a chunk stage: counts a stream's output as it flows and, when the next chunk would overrun
the budget reservation, ends the stream cleanly with `finish_reason: "length"`."""

from __future__ import annotations

import math
from typing import Any

from sluicegate.canonical import ChatChunk, Usage
from sluicegate.pipeline.admission import Ticket
from sluicegate.pipeline.context import RequestContext
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import output_micros
from sluicegate.tokens import TokenCounter

CUT_OFF_NOTE = {
    "cut_off": "budget_reservation",
    "note": "The gateway ended this stream: the next output would have exceeded what the budget reserved.",
}


def _delta_text(choices: list[dict[str, Any]]) -> str:
    parts = []
    for choice in choices:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            parts.append(delta["content"])
        if delta.get("refusal"):
            parts.append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            parts.append(function.get("name") or "")
            parts.append(function.get("arguments") or "")
    return "".join(parts)


class StreamMeter:
    name = "meter"

    def __init__(self, counter: TokenCounter, metrics: LimitMetrics) -> None:
        self._counter = counter
        self._metrics = metrics

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        ticket: Ticket | None = ctx.admission
        if ticket is None or not ticket.plan.budgets:
            return chunk
        if ticket.cut_off:
            return None
        text = _delta_text(chunk.choices)
        if not text:
            return chunk
        model = ctx.deployment.model if ctx.deployment is not None else ctx.model
        raw = ticket.raw_output_tokens + self._counter.count_output(model, text)
        produced = math.ceil(raw * (1 + self._counter.margin_for(model)))
        spend = ticket.plan.input_micros + output_micros(produced, ticket.output_pico)
        if produced <= ticket.admission.output_tokens and spend <= ticket.admission.reserved_micros:
            ticket.output_tokens = produced
            ticket.raw_output_tokens = raw
            return chunk
        return self._cut(ctx, ticket, chunk)

    def _cut(self, ctx: RequestContext, ticket: Ticket, chunk: ChatChunk) -> ChatChunk:
        ticket.cut_off = True
        ctx.cut_off = True
        usage = Usage(input_tokens=ticket.prompt_tokens, output_tokens=ticket.output_tokens)
        ctx.usage = usage
        deployment = ctx.deployment
        if deployment is not None and deployment.price is not None:
            ctx.cost_micros = deployment.price.cost_micros(usage)
        ctx.usage_extension = dict(CUT_OFF_NOTE)
        self._metrics.cutoffs.labels(ctx.model).inc()
        indexes = sorted({int(choice.get("index", 0)) for choice in chunk.choices}) or [0]
        return ChatChunk(
            id=chunk.id,
            model=chunk.model,
            created=chunk.created,
            choices=[{"index": i, "delta": {}, "finish_reason": "length"} for i in indexes],
            usage=usage,
            extra=chunk.extra,
        )
