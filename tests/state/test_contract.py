"""Contract: memory and Redis backends answer every case the same way, with an injectable clock."""

from __future__ import annotations

import itertools

import pytest

from sluicegate.state.clock import ManualClock
from sluicegate.state.model import AdmissionPlan, BudgetScope, HotState, RateScope, Settlement

_ids = itertools.count()


def rid() -> str:
    return f"req-{next(_ids)}"


def plan(
    request_id: str,
    *,
    rates: tuple[RateScope, ...] = (),
    budgets: tuple[BudgetScope, ...] = (),
    input_tokens: int = 10,
    input_micros: int = 0,
    pico: int = 0,
    max_out: int = 100,
    min_out: int = 1,
    ttl: float = 900.0,
) -> AdmissionPlan:
    return AdmissionPlan(
        request_id=request_id,
        tenant="acme",
        rates=rates,
        budgets=budgets,
        input_tokens=input_tokens,
        input_micros=input_micros,
        output_pico_per_token=pico,
        max_output_tokens=max_out,
        min_output_tokens=min_out,
        reservation_ttl=ttl,
    )


def budget(limit: int, period: str = "m2026-01", usable: int | None = None) -> BudgetScope:
    return BudgetScope("team:t1", period, limit, limit if usable is None else usable)


async def test_rpm_admits_exactly_the_limit_in_a_sliding_window(state: HotState, clock: ManualClock) -> None:
    scope = (RateScope("key:k1", rpm=3),)
    for _ in range(3):
        assert (await state.admit(plan(rid(), rates=scope))).admitted
        clock.advance(10)
    refused = await state.admit(plan(rid(), rates=scope))
    assert not refused.admitted and refused.refusal == "requests" and refused.refused_scope == "key:k1"
    assert refused.retry_after == pytest.approx(30.0)  # the first entry (t=0) leaves at t=60
    clock.advance(29.9)  # t=59.9: still inside the window of the first
    assert not (await state.admit(plan(rid(), rates=scope))).admitted
    clock.advance(0.1)  # t=60: the first has left, exactly one fits
    assert (await state.admit(plan(rid(), rates=scope))).admitted
    assert not (await state.admit(plan(rid(), rates=scope))).admitted


async def test_no_double_burst_at_a_window_boundary(state: HotState, clock: ManualClock) -> None:
    scope = (RateScope("key:k1", rpm=5),)
    clock.advance(59)
    admitted = [(await state.admit(plan(rid(), rates=scope))).admitted for _ in range(5)]
    clock.advance(2)  # a fixed-bucket limiter would start a fresh minute here
    admitted += [(await state.admit(plan(rid(), rates=scope))).admitted for _ in range(5)]
    assert admitted.count(True) == 5


async def test_tpm_charges_prompt_plus_granted_output_and_settle_corrects(state: HotState, clock: ManualClock) -> None:
    scope = (RateScope("key:k1", tpm=1000),)
    first = await state.admit(plan("a", rates=scope, input_tokens=100, max_out=400))
    assert first.admitted and first.charged_tokens == 500
    assert first.rates[0].remaining_tokens == 500
    assert not (await state.admit(plan(rid(), rates=scope, input_tokens=200, max_out=400))).admitted
    await state.settle(Settlement("a", "acme", rates=scope, actual_tokens=150))
    second = await state.admit(plan(rid(), rates=scope, input_tokens=200, max_out=400))
    assert second.admitted and second.rates[0].remaining_tokens == 1000 - 150 - 600


async def test_a_request_larger_than_the_tpm_cannot_wait(state: HotState) -> None:
    refused = await state.admit(plan(rid(), rates=(RateScope("key:k1", tpm=100),), input_tokens=90, max_out=20))
    assert refused.refusal == "tokens" and refused.retry_after is None


async def test_concurrency_is_released_by_settlement_and_by_expiry(state: HotState, clock: ManualClock) -> None:
    scope = (RateScope("key:k1", max_concurrency=2),)
    assert (await state.admit(plan("a", rates=scope, ttl=30))).admitted
    assert (await state.admit(plan("b", rates=scope, ttl=30))).admitted
    assert (await state.admit(plan(rid(), rates=scope))).refusal == "concurrency"
    await state.settle(Settlement("a", "acme", rates=scope))
    assert (await state.admit(plan("c", rates=scope, ttl=300))).admitted
    clock.advance(31)  # "b" crashed: its slot frees when its reservation expires
    assert (await state.admit(plan(rid(), rates=scope))).admitted


async def test_budget_reserves_worst_case_and_commits_actual(state: HotState) -> None:
    scope = (budget(10_000),)
    # prompt 1,000 micros; 10 micro-dollars per output token (10,000,000 pico)
    first = await state.admit(plan("a", budgets=scope, input_micros=1000, pico=10_000_000, max_out=500))
    assert first.admitted and first.output_tokens == 500 and first.reserved_micros == 6000
    assert first.budgets[0].reserved_micros == 6000
    # only 4,000 left: the grant shrinks to what the budget can pay for
    second = await state.admit(plan("b", budgets=scope, input_micros=1000, pico=10_000_000, max_out=500))
    assert second.admitted and second.output_tokens == 300 and second.reserved_micros == 4000
    # nothing spent yet, all of it reserved: the next one could be paid once those settle
    held = await state.admit(plan(rid(), budgets=scope, input_micros=1, pico=1, max_out=1))
    assert held.refusal == "budget_reserved" and held.refused_scope == "team:t1"
    settled = await state.settle(Settlement("a", "acme", budgets=scope, actual_micros=2500))
    assert settled.budgets[0].spent_micros == 2500 and settled.budgets[0].reserved_micros == 4000
    status = await state.budget_status("acme", scope[0])
    assert (status.spent_micros, status.reserved_micros) == (2500, 4000)


async def test_budget_refuses_below_minimum_output(state: HotState) -> None:
    scope = (budget(1000),)
    refused = await state.admit(plan(rid(), budgets=scope, input_micros=900, pico=10_000_000, min_out=16))
    assert not refused.admitted and refused.refusal == "budget" and refused.refused_scope == "team:t1"


async def test_all_or_nothing_across_scopes(state: HotState) -> None:
    roomy = BudgetScope("key:k1", "total", 1_000_000, 1_000_000)
    tight = BudgetScope("team:t1", "total", 100, 100)
    refused = await state.admit(plan(rid(), budgets=(roomy, tight), input_micros=200))
    assert refused.refusal == "budget" and refused.refused_scope == "team:t1"
    status = await state.budget_status("acme", roomy)
    assert status.reserved_micros == 0  # nothing held in the scope that had room
    rate = (RateScope("key:k1", rpm=1),)
    capped = (RateScope("key:k1", rpm=5), RateScope("team:t1", rpm=1))
    assert (await state.admit(plan(rid(), rates=capped[1:]))).admitted
    assert (await state.admit(plan(rid(), rates=capped))).refused_scope == "team:t1"
    assert (await state.admit(plan(rid(), rates=rate))).admitted  # the key's window was not charged


async def test_emergency_reserve_only_for_critical(state: HotState) -> None:
    normal = (budget(1000, usable=800),)
    critical = (budget(1000),)
    assert (await state.admit(plan("a", budgets=normal, input_micros=700, max_out=0, min_out=0))).admitted
    assert (await state.admit(plan(rid(), budgets=normal, input_micros=200, max_out=0, min_out=0))).refusal == (
        "budget_reserved"  # "a" holds it; spent or not, the reserve stays out of reach for a normal request
    )
    assert (await state.admit(plan(rid(), budgets=critical, input_micros=200, max_out=0, min_out=0))).admitted


async def test_reservations_of_crashed_requests_expire(state: HotState, clock: ManualClock) -> None:
    scope = (budget(1000),)
    assert (await state.admit(plan("crashed", budgets=scope, input_micros=1000, max_out=0, ttl=120))).admitted
    assert (await state.admit(plan(rid(), budgets=scope, input_micros=1, max_out=0))).refusal == "budget_reserved"
    clock.advance(120)
    assert (await state.admit(plan(rid(), budgets=scope, input_micros=1000, max_out=0))).admitted
    # the late settlement of the expired request commits its spend but releases nothing twice
    settled = await state.settle(Settlement("crashed", "acme", budgets=scope, actual_micros=0))
    assert settled.budgets[0].reserved_micros == 1000


async def test_period_rollover_starts_a_fresh_balance(state: HotState) -> None:
    january = budget(1000, "m2026-01")
    february = budget(1000, "m2026-02")
    assert (await state.admit(plan("a", budgets=(january,), input_micros=1000, max_out=0))).admitted
    await state.settle(Settlement("a", "acme", budgets=(january,), actual_micros=1000))
    assert (await state.admit(plan(rid(), budgets=(january,), input_micros=1, max_out=0))).refusal == "budget"
    assert (await state.admit(plan(rid(), budgets=(february,), input_micros=1000, max_out=0))).admitted


async def test_alert_thresholds_fire_once_per_period(state: HotState) -> None:
    scope = (budget(1000),)
    thresholds = (0.5, 0.8, 1.0)
    fired = []
    for i, spend in enumerate((400, 200, 100, 250, 50)):
        await state.admit(plan(f"s{i}", budgets=scope, max_out=0))
        settled = await state.settle(
            Settlement(f"s{i}", "acme", budgets=scope, actual_micros=spend, alert_thresholds=thresholds)
        )
        fired.append(settled.alerts)
    assert fired == [(), (("team:t1", 0.5),), (), (("team:t1", 0.8),), (("team:t1", 1.0),)]


async def test_deployment_headroom_counts_settled_calls(state: HotState, clock: ManualClock) -> None:
    assert (await state.deployment_headroom("sim/gpt-4o", 10, 1000)) == (
        await state.deployment_headroom("sim/gpt-4o", 10, 1000)
    )
    for i in range(3):
        await state.settle(Settlement(f"d{i}", "acme", deployment="sim/gpt-4o", deployment_tokens=100))
    headroom = await state.deployment_headroom("sim/gpt-4o", 10, 1000)
    assert (headroom.requests, headroom.tokens) == (7, 700)
    clock.advance(60)
    headroom = await state.deployment_headroom("sim/gpt-4o", 10, None)
    assert (headroom.requests, headroom.tokens) == (10, None)


async def test_operator_overrides_are_stored_and_cleared(state: HotState) -> None:
    await state.put_override("team:t1", '{"entity": "team:t1"}', 0)
    await state.put_override("key:k1", '{"entity": "key:k1"}', 0)
    assert await state.all_overrides() == {"team:t1": '{"entity": "team:t1"}', "key:k1": '{"entity": "key:k1"}'}
    await state.put_override("team:t1", None, 0)
    assert list(await state.all_overrides()) == ["key:k1"]


async def test_every_choice_is_reserved_and_charged(state: HotState) -> None:
    scope = (RateScope("key:k1", tpm=10_000),)
    many = AdmissionPlan(
        request_id=rid(),
        tenant="acme",
        rates=scope,
        budgets=(budget(10_000),),
        input_tokens=10,
        input_micros=100,
        output_pico_per_token=2_500_000,  # 2.5 micro-dollars per token
        max_output_tokens=300,
        min_output_tokens=16,
        choices=8,
    )
    admitted = await state.admit(many)
    # 9,900 micro-dollars left for output: 8 choices x 495 tokens would cost it, so 300 each fit
    assert admitted.admitted and admitted.output_tokens == 300
    assert admitted.reserved_micros == 100 + 8 * 300 * 5 // 2
    assert admitted.charged_tokens == 10 + 8 * 300
    squeezed = await state.admit(
        AdmissionPlan(
            request_id=rid(),
            tenant="acme",
            budgets=(budget(10_000),),
            input_micros=100,
            output_pico_per_token=2_500_000,
            max_output_tokens=300,
            min_output_tokens=16,
            choices=8,
        )
    )
    # 3,900 left: 3,800 for output pays 8 x 190 tokens (each choice is granted 190)
    assert squeezed.admitted and squeezed.output_tokens == 190
    assert squeezed.reserved_micros == 100 + 8 * 190 * 5 // 2


async def test_a_refusal_is_terminal_only_when_spending_alone_leaves_no_room(state: HotState) -> None:
    tight = BudgetScope("key:k1", "total", 10_000, 10_000)
    roomy = BudgetScope("team:t1", "total", 1_000_000, 1_000_000)
    scopes = (roomy, tight)
    ask = {"budgets": scopes, "input_micros": 1000, "pico": 10_000_000, "max_out": 500, "min_out": 16}
    assert (await state.admit(plan("a", **ask))).reserved_micros == 6000  # type: ignore[arg-type]
    assert (await state.admit(plan("b", **ask))).reserved_micros == 4000  # type: ignore[arg-type]
    held = await state.admit(plan(rid(), **ask))  # type: ignore[arg-type]
    assert not held.admitted and held.refusal == "budget_reserved" and held.refused_scope == "key:k1"
    assert held.retry_after is None
    # "a" spends 5,900 of its 6,000: 100 come back, too little for a prompt of 1,000, but the budget is not spent
    await state.settle(Settlement("a", "acme", budgets=scopes, actual_micros=5900))
    assert (await state.admit(plan(rid(), **ask))).refusal == "budget_reserved"  # type: ignore[arg-type]
    # "b" spends all 4,000: 9,900 spent, 100 left, less than the prompt: only a new period helps
    await state.settle(Settlement("b", "acme", budgets=scopes, actual_micros=4000))
    spent = await state.admit(plan(rid(), **ask))  # type: ignore[arg-type]
    assert not spent.admitted and spent.refusal == "budget" and spent.refused_scope == "key:k1"


async def test_a_deployment_slot_is_taken_in_the_first_deployment_with_room(
    state: HotState, clock: ManualClock
) -> None:
    a, b = RateScope("dep:a", rpm=2), RateScope("dep:b", rpm=1)

    def ask(required: bool = True) -> AdmissionPlan:
        return AdmissionPlan(
            rid(), "acme", input_tokens=10, max_output_tokens=0, deployments=(a, b), deployment_required=required
        )

    taken = [(await state.admit(ask())).deployment for _ in range(3)]
    assert taken == [a, a, b]
    clock.advance(10)
    full = await state.admit(ask())
    assert not full.admitted and full.refusal == "requests" and full.refused_scope in ("dep:a", "dep:b")
    assert full.retry_after == pytest.approx(50.0)  # the oldest entries (t=0) leave at t=60
    free = await state.admit(ask(required=False))  # a deployment without limits can take it instead
    assert free.admitted and free.deployment is None
    assert (await state.deployment_headroom("a", 2, None)).requests == 0
    clock.advance(50)
    assert (await state.admit(ask())).deployment == a


async def test_a_deployment_slot_charges_tokens_and_settlement_corrects_them(state: HotState) -> None:
    a, b = RateScope("dep:a", tpm=1000), RateScope("dep:b", tpm=1000)

    def ask(request_id: str) -> AdmissionPlan:
        return AdmissionPlan(
            request_id, "acme", input_tokens=100, max_output_tokens=500, deployments=(a, b), deployment_required=True
        )

    first = await state.admit(ask("one"))
    assert first.deployment == a and first.charged_tokens == 600
    assert (await state.admit(ask("two"))).deployment == b  # 1,200 would be over a's TPM
    refused = await state.admit(ask(rid()))
    assert not refused.admitted and refused.refusal == "tokens"
    await state.settle(Settlement("one", "acme", rates=(a,), actual_tokens=150))  # a: 150 of 1,000 used
    assert (await state.admit(ask(rid()))).deployment == a
    assert (await state.deployment_headroom("a", None, 1000)).tokens == 1000 - 150 - 600
