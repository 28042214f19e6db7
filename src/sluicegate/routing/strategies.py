"""The routing strategies: each orders a group's eligible deployments and says why in a few words.

A strategy gets the candidates that already passed the hard filters (capabilities, context window,
region, breaker) and returns them best first: the first is tried, the rest are the fallback chain.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence

from sluicegate.routing.health import DeploymentHealth
from sluicegate.routing.needs import RequestNeeds

Ranking = tuple[list[DeploymentHealth], str]
StrategyFn = Callable[[Sequence[DeploymentHealth], RequestNeeds, random.Random, float, int], Ranking]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def weighted(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float, k: int
) -> Ranking:
    """Random in proportion to weight; then the others in configured order."""
    total = 0.0
    for c in candidates:
        total += c.deployment.weight
    point = rng.random() * total
    chosen = candidates[-1]
    for c in candidates:
        point -= c.deployment.weight
        if point < 0:
            chosen = c
            break
    ranked = [chosen]
    for c in candidates:
        if len(ranked) >= k:
            break
        if c is not chosen:
            ranked.append(c)
    return ranked, f"weighted: w={chosen.deployment.weight:g} of {len(candidates)}"


def least_busy(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float, k: int
) -> Ranking:
    """Fewest calls in flight, ties broken at random."""
    ranked = heapq.nsmallest(k, candidates, key=lambda c: (c.limit.in_flight, rng.random()))
    return ranked, f"least_busy: {ranked[0].limit.in_flight} in flight, least of {len(candidates)}"


def _explore(
    candidates: Sequence[DeploymentHealth], rng: random.Random, explore: float, name: str, k: int
) -> Ranking | None:
    """A small share of traffic goes to deployments without enough samples, so they get measured."""
    if rng.random() >= explore:
        return None
    unknown = [c for c in candidates if not c.stats.known and c.deployment.latency_target_ms is None]
    if not unknown or len(unknown) == len(candidates):
        return None
    chosen = rng.choice(unknown)
    rest = [c for c in candidates if c is not chosen][: k - 1]
    return [chosen, *rest], f"{name}: exploring {chosen.deployment.name} (too few samples)"


def latency(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float, k: int
) -> Ranking:
    """Lowest predicted p99 (time to first token for streams, total otherwise)."""
    explored = _explore(candidates, rng, explore, "latency", k)
    if explored is not None:
        return explored
    stream = needs.stream
    known: list[tuple[float, int, DeploymentHealth]] = []
    unknown: list[DeploymentHealth] = []
    for i, c in enumerate(candidates):
        p = c.predicted_latency(stream)
        if p is None:
            unknown.append(c)
        else:
            known.append((p, i, c))
    if not known:
        ranking, _ = weighted(candidates, needs, rng, explore, k)
        return ranking, f"latency: no samples yet, weighted of {len(candidates)}"
    best = heapq.nsmallest(k, known)
    ranked = [c for _, _, c in best] + unknown[: max(0, k - len(best))]
    return ranked, f"latency: lowest p99 {_ms(best[0][0])} of {len(candidates)}"


def cost(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float, k: int
) -> Ranking:
    """Cheapest whose predicted p99 meets `max_latency_ms` (unknown latency counts as meeting it)."""
    prompt, output = needs.prompt_estimate, needs.output_estimate
    limit = needs.max_latency_s
    if limit is None:
        ranked = heapq.nsmallest(k, candidates, key=lambda c: c.estimated_cost(prompt, output))
        return ranked, f"cost: cheapest of {len(candidates)}"
    stream = needs.stream
    meeting: list[tuple[float, int, DeploymentHealth]] = []
    missing: list[tuple[float, int, DeploymentHealth]] = []
    for i, c in enumerate(candidates):
        p = c.predicted_latency(stream)
        if p is None or p <= limit:
            meeting.append((c.estimated_cost(prompt, output), i, c))
        else:
            missing.append((p, i, c))
    if not meeting:
        fastest = heapq.nsmallest(k, missing)
        return [c for _, _, c in fastest], f"cost: none of {len(candidates)} meets p99<{_ms(limit)}, fastest"
    cheapest = heapq.nsmallest(k, meeting)
    ranked = [c for _, _, c in cheapest] + [c for _, _, c in heapq.nsmallest(k - len(cheapest), missing)]
    return ranked, f"cost: cheapest of {len(meeting)} meeting p99<{_ms(limit)}"


def usage(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float, k: int
) -> Ranking:
    """Most headroom left under the upstream's own RPM/TPM over the last minute."""
    now = candidates[0].usage.now()
    scored = heapq.nsmallest(k, ((-c.headroom(now), i, c) for i, c in enumerate(candidates)))
    return [c for _, _, c in scored], f"usage: most headroom {-scored[0][0]:.0%} of {len(candidates)}"


STRATEGIES: dict[str, StrategyFn] = {
    "weighted": weighted,
    "least_busy": least_busy,
    "latency": latency,
    "cost": cost,
    "usage": usage,
}
