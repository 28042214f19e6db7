"""`usage` routing reads every instance's use of a deployment from the shared rate-limit state when fresh."""

from __future__ import annotations

from dataclasses import dataclass

from sluicegate.routing.headroom import HeadroomRefresher
from tests.routing.helpers import make_router, needs

GROUP = """
  - name: g
    routing: {strategy: usage}
    deployments:
      - {provider: sim, model: a, rpm: 100}
      - {provider: sim, model: b, rpm: 100}
"""


@dataclass
class Room:
    requests: int | None
    tokens: int | None = None


async def test_shared_headroom_wins_while_fresh_then_local_counts_return() -> None:
    router, catalog, clock = make_router(GROUP)
    group = catalog.get("g")
    assert group is not None
    router.health["sim/b"].usage.add(requests=50)  # this instance sent b half its limit
    assert router.plan(group, needs(router, "g")).chain[0].model == "a"

    rooms = {"sim/a": Room(requests=10), "sim/b": Room(requests=60)}  # other instances filled a up

    async def read(name: str, rpm: int | None, tpm: int | None) -> Room:
        return rooms[name]

    refresher = HeadroomRefresher(router, read)
    await refresher.refresh()
    plan = router.plan(group, needs(router, "g"))
    assert plan.chain[0].model == "b"
    assert plan.reason == "usage: most headroom 60% of 2"

    clock.advance(5)  # no refresh for a while: the shared figures are stale, local counts decide again
    assert router.plan(group, needs(router, "g")).chain[0].model == "a"


async def test_unreadable_shared_state_is_ignored() -> None:
    router, _, _ = make_router(GROUP)

    async def read(name: str, rpm: int | None, tpm: int | None) -> Room:
        raise ConnectionError("redis away")

    await HeadroomRefresher(router, read).refresh()
    assert router.health["sim/a"].shared_headroom is None
