"""Stream metering and settlement: cut-off at the reservation, commit actual, release on every outcome."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from sluicegate.canonical import ChatChunk, Usage
from sluicegate.pipeline.meter import StreamMeter
from sluicegate.pipeline.settle import SettleStage
from sluicegate.state.metrics import LimitMetrics
from sluicegate.tokens import TokenCounter, count_chat_prompt
from tests.admission.helpers import MESSAGES, context, principal, stage

PROMPT = count_chat_prompt(MESSAGES)


def chunk(text: str | None = None, finish: str | None = None) -> ChatChunk:
    delta = {"content": text} if text is not None else {}
    return ChatChunk("c1", "gpt-4", 1, [{"index": 0, "delta": delta, "finish_reason": finish}])


async def test_stream_is_cut_cleanly_when_the_next_chunk_would_overrun() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=PROMPT * 30 + 20 * 60), stream=True)  # 20 output tokens
    await admission.on_request(ctx)
    assert ctx.chat.max_tokens == 20
    meter = StreamMeter(TokenCounter(), LimitMetrics(CollectorRegistry()))
    out = [meter.on_chunk(ctx, chunk(" river")) for _ in range(20)]  # a provider ignoring max_tokens
    assert all(c is not None and c.choices[0]["delta"]["content"] == " river" for c in out)
    final = meter.on_chunk(ctx, chunk(" river"))
    assert final is not None and final.choices == [{"index": 0, "delta": {}, "finish_reason": "length"}]
    assert final.usage == Usage(input_tokens=PROMPT, output_tokens=20)
    assert ctx.cut_off and ctx.usage_extension and ctx.usage_extension["cut_off"] == "budget_reservation"
    assert meter.on_chunk(ctx, chunk(" more")) is None


async def test_meter_leaves_unbudgeted_streams_alone() -> None:
    admission = stage()
    ctx = context(who=principal(rpm=100), stream=True)
    await admission.on_request(ctx)
    meter = StreamMeter(TokenCounter(), LimitMetrics(CollectorRegistry()))
    assert all(meter.on_chunk(ctx, chunk(" word")) is not None for _ in range(5000))
    assert not ctx.cut_off


async def _settle(admission, ctx) -> None:  # type: ignore[no-untyped-def]
    metrics = LimitMetrics(CollectorRegistry())
    await SettleStage(admission.state, admission, metrics).on_finish(ctx)


async def test_settlement_commits_actual_and_releases_the_rest() -> None:
    admission = stage()
    who = principal(budget_micros=10**7)
    ctx = context(who=who, max_tokens=100)
    await admission.on_request(ctx)
    scope = ctx.admission.plan.budgets[0]
    ctx.attempts = 1
    ctx.usage = Usage(input_tokens=PROMPT, output_tokens=7)
    ctx.cost_micros = PROMPT * 30 + 7 * 60
    await _settle(admission, ctx)
    status = await admission.state.budget_status("acme", scope)
    assert (status.spent_micros, status.reserved_micros) == (PROMPT * 30 + 7 * 60, 0)
    await _settle(admission, ctx)  # a second finish never settles twice
    assert (await admission.state.budget_status("acme", scope)).spent_micros == PROMPT * 30 + 7 * 60


async def test_a_request_that_failed_before_the_call_releases_everything() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=10**7, concurrency=1), max_tokens=100)
    await admission.on_request(ctx)
    scope = ctx.admission.plan.budgets[0]
    ctx.status, ctx.outcome = 502, "server_error"
    await _settle(admission, ctx)
    status = await admission.state.budget_status("acme", scope)
    assert (status.spent_micros, status.reserved_micros) == (0, 0)
    again = context(who=principal(budget_micros=10**7, concurrency=1))
    await admission.on_request(again)  # the concurrency slot was released too
    assert again.admission.admission.admitted


async def test_a_disconnected_stream_commits_what_was_streamed() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=10**7), max_tokens=100, stream=True)
    await admission.on_request(ctx)
    meter = StreamMeter(TokenCounter(), LimitMetrics(CollectorRegistry()))
    ctx.attempts = 1
    ctx.deployment = admission._catalog.get("gpt-4").deployments[0]  # type: ignore[union-attr]
    for _ in range(3):
        meter.on_chunk(ctx, chunk(" river"))
    ctx.outcome, ctx.status = "cancelled", 499  # no usage ever arrived
    await _settle(admission, ctx)
    status = await admission.state.budget_status("acme", ctx.admission.plan.budgets[0])
    assert (status.spent_micros, status.reserved_micros) == (PROMPT * 30 + 3 * 60, 0)


async def test_estimation_error_is_exported_per_model() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=10**7), max_tokens=10)
    await admission.on_request(ctx)
    ctx.attempts = 1
    ctx.usage = Usage(input_tokens=PROMPT * 2, output_tokens=3)  # the provider counted twice as many
    registry = CollectorRegistry()
    await SettleStage(admission.state, admission, LimitMetrics(registry)).on_finish(ctx)
    labels = {"model": "gpt-4", "method": "exact"}
    assert registry.get_sample_value("sluicegate_prompt_token_estimate_error_ratio_count", labels) == 1
    bucket = {**labels, "le": "-0.5"}  # (counted - reported) / reported = -0.5
    assert registry.get_sample_value("sluicegate_prompt_token_estimate_error_ratio_bucket", bucket) == 1
    assert (
        registry.get_sample_value("sluicegate_prompt_token_estimate_error_ratio_bucket", {**labels, "le": "-0.2"}) == 1
    )


async def test_the_budget_and_the_ledger_are_charged_the_same_bill() -> None:
    """A disconnected stream (estimated from what was counted) and a hedged loser beside the answer: the
    settle stage commits exactly what the ledger records."""
    from sluicegate.pipeline.context import SideAttempt
    from sluicegate.telemetry.ledger import ledger_row

    admission = stage()
    ctx = context(who=principal(budget_micros=10**7), max_tokens=100, stream=True)
    await admission.on_request(ctx)
    meter = StreamMeter(TokenCounter(), LimitMetrics(CollectorRegistry()))
    ctx.attempts = 2
    deployment = admission._catalog.get("gpt-4").deployments[0]  # type: ignore[union-attr]
    ctx.deployment = deployment
    for _ in range(4):
        meter.on_chunk(ctx, chunk(" river"))
    ctx.side_attempts = [SideAttempt(deployment, Usage(input_tokens=PROMPT, output_tokens=9), estimated=False)]
    ctx.outcome, ctx.status = "cancelled", 499  # the client left before any usage arrived
    await _settle(admission, ctx)
    spent = (await admission.state.budget_status("acme", ctx.admission.plan.budgets[0])).spent_micros
    row = ledger_row(ctx, 1_790_000_000.0)
    assert row["cost_micros"] == spent == (PROMPT * 30 + 4 * 60) + (PROMPT * 30 + 9 * 60)
    assert (row["input_tokens"], row["output_tokens"]) == (2 * PROMPT, 4 + 9)
    assert row["usage_estimated"] is True
