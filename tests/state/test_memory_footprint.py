"""The in-process backend's memory stays flat: a settled request leaves only its sliding-window entries,
which leave with their window, and keys that stop sending leave nothing behind."""

from __future__ import annotations

import gc
import tracemalloc

from sluicegate.state.clock import ManualClock
from sluicegate.state.memory import MemoryState
from sluicegate.state.model import AdmissionPlan, BudgetScope, RateScope, Settlement

WINDOW = 60.0
TTL = 900.0


def _scopes(key: str) -> tuple[tuple[RateScope, ...], tuple[BudgetScope, ...]]:
    rates = (
        RateScope(f"key:{key}", rpm=10**6, tpm=10**9, max_concurrency=1000),
        RateScope("team:t1", rpm=10**6, tpm=10**9),
    )
    budgets = (
        BudgetScope(f"key:{key}", "m2026-01", 10**12, 10**12),
        BudgetScope("team:t1", "m2026-01", 10**12, 10**12),
    )
    return rates, budgets


async def _serve(state: MemoryState, clock: ManualClock, count: int, keys: int, start: int = 0) -> None:
    """`count` requests admitted and settled one after another, over `keys` keys, 1 ms apart."""
    for i in range(start, start + count):
        rates, budgets = _scopes(f"k{i % keys}")
        request_id = f"req-{i}"
        admission = await state.admit(
            AdmissionPlan(
                request_id=request_id,
                tenant="acme",
                rates=rates,
                budgets=budgets,
                input_tokens=20,
                input_micros=3,
                output_pico_per_token=600_000,
                max_output_tokens=256,
                min_output_tokens=1,
                reservation_ttl=TTL,
            )
        )
        assert admission.admitted
        await state.settle(Settlement(request_id, "acme", rates, budgets, actual_micros=10, actual_tokens=40))
        clock.advance(0.001)


async def test_settled_requests_leave_only_window_entries_which_leave_with_the_window() -> None:
    clock = ManualClock(1_767_225_600.0)
    state = MemoryState(clock, window_seconds=WINDOW)
    await _serve(state, clock, 10, keys=1)
    clock.advance(WINDOW + 1)
    await _serve(state, clock, 1, keys=1, start=10)
    baseline = state.held_entries()

    await _serve(state, clock, 3000, keys=1, start=11)
    # two rate scopes x (requests + tokens windows): nothing else stays for a settled request, and in
    # particular no reservation waiting for its 900 s TTL
    assert state.held_entries() == baseline + 4 * 3000

    clock.advance(WINDOW + 1)
    await _serve(state, clock, 1, keys=1, start=5000)  # the windows slide on the next request
    assert state.held_entries() == baseline


async def test_key_churn_leaves_nothing_once_the_keys_fall_quiet() -> None:
    clock = ManualClock(1_767_225_600.0)
    state = MemoryState(clock, window_seconds=WINDOW)
    await _serve(state, clock, 50, keys=1)
    clock.advance(WINDOW + 1)
    await _serve(state, clock, 1, keys=1, start=50)

    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        await _serve(state, clock, 4000, keys=2000, start=100)  # 2,000 keys, each used twice, then gone
        during, _ = tracemalloc.get_traced_memory()
        clock.advance(WINDOW + 1)
        await _serve(state, clock, 1, keys=1, start=50)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert during - before > 1_000_000  # the windows of 2,000 keys are real memory while they are live
    # what stays is the keys' budget balances (their spend this period, which the budget needs), not
    # their windows, their concurrency tables or their reservations
    assert after - before < 2000 * 700, f"{(after - before) / 2000:.0f} bytes per departed key stay"
    assert state.held_entries() == 4  # the last request's four window entries (the sweep ran before it)


async def test_a_reservation_never_settled_is_freed_after_its_ttl() -> None:
    clock = ManualClock(1_767_225_600.0)
    state = MemoryState(clock, window_seconds=WINDOW)
    _, budgets = _scopes("crashed")
    plan = AdmissionPlan(
        request_id="lost",
        tenant="acme",
        rates=(),
        budgets=budgets[:1],
        input_tokens=20,
        input_micros=1000,
        output_pico_per_token=0,
        max_output_tokens=10,
        min_output_tokens=1,
        reservation_ttl=TTL,
    )
    assert (await state.admit(plan)).admitted
    assert (await state.budget_status("acme", budgets[0])).reserved_micros == 1000
    clock.advance(TTL - 1)
    assert (await state.budget_status("acme", budgets[0])).reserved_micros == 1000
    clock.advance(2)
    assert (await state.budget_status("acme", budgets[0])).reserved_micros == 0
    assert state.held_entries() == 0
