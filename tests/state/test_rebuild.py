"""Budget balances rebuilt from the ledger before anything is admitted against them, on memory and Redis:
seeded once however many requests arrive together, again after Redis loses them, and refused (never
admitted at zero) while the ledger cannot be read."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from sluicegate.state.clock import ManualClock
from sluicegate.state.memory import MemoryState
from sluicegate.state.model import AdmissionPlan, BudgetScope, HotState, Settlement
from sluicegate.state.rebuild import BudgetRebuild
from sluicegate.state.redis import RedisState
from tests.state.conftest import WINDOW, drop_prefix, redis_client

LIMIT = 1_000_000
KEY = BudgetScope("key:k1", "m2026-01", LIMIT, LIMIT, None)


class Ledger:
    """A spend source with a switch: what it says each scope spent, how often it was read, and failures."""

    def __init__(self, spent: int) -> None:
        self.spent_micros = spent
        self.reads = 0
        self.down = False
        self.delay = 0.0

    async def spent(self, scope: BudgetScope) -> int:
        self.reads += 1
        await asyncio.sleep(self.delay)
        if self.down:
            raise ConnectionError("database down")
        return self.spent_micros


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[Ledger], HotState]]:
    clock = ManualClock(1_767_225_600.0)
    prefix = "sgtest-rebuild-" + secrets.token_hex(6)

    def build(ledger: Ledger) -> HotState:
        rebuild = BudgetRebuild(ledger, timeout=0.5)
        if request.param == "memory":
            return MemoryState(clock, window_seconds=WINDOW, rebuild=rebuild)
        return RedisState(client, prefix=prefix, window_seconds=WINDOW, clock=clock, rebuild=rebuild)

    client = await redis_client() if request.param == "redis" else None
    build.prefix = prefix  # type: ignore[attr-defined]
    build.client = client  # type: ignore[attr-defined]
    yield build
    if client is not None:
        await drop_prefix(client, prefix)
        await client.aclose()


def plan(n: int, max_out: int = 100) -> AdmissionPlan:
    # 1 µ$ a token of output: the grant is what the balance has room for
    return AdmissionPlan(
        request_id=f"r{n}",
        tenant="acme",
        budgets=(KEY,),
        output_pico_per_token=1_000_000,
        max_output_tokens=max_out,
        min_output_tokens=1,
    )


async def test_a_balance_starts_from_what_the_ledger_says_was_spent(make: Callable[[Ledger], HotState]) -> None:
    ledger = Ledger(LIMIT - 30)
    state = make(ledger)
    admission = await state.admit(plan(1))
    assert admission.admitted and admission.output_tokens == 30  # only the 30 µ$ the ledger leaves
    assert admission.budgets[0].spent_micros == LIMIT - 30
    refused = await state.admit(plan(2))
    assert not refused.admitted and refused.refusal == "budget_reserved"  # held by the first until it settles
    assert ledger.reads == 1


async def test_requests_arriving_together_read_the_ledger_once(
    make: Callable[[Ledger], HotState],
) -> None:
    ledger = Ledger(LIMIT - 500)
    ledger.delay = 0.05
    state = make(ledger)
    admissions = await asyncio.gather(*(state.admit(plan(n, max_out=10)) for n in range(100)))
    assert sum(a.admitted for a in admissions) == 50  # 500 µ$ left, 10 µ$ each: never more
    assert ledger.reads == 1


async def test_an_unreadable_ledger_refuses_budgets_until_it_is_back(make: Callable[[Ledger], HotState]) -> None:
    ledger = Ledger(LIMIT - 30)
    ledger.down = True
    state = make(ledger)
    refused = await state.admit(plan(1))
    assert not refused.admitted and refused.refusal == "rebuilding" and refused.refused_scope == "key:k1"
    ledger.down = False
    admission = await state.admit(plan(2))
    assert admission.admitted and admission.output_tokens == 30


async def test_settlements_before_the_rebuild_are_not_lost(make: Callable[[Ledger], HotState]) -> None:
    ledger = Ledger(LIMIT - 100)
    state = make(ledger)
    # a request admitted before the hot state was lost settles into the empty balance first
    await state.settle(Settlement("before", "acme", budgets=(KEY,), actual_micros=20))
    admission = await state.admit(plan(1))
    assert admission.admitted
    assert admission.budgets[0].spent_micros >= LIMIT - 100, "never below what the ledger says"


async def test_redis_losing_its_balances_rebuilds_them(make: Callable[[Ledger], HotState]) -> None:
    ledger = Ledger(LIMIT - 50)
    state = make(ledger)
    if not isinstance(state, RedisState):
        pytest.skip("the memory backend loses its balances only with its process (tests/e2e/test_budget_rebuild.py)")
    assert (await state.admit(plan(1, max_out=10))).admitted
    await state.settle(Settlement("r1", "acme", budgets=(KEY,), actual_micros=10))
    await drop_prefix(make.client, make.prefix)  # type: ignore[attr-defined]  # Redis restarted empty
    ledger.spent_micros = LIMIT - 40  # the ledger has the settled request too
    admission = await state.admit(plan(2))
    assert admission.admitted and admission.output_tokens == 40
    assert ledger.reads == 2


async def test_reservations_of_requests_in_flight_survive_a_loss_of_redis(make: Callable[[Ledger], HotState]) -> None:
    ledger = Ledger(LIMIT - 100)
    state = make(ledger)
    if not isinstance(state, RedisState):
        pytest.skip("the memory backend loses its balances only with its process and requests")
    in_flight = await state.admit(plan(1, max_out=60))  # holds 60 µ$ of the 100 left
    assert in_flight.admitted and in_flight.reserved_micros == 60
    await drop_prefix(make.client, make.prefix)  # type: ignore[attr-defined]  # Redis restarted empty
    after = await state.admit(plan(2, max_out=100))
    assert after.admitted and after.output_tokens == 40, "the in-flight request's 60 µ$ are still held"
    settled = await state.settle(Settlement("r1", "acme", budgets=(KEY,), actual_micros=50))
    assert settled.budgets[0].reserved_micros == 40 and settled.budgets[0].spent_micros == LIMIT - 100 + 50


async def test_other_instances_requests_in_flight_across_a_loss_bound_the_overspend(
    make: Callable[[Ledger], HotState],
) -> None:
    """The one way over a budget (docs/budgets-and-limits.md): a request another instance admitted before
    Redis lost the balance settles without its reservation, so the budget is exceeded by at most its cost."""
    ledger = Ledger(LIMIT - 100)
    here, there = make(ledger), make(ledger)  # two gateway instances on one Redis
    if not isinstance(here, RedisState):
        pytest.skip("the memory backend is one process: no other instance has requests in flight")
    in_flight = await there.admit(plan(1, max_out=60))
    assert in_flight.admitted and in_flight.reserved_micros == 60
    await drop_prefix(make.client, make.prefix)  # type: ignore[attr-defined]  # Redis restarted empty
    seeded = await here.admit(plan(2, max_out=100))  # seeded from the ledger: the other's 60 µ$ are not known
    assert seeded.admitted and seeded.output_tokens == 100
    await here.settle(Settlement("r2", "acme", budgets=(KEY,), actual_micros=100))
    settled = await there.settle(Settlement("r1", "acme", budgets=(KEY,), actual_micros=45))
    over = settled.budgets[0].spent_micros - LIMIT
    assert over == 45, "over by exactly the cost of the request in flight elsewhere, never more"
    assert over <= in_flight.reserved_micros
    after = await here.admit(plan(3, max_out=10))
    assert not after.admitted and after.refusal == "budget"  # nothing more is admitted against it
