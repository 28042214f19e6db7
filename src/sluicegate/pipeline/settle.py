"""The settle stage: commit the actual cost in every budget the request reserved in, release the rest,
correct the token windows, and count the call against its deployment's upstream limits. It runs for
every outcome (success, upstream error, cancel, disconnect); a request that crashed before settling is
released when its reservation expires."""

from __future__ import annotations

import logging

from sluicegate.events import BudgetThreshold, EventBus
from sluicegate.pipeline.admission import AdmissionStage, Ticket
from sluicegate.pipeline.bill import request_bill
from sluicegate.pipeline.context import RequestContext
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.model import HotState, Settlement

log = logging.getLogger("sluicegate.settle")


def actual_cost(ctx: RequestContext, ticket: Ticket) -> int:
    """What the budgets are charged, in micro-dollars: the request's bill (the same the ledger records,
    estimates included). When a call on it has no known price, the reservation's ceiling is spent."""
    bill = request_bill(ctx)
    if bill.micros is not None:
        return bill.micros
    if bill.usage is not None and bill.usage.total_tokens > 0:
        return int(ticket.admission.reserved_micros)  # unknown price, ceiling policy
    return 0


class SettleStage:
    name = "settle"

    def __init__(
        self,
        state: HotState,
        admission: AdmissionStage,
        metrics: LimitMetrics,
        events: EventBus | None = None,
        thresholds: tuple[float, ...] = (),
    ) -> None:
        self._state = state
        self._admission = admission
        self._metrics = metrics
        self._events = events
        self._thresholds = thresholds

    async def on_finish(self, ctx: RequestContext) -> None:
        ticket: Ticket | None = ctx.admission
        deployment = ctx.deployment if ctx.attempts > 0 else None
        # a call to a deployment with limits is counted in its windows after the fact, unless admission
        # already took its place there (then the slot's token charge is corrected like any TPM window)
        counted = (
            deployment is not None
            and bool(deployment.rpm or deployment.tpm)
            and (ticket is None or ticket.route_plan is None)
        )
        rates = ticket.plan.rates if ticket is not None else ()
        if ticket is not None and ticket.admission.deployment is not None:
            rates = (*rates, ticket.admission.deployment)
        if ticket is None and not counted:
            return
        usage = ctx.usage
        if ticket is not None:
            if ticket.settled:
                return
            ticket.settled = True
        tokens = usage.total_tokens if usage is not None else 0
        if ticket is not None and usage is None and ctx.attempts > 0:
            tokens = ticket.prompt_tokens + ticket.output_tokens
        settlement = Settlement(
            request_id=ctx.request_id,
            tenant=ticket.plan.tenant if ticket is not None else "default",
            rates=rates,
            budgets=ticket.plan.budgets if ticket is not None else (),
            actual_tokens=tokens,
            actual_micros=actual_cost(ctx, ticket) if ticket is not None else 0,
            alert_thresholds=self._thresholds if self._events is not None else (),
            deployment=deployment.name if counted and deployment is not None else None,
            deployment_tokens=tokens,
            backend=ticket.admission.backend if ticket is not None else "",
        )
        try:
            settled = await self._state.settle(settlement)
        except Exception as exc:  # the ledger still has the spend; the reservation will expire
            log.error("settlement failed request_id=%s error=%s", ctx.request_id, type(exc).__name__)
            return
        used = self._admission.used
        for status in settled.budgets:
            used[status.name] = status.used_fraction
        if settled.budgets:
            self._admission.reservations_released()
        if settled.alerts and self._events is not None and ticket is not None:
            statuses = {s.name: s for s in settled.budgets}
            scopes = {b.name: b for b in ticket.plan.budgets}
            for name, threshold in settled.alerts:
                scope, status = scopes[name], statuses[name]
                self._events.publish(
                    BudgetThreshold(name, scope.period_id, threshold, status.spent_micros, scope.limit_micros)
                )
        if ticket is not None and usage is not None and usage.input_tokens and not ticket.cut_off:
            error = (ticket.prompt_tokens - usage.input_tokens) / usage.input_tokens
            method = "exact" if ticket.prompt_exact else "estimate"
            self._metrics.estimate_error_of(ctx.model, method).observe(error)
