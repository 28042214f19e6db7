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


def _delta_text(choice: dict[str, Any]) -> str:
    delta = choice.get("delta") or {}
    parts = []
    if delta.get("content"):
        parts.append(delta["content"])
    if delta.get("refusal"):
        parts.append(delta["refusal"])
    if delta.get("reasoning_content"):  # thoughts are billed as output
        parts.append(delta["reasoning_content"])
    for call in delta.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(function.get("name") or "")
        parts.append(function.get("arguments") or "")
    return "".join(parts)


class StreamMeter:
    name = "meter"
    edits_chunks = False  # a cut-off is a new chunk; the others pass as they came

    def __init__(self, counter: TokenCounter, metrics: LimitMetrics) -> None:
        self._counter = counter
        self._metrics = metrics

    def on_chunk(self, ctx: RequestContext, chunk: ChatChunk) -> ChatChunk | None:
        ticket: Ticket | None = ctx.admission
        if ticket is None or not ticket.plan.budgets:
            return chunk
        if ticket.cut_off:
            return None
        model = ctx.deployment.model if ctx.deployment is not None else ctx.model
        counted = 0
        ended: list[int] = []
        for choice in chunk.choices:  # each choice counted alone: n answers cost the sum of their tokens
            text = _delta_text(choice)
            if text:
                counted += self._counter.count_output(model, text)
            if choice.get("finish_reason") is not None:
                ended.append(int(choice.get("index", 0)))
        if counted:
            raw = ticket.raw_output_tokens + counted
            produced = math.ceil(raw * (1 + self._counter.margin_for(model)))
            spend = ticket.plan.input_micros + output_micros(produced, ticket.output_pico)
            granted = ticket.admission.output_tokens * ticket.plan.choices
            if produced > granted or spend > ticket.admission.reserved_micros:
                return self._cut(ctx, ticket, chunk)
            ticket.output_tokens = produced
            ticket.raw_output_tokens = raw
        if ended and ticket.plan.choices > 1:
            if ticket.finished_choices is None:
                ticket.finished_choices = set()
            ticket.finished_choices.update(ended)
        return chunk

    def _cut(self, ctx: RequestContext, ticket: Ticket, chunk: ChatChunk) -> ChatChunk:
        ticket.cut_off = True
        ctx.cut_off = True
        usage = Usage(input_tokens=ticket.prompt_tokens, output_tokens=ticket.output_tokens)
        ctx.usage = usage
        deployment = ctx.deployment
        if deployment is not None and deployment.price is not None:
            ctx.cost_micros = deployment.price.cost_micros(usage)
        ctx.usage_extension = {**(ctx.usage_extension or {}), **CUT_OFF_NOTE}
        self._metrics.cutoffs.labels(ctx.model).inc()
        # every choice still open ends here, not only those in this chunk
        finished = ticket.finished_choices or set()
        indexes = [i for i in range(ticket.plan.choices) if i not in finished]
        indexes += sorted({int(c.get("index", 0)) for c in chunk.choices} - set(indexes) - finished)
        indexes = indexes or [0]
        return ChatChunk(
            id=chunk.id,
            model=chunk.model,
            created=chunk.created,
            choices=[{"index": i, "delta": {}, "finish_reason": "length"} for i in indexes],
            usage=usage,
            extra=chunk.extra,
        )
