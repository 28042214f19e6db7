"""The budget invariant at the state layer: many concurrent requests through several Redis clients (as
several gateway instances would be) never commit a micro-dollar over the budget, and use it nearly all."""

from __future__ import annotations

import asyncio
import random
import secrets

from sluicegate.state.model import AdmissionPlan, BudgetScope, RateScope, Settlement
from sluicegate.state.redis import RedisState
from tests.state.conftest import drop_prefix, redis_client

PRICE_IN_PICO = 2_500_000  # $2.50 per million prompt tokens
PRICE_OUT_PICO = 10_000_000  # $10 per million output tokens


async def test_concurrent_admissions_never_overspend_a_shared_budget() -> None:
    prefix = "sgtest-" + secrets.token_hex(6)
    clients = [await redis_client() for _ in range(2)]
    instances = [RedisState(client, prefix=prefix) for client in clients]  # Redis's own clock
    limit = 3_000_000  # $3
    team = BudgetScope("team:t1", "total", limit, limit)
    rng = random.Random(5)
    refused = 0
    in_flight = asyncio.Semaphore(64)  # requests in flight at once across both instances

    async def one(i: int) -> int:
        nonlocal refused
        state = instances[i % 2]
        key = BudgetScope(f"key:k{i % 20}", "total", 10**9, 10**9)
        input_tokens = rng.randint(50, 400)
        input_micros = -(-input_tokens * PRICE_IN_PICO // 1_000_000)
        rates = (RateScope(f"key:k{i % 20}", rpm=10_000),)
        plan = AdmissionPlan(
            request_id=f"r{i}",
            tenant="acme",
            rates=rates,
            budgets=(key, team),
            input_tokens=input_tokens,
            input_micros=input_micros,
            output_pico_per_token=PRICE_OUT_PICO,
            max_output_tokens=rng.choice([None, 300, 1000]) or 2000,
            min_output_tokens=16,
        )
        async with in_flight:
            admission = await state.admit(plan)
            if not admission.admitted:
                refused += 1
                return 0
            await asyncio.sleep(rng.random() * 0.01)
            produced = rng.randint(admission.output_tokens // 2, admission.output_tokens)  # the model stops early
            actual = input_micros + -(-produced * PRICE_OUT_PICO // 1_000_000)
            assert actual <= admission.reserved_micros
            await state.settle(
                Settlement(f"r{i}", "acme", rates=rates, budgets=(key, team), actual_tokens=0, actual_micros=actual)
            )
            return actual

    try:
        spent = await asyncio.gather(*(one(i) for i in range(1000)))
        status = await instances[0].budget_status("acme", team)
        assert status.spent_micros == sum(spent)
        assert status.spent_micros <= limit, "the budget was overspent"
        assert status.reserved_micros == 0
        assert status.spent_micros >= 0.95 * limit, f"only {status.spent_micros} of {limit} used"
        assert refused > 0
    finally:
        await drop_prefix(clients[0], prefix)
        for client in clients:
            await client.aclose()
