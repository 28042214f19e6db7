"""What a finished request cost, computed once, before the finish stages: the settle stage commits it to
the budgets and the ledger records it, so the two never disagree about a request.

The bill covers the answer and every call beside it that cost tokens (hedged losers). The answer's usage
is the provider's when it reported one. A stream that ended without it (the client disconnected, or the
meter cut it off) is billed from what the gateway counted, marked as an estimate. The cost is None when
any call on the bill has no known price: never an undercount passed off as exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.canonical import ChatRequest, Usage
from sluicegate.pipeline.context import RequestContext
from sluicegate.tokens import count_chat_prompt


@dataclass(frozen=True, slots=True)
class Bill:
    usage: Usage | None  # every token the request's calls used; None when no call was made
    micros: int | None  # None: a call on the bill has no known price
    estimated: bool  # some of the tokens were counted by the gateway, not reported by the provider


NOTHING = Bill(None, None, False)


def stream_estimate(ctx: RequestContext, *, exact_prompt: bool = True) -> Usage:
    """What a stream has used so far when the provider has not said: the counted prompt, and the meter's
    count when a budget applies (it never passes the reservation), else the larger of the chunks relayed
    (about a token each for most providers) and the text relayed at four characters a token. An estimate,
    marked as one wherever it is recorded. Without `exact_prompt`, a prompt nobody has counted yet is taken
    as its UTF-8 size over four (no tokenizer on the request path).
    """
    ticket = ctx.admission
    metered = 0
    if ticket is not None:
        prompt, metered = ticket.prompt_tokens, ticket.output_tokens
    else:
        request = ctx.request
        needs = getattr(ctx.route_plan, "needs", None)
        if needs is not None and needs.prompt_tokens is not None:
            prompt = needs.prompt_tokens
        elif not exact_prompt and needs is not None:
            prompt = -(-needs.prompt_bound // 4)
        elif isinstance(request, ChatRequest):
            prompt = count_chat_prompt(request.messages)  # type: ignore[arg-type]
            if needs is not None:
                needs.prompt_tokens = prompt  # counted once per request
        else:
            prompt = 0
    if ticket is not None and ticket.plan.budgets:
        output = metered  # the meter's tokenizer count, which it keeps within the reservation
    else:
        output = max(metered, ctx.relayed_chunks, -(-ctx.relayed_chars // 4))
    return Usage(input_tokens=prompt, output_tokens=output)


def answer_usage(ctx: RequestContext) -> tuple[Usage | None, bool]:
    """The answer's tokens and whether the gateway counted them itself."""
    if ctx.usage is not None:
        return ctx.usage, ctx.cut_off or ctx.usage_estimated
    if ctx.attempts > 0 and (ctx.interrupted or ctx.relayed_chunks):
        return stream_estimate(ctx), True  # a stream stopped or left before the provider reported usage
    ticket = ctx.admission
    if ctx.attempts > 0 and ticket is not None and ticket.output_tokens:
        return Usage(input_tokens=ticket.prompt_tokens, output_tokens=ticket.output_tokens), True
    return None, False


def bill_of(ctx: RequestContext) -> Bill:
    usage, estimated = answer_usage(ctx)
    price = ctx.deployment.price if ctx.deployment is not None else None
    micros: int | None = None
    if ctx.cost_micros is not None:  # priced as the response said
        micros = ctx.cost_micros
    elif usage is not None:
        micros = price.cost_micros(usage) if price is not None else None
    elif not ctx.side_attempts:
        return NOTHING if ctx.attempts == 0 else Bill(None, None, estimated)
    else:
        micros = 0  # the answer never ran; the calls beside it may still have cost
    for side in ctx.side_attempts:
        usage = side.usage if usage is None else usage + side.usage
        estimated = estimated or side.estimated
        side_price = side.deployment.price
        micros = None if micros is None or side_price is None else micros + side_price.cost_micros(side.usage)
    return Bill(usage, micros, estimated)


def request_bill(ctx: RequestContext) -> Bill:
    """`ctx.bill`, computed on first use (the pipeline asks before the finish stages run)."""
    bill: Bill | None = ctx.bill
    if bill is None:
        bill = ctx.bill = bill_of(ctx)
    return bill
