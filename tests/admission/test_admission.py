"""The admission stage with the memory backend: what a client sees when limits and budgets apply."""

from __future__ import annotations

import pytest

from sluicegate.errors import GatewayError
from sluicegate.pipeline.admission import format_reset, ratelimit_headers
from sluicegate.state.clock import ManualClock
from sluicegate.state.model import RateStatus
from sluicegate.tokens import count_chat_prompt
from tests.admission.helpers import MESSAGES, config, context, principal, stage

PROMPT = count_chat_prompt(MESSAGES)


async def test_no_limits_means_no_state_call() -> None:
    admission = stage()
    ctx = context()
    await admission.on_request(ctx)
    assert ctx.admission is None and admission.state.round_trips.admissions == 0
    assert ctx.chat.max_tokens is None


async def test_without_max_tokens_the_gateway_sets_what_the_budget_can_pay() -> None:
    budget = PROMPT * 30 + 100 * 60  # the prompt and exactly 100 output tokens
    admission = stage()
    ctx = context(who=principal(budget_micros=budget))
    await admission.on_request(ctx)
    assert ctx.chat.max_tokens == 100
    assert ctx.admission.admission.reserved_micros == budget


async def test_with_a_budget_the_output_is_always_bounded_never_raised() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=10**9))
    await admission.on_request(ctx)
    assert ctx.chat.max_tokens == 1000  # the deployment's limit, sent so no provider default can exceed it
    assert ctx.admission.admission.output_tokens == 1000
    ctx = context(who=principal(budget_micros=10**9), max_tokens=50)
    await admission.on_request(ctx)
    assert ctx.chat.max_tokens == 50 and ctx.admission.admission.output_tokens == 50


async def test_budget_refusal_names_the_budget_with_402() -> None:
    admission = stage()
    ctx = context(who=principal(budget_micros=10**9, team_budget=PROMPT * 30))
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(ctx)
    error = caught.value
    assert error.status == 402 and error.code == "budget_exceeded"
    assert "monthly budget of $" in error.message and "team 't1'" in error.message


async def test_budget_refusal_status_is_configurable() -> None:
    admission = stage(config(budgets={"refuse_status": 429}))
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(context(who=principal(budget_micros=1)))
    assert caught.value.status == 429 and caught.value.code == "budget_exceeded"


async def test_rate_limit_refusal_is_429_with_retry_after_and_headers_on_success() -> None:
    clock = ManualClock(1_767_225_600.0)
    admission = stage(clock=clock)
    who = principal(rpm=2, tpm=100_000)
    first = context(who=who)
    await admission.on_request(first)
    headers = first.response_headers
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "1"
    assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert headers["x-ratelimit-remaining-tokens"] == str(100_000 - PROMPT - 1000)
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    clock.advance(15)
    await admission.on_request(context(who=who))
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(context(who=who))
    error = caught.value
    assert error.status == 429 and error.code == "rate_limit_exceeded" and error.type == "requests"
    assert error.headers["retry-after"] == "45"
    assert "key:k1" in error.message and "RPM" in error.message


async def test_a_request_over_the_whole_tpm_is_told_so() -> None:
    admission = stage()
    with pytest.raises(GatewayError) as caught:
        await admission.on_request(context(who=principal(tpm=500)))
    assert caught.value.status == 429 and "retry-after" not in caught.value.headers
    assert "Request too large" in caught.value.message


async def test_downgrade_tier_moves_to_the_cheaper_group_at_ninety_percent() -> None:
    cfg = config(budgets={"downgrade": {"at": 0.9, "to": "cheap"}})
    admission = stage(cfg)
    who = principal(budget_micros=1_000_000)
    admission.used["key:k1"] = 0.91
    ctx = context(who=who, max_tokens=10)
    await admission.on_request(ctx)
    assert ctx.model == "cheap" and ctx.requested_model == "gpt-4"  # the ledger keeps what the client asked
    assert ctx.response_headers["x-sluice-budget-downgraded-from"] == "gpt-4"


async def test_downgrade_when_the_expensive_model_cannot_be_paid() -> None:
    cfg = config(budgets={"downgrade": {"at": 0.9, "to": "cheap"}})
    admission = stage(cfg)
    ctx = context(who=principal(budget_micros=PROMPT * 5 + 200))  # too little for gpt-4's prompt
    await admission.on_request(ctx)
    assert ctx.model == "cheap" and ctx.admission.admission.admitted


async def test_emergency_reserve_is_only_for_critical_requests() -> None:
    cfg = config(budgets={"emergency_reserve": 0.5})
    admission = stage(cfg)
    budget = 2 * (PROMPT * 30 + 16 * 60)
    who = principal(budget_micros=budget)
    await admission.on_request(context(who=who, max_tokens=16))
    with pytest.raises(GatewayError):
        await admission.on_request(context(who=who, max_tokens=16))
    critical = context(who=who, max_tokens=16, headers={"x-sluice-priority": "critical"})
    await admission.on_request(critical)
    assert critical.admission.admission.admitted


async def test_unknown_price_fails_closed_or_reserves_the_ceiling() -> None:
    with pytest.raises(GatewayError) as caught:
        await stage().on_request(context("mystery", who=principal(budget_micros=10**9)))
    assert caught.value.code == "price_unknown"
    assert caught.value.status == 403  # a configuration error: not retried by SDKs, unlike any 5xx
    admission = stage(config(budgets={"unknown_price": {"policy": "ceiling", "ceiling_usd": "0.5"}}))
    ctx = context("mystery", who=principal(budget_micros=10**9))
    await admission.on_request(ctx)
    assert ctx.admission.admission.reserved_micros == 500_000
    # unknown price without any budget: rate limits still apply, nothing to reserve
    ctx = context("mystery", who=principal(rpm=5))
    await stage().on_request(ctx)
    assert ctx.admission.admission.reserved_micros == 0


async def test_global_and_session_budgets_from_config() -> None:
    cfg = config(budgets={"global": {"amount_usd": "100"}, "session": {"amount_usd": "0.05", "period": "total"}})
    admission = stage(cfg)
    ctx = context(who=None, headers={"x-sluice-session-id": "conv-1"}, max_tokens=10)
    await admission.on_request(ctx)
    names = [b.name for b in ctx.admission.plan.budgets]
    assert names == ["global", "session:conv-1"]
    with pytest.raises(GatewayError) as caught:
        for _ in range(200):
            await admission.on_request(context(who=None, headers={"x-sluice-session-id": "conv-1"}, max_tokens=10))
    assert "session 'conv-1'" in caught.value.message


def test_reset_durations_are_written_as_openai_does() -> None:
    assert [format_reset(s) for s in (0.02, 1, 8.64, 60, 360)] == ["20ms", "1s", "8.64s", "1m0s", "6m0s"]


def test_headers_describe_the_tightest_scope() -> None:
    statuses = (
        RateStatus("key:k1", 100, 90, 1.0, 0, 0, 0.0),
        RateStatus("team:t1", 1000, 10, 2.0, 5000, 100, 3.0),
    )
    headers = ratelimit_headers(statuses)
    assert headers["x-ratelimit-limit-requests"] == "1000"
    assert headers["x-ratelimit-remaining-requests"] == "10"
    assert headers["x-ratelimit-limit-tokens"] == "5000"


async def test_a_fallback_group_is_priced_into_the_reservation() -> None:
    cfg = config()
    models = [m.model_dump() for m in cfg.models]
    models[1]["routing"] = {"fallbacks": ["gpt-4"]}  # cheap falls back to the dear one
    admission = stage(config(models=models))
    ctx = context("cheap", who=principal(budget_micros=10**9), max_tokens=10)
    await admission.on_request(ctx)
    assert ctx.admission.admission.reserved_micros == PROMPT * 30 + 10 * 60


async def test_a_hedged_request_reserves_for_two_calls() -> None:
    admission = stage()
    plain = context(who=principal(budget_micros=10**9), max_tokens=10)
    hedged = context(who=principal(budget_micros=10**9), max_tokens=10, headers={"x-sluice-hedge": "1"})
    await admission.on_request(plain)
    await admission.on_request(hedged)
    assert hedged.admission.admission.reserved_micros == 2 * plain.admission.admission.reserved_micros
    assert hedged.admission.admission.output_tokens == 10


async def test_over_the_limit_a_request_waits_in_the_queue_then_goes_through() -> None:
    import time

    from prometheus_client import CollectorRegistry

    from sluicegate.catalog import ModelCatalog
    from sluicegate.pipeline.admission import AdmissionStage
    from sluicegate.state.memory import MemoryState
    from sluicegate.state.metrics import LimitMetrics

    cfg = config(limits={"window_seconds": 0.5, "queue": {"max_wait_seconds": 3, "max_waiters": 10}})
    state = MemoryState(window_seconds=0.5)  # the real clock: the queue really waits
    admission = AdmissionStage(
        state, ModelCatalog.from_config(cfg, {}), cfg.budgets, cfg.limits, LimitMetrics(CollectorRegistry())
    )
    who = principal(rpm=1)
    started = time.monotonic()
    await admission.on_request(context(who=who))
    waited = context(who=who)
    await admission.on_request(waited)  # no 429: it waits for the window to have room
    assert waited.admission.admission.admitted
    assert 0.4 <= time.monotonic() - started < 3
    short = config(limits={"window_seconds": 30, "queue": {"max_wait_seconds": 0.2}})
    admission = AdmissionStage(
        MemoryState(window_seconds=30),
        ModelCatalog.from_config(short, {}),
        short.budgets,
        short.limits,
        LimitMetrics(CollectorRegistry()),
    )
    await admission.on_request(context(who=who))
    with pytest.raises(GatewayError) as caught:  # the wait would be longer than allowed: 429 at once
        await admission.on_request(context(who=who))
    assert caught.value.status == 429
