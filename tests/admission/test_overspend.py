"""Output multipliers, announced clamps and cheaper models: `n` choices are reserved, granted and metered
as `n` answers, a `max_tokens` lowered to fit the budget is said so, and economy mode or the downgrade tier
never move a request to a model the key may not use."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from sluicegate.canonical import ChatChunk, Usage
from sluicegate.catalog import ModelCatalog
from sluicegate.config.schema import GatewayConfig
from sluicegate.errors import GatewayError
from sluicegate.pipeline.admission import AdmissionStage
from sluicegate.pipeline.meter import StreamMeter
from sluicegate.pipeline.settle import SettleStage
from sluicegate.principal import Principal
from sluicegate.state.memory import MemoryState
from sluicegate.state.metrics import LimitMetrics
from sluicegate.state.overrides import Override, OverrideBook
from sluicegate.tokens import TokenCounter, count_chat_prompt
from tests.admission.helpers import MESSAGES, config, context, principal, stage

PROMPT = count_chat_prompt(MESSAGES)


def choices_chunk(*texts: str | None) -> ChatChunk:
    choices = [
        {"index": i, "delta": {"content": t} if t is not None else {}, "finish_reason": None}
        for i, t in enumerate(texts)
    ]
    return ChatChunk("c1", "gpt-4", 1, choices)


async def test_n_choices_are_reserved_and_the_grant_is_per_choice() -> None:
    admission = stage()
    budget = PROMPT * 30 + 8 * 50 * 60  # the prompt and exactly 50 output tokens in each of 8 choices
    ctx = context(who=principal(budget_micros=budget, tpm=100_000), max_tokens=300)
    ctx.chat.params["n"] = 8
    await admission.on_request(ctx)
    ticket = ctx.admission
    assert ctx.chat.max_tokens == 50  # 8 x 50 is what the budget pays for, not 1 x 300
    assert ticket.admission.reserved_micros == budget
    assert ticket.admission.charged_tokens == PROMPT + 8 * 50
    again = context(who=principal(budget_micros=budget), max_tokens=300)
    again.chat.params["n"] = 8
    try:
        await admission.on_request(again)
    except Exception as error:  # nothing is left: the second request cannot be paid for
        assert getattr(error, "code", None) in ("budget_exceeded", "budget_reserved")
    else:
        raise AssertionError("a fully reserved budget admitted another 8-choice request")


async def test_best_of_counts_as_candidates_the_provider_bills() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=10**9), max_tokens=10)
    ctx.chat.params["best_of"] = 5
    await admission.on_request(ctx)
    assert ctx.admission.admission.reserved_micros == PROMPT * 30 + 5 * 10 * 60


async def test_the_meter_counts_every_choice_and_ends_them_all_at_the_cut() -> None:
    admission = stage()
    budget = PROMPT * 30 + 3 * 20 * 60  # 20 output tokens per choice, 3 choices
    ctx = context(who=principal(budget_micros=budget), stream=True)
    ctx.chat.params["n"] = 3
    await admission.on_request(ctx)
    assert ctx.chat.max_tokens == 20
    meter = StreamMeter(TokenCounter(), LimitMetrics(CollectorRegistry()))
    last = None
    for _ in range(20):  # 3 tokens a chunk: 60 in all, exactly the grant of 3 x 20
        last = meter.on_chunk(ctx, choices_chunk(" river", " river", " river"))
        assert last is not None and not ctx.cut_off
    ended = meter.on_chunk(ctx, ChatChunk("c1", "gpt-4", 1, [{"index": 1, "delta": {}, "finish_reason": "stop"}]))
    assert ended is not None
    final = meter.on_chunk(ctx, choices_chunk(" river", None, " river"))
    assert ctx.cut_off and final is not None
    assert final.choices == [
        {"index": 0, "delta": {}, "finish_reason": "length"},
        {"index": 2, "delta": {}, "finish_reason": "length"},
    ]
    assert final.usage == Usage(input_tokens=PROMPT, output_tokens=60)


async def test_a_max_tokens_lowered_to_fit_the_budget_is_announced() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=PROMPT * 30 + 71 * 60), max_tokens=500)
    await admission.on_request(ctx)
    assert ctx.chat.max_tokens == 71
    assert ctx.response_headers["x-sluice-max-tokens-clamped"] == "71"
    assert ctx.response_headers["x-sluice-max-tokens-clamped-reason"] == "budget"
    assert ctx.usage_extension == {"max_tokens_clamped": {"requested": 500, "granted": 71, "reason": "budget"}}
    plenty = context(who=principal(budget_micros=10**9), max_tokens=500)
    await admission.on_request(plenty)
    assert "x-sluice-max-tokens-clamped" not in plenty.response_headers and plenty.usage_extension is None


async def test_a_cut_keeps_the_clamp_note() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=PROMPT * 30 + 20 * 60), max_tokens=500, stream=True)
    await admission.on_request(ctx)
    meter = StreamMeter(TokenCounter(), LimitMetrics(CollectorRegistry()))
    for _ in range(21):
        meter.on_chunk(ctx, choices_chunk(" river"))
    assert ctx.cut_off and ctx.usage_extension is not None
    assert ctx.usage_extension["cut_off"] == "budget_reservation"
    assert ctx.usage_extension["max_tokens_clamped"]["granted"] == 20


def _restricted(models: tuple[str, ...] = (), regions: tuple[str, ...] = ()) -> Principal:
    base = principal(budget_micros=10**9)
    return replace(base, allowed_models=models, allowed_regions=regions)


def _regional_config(**sections: Any) -> GatewayConfig:
    models = [m.model_dump() for m in config().models]
    models[0]["deployments"][0]["region"] = "eu-west-1"  # gpt-4
    models[1]["deployments"][0]["region"] = "us-east-1"  # cheap
    return config(models=models, **sections)


async def _economy_stage(cfg: GatewayConfig) -> AdmissionStage:
    admission = stage(cfg)
    book = OverrideBook(admission.state)
    await book.put(Override("key:k1", time.time() + 600, economy=True))
    admission.overrides = book
    return admission


@pytest.mark.parametrize(
    ("who", "served_by"),
    [
        (_restricted(), "cheap"),
        (_restricted(models=("gpt-4*",)), "gpt-4"),  # "cheap" is not on the key's allow-list
        (_restricted(regions=("eu",)), "gpt-4"),  # "cheap" only runs in us-east-1
        (_restricted(models=("gpt-4*", "ch*"), regions=("eu", "us")), "cheap"),
    ],
)
async def test_economy_mode_only_moves_to_a_model_the_key_may_use(who: Principal, served_by: str) -> None:
    admission = await _economy_stage(_regional_config())
    ctx = context(who=who, max_tokens=10)
    await admission.on_request(ctx)
    assert ctx.model == served_by
    assert ("x-sluice-economy-from" in ctx.response_headers) == (served_by != "gpt-4")


@pytest.mark.parametrize(
    ("who", "served_by"),
    [
        (_restricted(), "cheap"),
        (_restricted(models=("gpt-4",)), "gpt-4"),
        (_restricted(regions=("eu-west-1",)), "gpt-4"),
    ],
)
async def test_budget_downgrade_only_moves_to_a_model_the_key_may_use(who: Principal, served_by: str) -> None:
    admission = stage(_regional_config(budgets={"downgrade": {"at": 0.9, "to": "cheap"}}))
    admission.used["key:k1"] = 0.95
    ctx = context(who=who, max_tokens=10)
    await admission.on_request(ctx)
    assert ctx.model == served_by
    assert ("x-sluice-budget-downgraded-from" in ctx.response_headers) == (served_by == "cheap")


async def test_a_budget_that_cannot_pay_is_refused_rather_than_downgraded_outside_the_allow_list() -> None:
    admission = stage(_regional_config(budgets={"downgrade": {"at": 0.9, "to": "cheap"}}))
    who = replace(principal(budget_micros=PROMPT * 5 + 200), allowed_models=("gpt-4",))
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(context(who=who))
    assert caught.value.code == "budget_exceeded"


async def _settle_after(admission: AdmissionStage, ctx: Any, delay: float, spent: int) -> None:
    await asyncio.sleep(delay)
    ctx.attempts = 1
    ctx.usage = Usage(input_tokens=PROMPT, output_tokens=0)
    ctx.cost_micros = spent
    await SettleStage(admission.state, admission, LimitMetrics(CollectorRegistry())).on_finish(ctx)


async def test_a_request_the_budget_can_pay_once_others_settle_waits_and_is_served() -> None:
    cfg = config(budgets={"reserved_wait_seconds": 5})
    admission = AdmissionStage(
        MemoryState(), ModelCatalog.from_config(cfg, {}), cfg.budgets, cfg.limits, LimitMetrics(CollectorRegistry())
    )
    who = principal(budget_micros=PROMPT * 30 + 100 * 60)
    first = context(who=who, max_tokens=100)
    await admission.on_request(first)  # holds the whole budget
    second = context(who=who, max_tokens=100)
    started = time.monotonic()
    settling = asyncio.create_task(_settle_after(admission, first, 0.3, PROMPT * 30 + 10 * 60))
    await admission.on_request(second)  # waits for the first to release its 90 unused tokens
    await settling
    assert second.admission.admission.admitted
    assert second.chat.max_tokens == (100 * 60 - 10 * 60 - PROMPT * 30) // 60  # what is left, its own prompt paid
    assert 0.25 < time.monotonic() - started < 2  # woken by the settlement, not by a timeout


@pytest.mark.parametrize("wait", [0, 0.3])
async def test_without_waiting_or_past_the_wait_it_is_429_budget_reserved(wait: float) -> None:
    cfg = config(budgets={"reserved_wait_seconds": wait})
    admission = AdmissionStage(
        MemoryState(), ModelCatalog.from_config(cfg, {}), cfg.budgets, cfg.limits, LimitMetrics(CollectorRegistry())
    )
    who = principal(budget_micros=PROMPT * 30 + 100 * 60)
    await admission.on_request(context(who=who, max_tokens=100))
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(context(who=who, max_tokens=100))
    error = caught.value
    assert error.status == 429 and error.code == "budget_reserved" and error.headers["retry-after"] == "1"
    assert "reserved" in error.message and "in flight" in error.message
    assert wait <= time.monotonic() - started < wait + 1


async def test_a_spent_budget_is_refused_at_once_with_402() -> None:
    cfg = config(budgets={"reserved_wait_seconds": 5})
    admission = AdmissionStage(
        MemoryState(), ModelCatalog.from_config(cfg, {}), cfg.budgets, cfg.limits, LimitMetrics(CollectorRegistry())
    )
    who = principal(budget_micros=PROMPT * 30 + 100 * 60)
    first = context(who=who, max_tokens=100)
    await admission.on_request(first)
    await _settle_after(admission, first, 0, PROMPT * 30 + 95 * 60)  # 5 tokens' worth left: under 16
    started = time.monotonic()
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(context(who=who, max_tokens=100))
    assert caught.value.status == 402 and caught.value.code == "budget_exceeded"
    assert time.monotonic() - started < 0.2
