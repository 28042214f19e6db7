"""The record stage: metrics for every request, whatever its outcome, and its access line (those refused
before authentication at a bounded rate per source address: `telemetry/refusals.py`)."""

from __future__ import annotations

from typing import Any

from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.records import ChoiceReason
from sluicegate.telemetry.access_log import AccessLog
from sluicegate.telemetry.metrics import GatewayMetrics
from sluicegate.telemetry.refusals import AnonymousRefusals, refused_anonymously

_CHOICE_FIELDS: dict[ChoiceReason, str] = {
    "economy": "economy_from",
    "budget_downgrade": "downgraded_from",
    "auto": "auto_from",
}


class Record:
    name = "record"

    def __init__(
        self, metrics: GatewayMetrics, access_log: AccessLog, refusals: AnonymousRefusals | None = None
    ) -> None:
        self._metrics = metrics
        self._access_log = access_log
        self._refusals = refusals or AnonymousRefusals()

    def flush(self) -> None:
        """Writes the summaries of anonymous refusals not yet written (at shutdown)."""
        for summary in self._refusals.due(force=True):
            self._access_log.write(summary)

    async def on_finish(self, ctx: RequestContext) -> None:
        latency = ctx.latency or 0.0
        ttft = ctx.time_to_first_token
        usage = ctx.usage
        tokens = (
            (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens, usage.reasoning_tokens)
            if usage is not None
            else None
        )
        metrics = self._metrics
        metrics.observe(ctx.model, ctx.endpoint, ctx.status, ctx.outcome, latency, ttft, tokens)
        bill = ctx.bill
        if bill is not None and bill.usage is not None:
            principal = ctx.principal
            billed = bill.usage
            team = principal.team_id if principal is not None else None
            metrics.observe_spend(ctx.model, team, bill.micros or 0, billed.input_tokens, billed.output_tokens)
        if refused_anonymously(ctx):  # anyone can send these: bounded lines, not one each
            refusals = self._refusals
            for summary in refusals.due():
                self._access_log.write(summary)
            if not refusals.note(ctx.client, ctx.status):
                return
        entry: dict[str, Any] = {
            "request_id": ctx.request_id,
            "key_id": ctx.principal.key_id if ctx.principal else None,
            "endpoint": ctx.endpoint,
            "model": ctx.model,
            "deployment": ctx.deployment.name if ctx.deployment else None,
            "status": ctx.status,
            "outcome": ctx.outcome,
            "stream": getattr(ctx.request, "stream", False),
            "attempts": ctx.attempts,
            "route_reason": ctx.route_reason or None,
            "attempt_log": [str(attempt) for attempt in ctx.attempt_log] or None,
            "side_attempts": [
                {
                    "deployment": a.deployment.name,
                    "input_tokens": a.usage.input_tokens,
                    "output_tokens": a.usage.output_tokens,
                    "estimated": a.estimated,
                }
                for a in ctx.side_attempts
            ]
            or None,
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cached_input_tokens": usage.cached_input_tokens if usage else None,
            "reasoning_tokens": usage.reasoning_tokens if usage else None,
            "latency_ms": round(latency * 1000, 3),
            "ttft_ms": round(ttft * 1000, 3) if ttft is not None else None,
        }
        if ctx.error_code:
            entry["error_code"] = ctx.error_code
        if ctx.trace_id is not None:
            entry["trace_id"] = ctx.trace_id
        if ctx.operator_actions:  # decisions that changed this request, from their records
            entry["operator_action"] = ctx.operator_actions
        for choice in ctx.choices:
            entry[_CHOICE_FIELDS[choice.reason]] = choice.requested
        if ctx.refusal is not None:
            entry["refusal"] = {"kind": ctx.refusal.kind, "scope": ctx.refusal.scope}
        if ctx.verdicts:
            entry["verdicts"] = [{"stage": v.stage, "verdict": v.verdict, "detail": v.detail} for v in ctx.verdicts]
        if ctx.cut_off:
            entry["cut_off"] = "budget_reservation"
        self._access_log.write(entry)
