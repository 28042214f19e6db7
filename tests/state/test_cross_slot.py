"""Admissions and settlements that count against a tenant's scopes and shared ones (global scopes,
deployments) at once: on Redis Cluster they span two hash slots, one script each, and must still be all or
nothing, exact under concurrency, and take one round trip per slot. The same cases run on memory and a
single Redis."""

from __future__ import annotations

import asyncio

from sluicegate.state.model import Admission, AdmissionPlan, BudgetScope, HotState, RateScope, Settlement
from sluicegate.state.redis import RedisState
from tests.state.test_contract import plan, rid

TEAM = BudgetScope("team:t1", "m2026-01", 1_000_000, 1_000_000)
GLOBAL = BudgetScope("global", "m2026-01", 1_000_000, 1_000_000)
KEY_RPM = RateScope("key:k1", rpm=100)
GLOBAL_RPM = RateScope("global", rpm=2)


async def test_a_refusal_in_the_shared_slot_takes_back_the_tenant_slot(state: HotState) -> None:
    for _ in range(2):
        assert (await state.admit(plan(rid(), rates=(KEY_RPM, GLOBAL_RPM), budgets=(TEAM,), pico=10**6))).admitted
    refused = await state.admit(plan(rid(), rates=(KEY_RPM, GLOBAL_RPM), budgets=(TEAM,), pico=10**6))
    assert not refused.admitted and refused.refusal == "requests" and refused.refused_scope == "global"
    status = await state.budget_status("acme", TEAM)
    assert status.reserved_micros == 200  # the two admitted (100 tokens at 1 µ$), not the refused one
    alone = await state.admit(plan(rid(), rates=(RateScope("key:k1", rpm=3),)))
    assert alone.admitted, "the refused request must not hold a place in the key's window"
    assert not (await state.admit(plan(rid(), rates=(RateScope("key:k1", rpm=3),)))).admitted


async def test_the_grant_is_the_least_any_budget_in_either_slot_pays_for(state: HotState) -> None:
    team = BudgetScope("team:t1", "m2026-02", 100, 100)
    tight = BudgetScope("global", "m2026-02", 30, 30)
    admission = await state.admit(plan(rid(), budgets=(team, tight), pico=10**6, max_out=500))
    assert admission.admitted and admission.output_tokens == 30
    assert [b.name for b in admission.budgets] == ["team:t1", "global"]
    refused = await state.admit(plan(rid(), budgets=(team, tight), pico=10**6, max_out=500))
    assert not refused.admitted and refused.refused_scope == "global"


async def test_a_settlement_commits_to_both_slots(state: HotState) -> None:
    team = BudgetScope("team:t1", "m2026-03", 1000, 1000)
    shared = BudgetScope("global", "m2026-03", 1000, 1000)
    request = rid()
    assert (await state.admit(plan(request, budgets=(team, shared), pico=10**6, max_out=100))).admitted
    settled = await state.settle(
        Settlement(request, "acme", budgets=(team, shared), actual_micros=600, alert_thresholds=(0.5,))
    )
    assert [(b.name, b.spent_micros, b.reserved_micros) for b in settled.budgets] == [
        ("team:t1", 600, 0),
        ("global", 600, 0),
    ]
    assert sorted(settled.alerts) == [("global", 0.5), ("team:t1", 0.5)]


async def test_never_over_either_budget_under_concurrency(state: HotState) -> None:
    team = BudgetScope("team:t1", "m2026-04", 10_000, 10_000)
    shared = BudgetScope("global", "m2026-04", 7_000, 7_000)

    async def one() -> int:
        request = rid()
        admission = await state.admit(
            AdmissionPlan(request, "acme", budgets=(team, shared), output_pico_per_token=10**6, max_output_tokens=100)
        )
        if not admission.admitted:
            return 0
        spent = admission.output_tokens // 2 + 1
        await state.settle(Settlement(request, "acme", budgets=(team, shared), actual_micros=spent))
        return spent

    spent = sum(await asyncio.gather(*(one() for _ in range(300))))
    team_status = await state.budget_status("acme", team)
    global_status = await state.budget_status("acme", shared)
    assert team_status.spent_micros == global_status.spent_micros == spent
    assert spent <= 7_000 and team_status.reserved_micros == global_status.reserved_micros == 0


async def test_one_round_trip_per_slot(state: HotState) -> None:
    if not isinstance(state, RedisState):
        return
    await state.admit(plan(rid(), rates=(KEY_RPM,), budgets=(TEAM,)))  # the balance is seeded once, first
    before = state.round_trips.admissions
    assert (await state.admit(plan(rid(), rates=(KEY_RPM,), budgets=(TEAM,)))).admitted
    tenant_only = state.round_trips.admissions - before
    before = state.round_trips.admissions
    assert (await state.admit(plan(rid(), rates=(KEY_RPM, RateScope("global", rpm=1000)), budgets=(TEAM,)))).admitted
    both = state.round_trips.admissions - before
    assert tenant_only == 1
    assert both == (2 if state._cluster else 1)


async def test_a_cluster_without_a_master_for_a_slot_is_an_outage_not_an_error() -> None:
    from redis.exceptions import ClusterDownError

    from sluicegate.state.config import OutagePolicyConfig
    from sluicegate.state.memory import MemoryState
    from sluicegate.state.resilient import ResilientState

    class Uncovered(MemoryState):
        async def admit(self, plan: AdmissionPlan) -> Admission:
            raise ClusterDownError("slot 866 is not served by any master")

    state = ResilientState(Uncovered(), MemoryState(), OutagePolicyConfig())
    refused = await state.admit(plan(rid(), budgets=(TEAM,)))
    assert not refused.admitted and refused.refusal == "unavailable"  # 503 limits_unavailable, not a 500
    assert state.degraded
