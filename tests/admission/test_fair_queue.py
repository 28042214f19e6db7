"""The admission queue: bounded, by priority, and fair between tenants."""

from __future__ import annotations

import asyncio

import pytest

from sluicegate.pipeline.fair_queue import FairQueue, QueueFull


async def test_a_burst_from_one_tenant_does_not_starve_another() -> None:
    queue = FairQueue(capacity=100)
    order: list[str] = []

    async def waiter(tenant: str, priority: int = 1) -> None:
        await queue.wait(tenant, priority, 0)
        order.append(tenant)
        await asyncio.sleep(0)
        queue.done()

    burst = [asyncio.create_task(waiter("a")) for _ in range(10)]
    await asyncio.sleep(0)
    late = [asyncio.create_task(waiter("b")) for _ in range(2)]
    await asyncio.gather(*burst, *late)
    # without fairness both b's would wait behind all ten a's; with it they alternate with a's
    second_b = order.index("b", order.index("b") + 1)
    assert order.index("b") <= 3 and second_b <= 5


async def test_higher_priority_retries_first() -> None:
    queue = FairQueue(capacity=100)
    order: list[str] = []

    async def waiter(name: str, priority: int) -> None:
        await queue.wait(name, priority, 0)
        order.append(name)
        await asyncio.sleep(0)
        queue.done()

    tasks = [asyncio.create_task(waiter(f"n{i}", 1)) for i in range(3)]
    tasks.append(asyncio.create_task(waiter("critical", 3)))
    await asyncio.gather(*tasks)
    assert order.index("critical") <= 1  # the first may have started before it arrived


async def test_the_queue_is_bounded() -> None:
    queue = FairQueue(capacity=1)
    first = asyncio.create_task(queue.wait("a", 1, 0.05))
    await asyncio.sleep(0)
    with pytest.raises(QueueFull):
        await queue.wait("b", 1, 0)
    await first
    queue.done()
    assert queue.waiting == 0
