"""The routing strategies: each orders a group's eligible deployments and says why in a few words.

A strategy gets the candidates that already passed the hard filters (capabilities, context window,
region, breaker) and returns them best first: the first is tried, the rest are the fallback chain.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from sluicegate.routing.health import DeploymentHealth
from sluicegate.routing.needs import RequestNeeds

Ranking = tuple[list[DeploymentHealth], str]
StrategyFn = Callable[[Sequence[DeploymentHealth], RequestNeeds, random.Random, float], Ranking]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def weighted(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float
) -> Ranking:
    """Random in proportion to weight; the rest by weight, heaviest first."""
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
    rest = sorted((c for c in candidates if c is not chosen), key=lambda c: -c.deployment.weight)
    return [chosen, *rest], f"weighted: w={chosen.deployment.weight:g} of {len(candidates)}"


def least_busy(
    candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float
) -> Ranking:
    """Fewest calls in flight, ties broken at random."""
    ordered = sorted(candidates, key=lambda c: (c.limit.in_flight, rng.random()))
    return ordered, f"least_busy: {ordered[0].limit.in_flight} in flight, least of {len(candidates)}"


def _unknown(candidates: Sequence[DeploymentHealth]) -> list[DeploymentHealth]:
    return [c for c in candidates if not c.stats.known and c.deployment.latency_target_ms is None]


def _explore(candidates: Sequence[DeploymentHealth], rng: random.Random, explore: float, name: str) -> Ranking | None:
    """A small share of traffic goes to deployments without enough samples, so they get measured."""
    unknown = _unknown(candidates)
    if not unknown or len(unknown) == len(candidates) or rng.random() >= explore:
        return None
    chosen = rng.choice(unknown)
    rest = [c for c in candidates if c is not chosen]
    return [chosen, *rest], f"{name}: exploring {chosen.deployment.name} (too few samples)"


def latency(candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float) -> Ranking:
    """Lowest predicted p99 (time to first token for streams, total otherwise)."""
    explored = _explore(candidates, rng, explore, "latency")
    if explored is not None:
        return explored
    predicted = [(c.predicted_latency(needs.stream), c) for c in candidates]
    known = [(p, c) for p, c in predicted if p is not None]
    if not known:
        ranking, _ = weighted(candidates, needs, rng, explore)
        return ranking, f"latency: no samples yet, weighted of {len(candidates)}"
    known.sort(key=lambda pc: pc[0])
    unknown = [c for p, c in predicted if p is None]
    return [c for _, c in known] + unknown, f"latency: lowest p99 {_ms(known[0][0])} of {len(candidates)}"


def cost(candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float) -> Ranking:
    """Cheapest whose predicted p99 meets `max_latency_ms` (unknown latency counts as meeting it)."""
    prompt, output = needs.prompt_estimate, needs.output_estimate
    by_cost = sorted(candidates, key=lambda c: c.estimated_cost(prompt, output))
    limit = needs.max_latency_s
    if limit is None:
        return by_cost, f"cost: cheapest of {len(candidates)}"
    meeting: list[DeploymentHealth] = []
    missing: list[tuple[float, DeploymentHealth]] = []
    for c in by_cost:
        p = c.predicted_latency(needs.stream)
        if p is None or p <= limit:
            meeting.append(c)
        else:
            missing.append((p, c))
    missing.sort(key=lambda pc: pc[0])
    if not meeting:
        return [c for _, c in missing], f"cost: none of {len(candidates)} meets p99<{_ms(limit)}, fastest"
    return meeting + [c for _, c in missing], f"cost: cheapest of {len(meeting)} meeting p99<{_ms(limit)}"


def usage(candidates: Sequence[DeploymentHealth], needs: RequestNeeds, rng: random.Random, explore: float) -> Ranking:
    """Most headroom left under the upstream's own RPM/TPM over the last minute."""
    scored = sorted(candidates, key=lambda c: (-c.usage.headroom(c.deployment.rpm, c.deployment.tpm), rng.random()))
    best = scored[0].usage.headroom(scored[0].deployment.rpm, scored[0].deployment.tpm)
    return scored, f"usage: most headroom {best:.0%} of {len(candidates)}"


STRATEGIES: dict[str, StrategyFn] = {
    "weighted": weighted,
    "least_busy": least_busy,
    "latency": latency,
    "cost": cost,
    "usage": usage,
}
