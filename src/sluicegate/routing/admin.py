"""What the operator sees and controls of routing: breaker states, latency statistics, breaker overrides."""

from __future__ import annotations

from typing import Any

from sluicegate.errors import GatewayError, bad_request
from sluicegate.routing.breaker import BreakerState
from sluicegate.routing.router import Router

_OVERRIDES = {"open": BreakerState.OPEN, "closed": BreakerState.CLOSED, "auto": None}


def breaker_states(router: Router) -> dict[str, str]:
    """deployment -> breaker state, for /health/ready."""
    return {name: str(h.breaker.state) for name, h in router.health.items()}


def _fallback_groups(router: Router, name: str) -> list[str]:
    """The groups a request for `name` may fall back to, directly or through their own fallbacks."""
    found: list[str] = []
    pending = [name]
    while pending:
        group = router.catalog.get(pending.pop())
        if group is None:
            continue
        for chain in (group.routing.fallbacks, *group.routing.fallbacks_by_error.values()):
            for other in chain:
                if other != name and other not in found:
                    found.append(other)
                    pending.append(other)
    return found


def deployments_report(router: Router) -> list[dict[str, Any]]:
    """Every deployment with its breaker, load, recent usage and latency statistics; `fallback_for` names the
    groups whose requests may reach it through fallbacks (what a drill of those groups must fault too)."""
    groups: dict[str, list[str]] = {}
    for group in router.catalog:
        for d in group.deployments:
            groups.setdefault(d.name, []).append(group.name)
    fallback_for: dict[str, list[str]] = {}
    for group in router.catalog:
        for other in _fallback_groups(router, group.name):
            fallback = router.catalog.get(other)
            for d in fallback.deployments if fallback is not None else ():
                if group.name not in groups.get(d.name, []):
                    fallback_for.setdefault(d.name, []).append(group.name)
    now = router.clock()
    report = []
    for name, h in router.health.items():
        breaker = h.breaker
        calls, failures, slow = breaker.recent()
        report.append(
            {
                "deployment": name,
                "model": h.deployment.model,
                "groups": groups.get(name, []),
                "fallback_for": fallback_for.get(name, []),
                "throttled_for_s": round(max(0.0, h.throttled_until - now), 3),
                "region": h.deployment.region,
                "breaker": {
                    "state": str(breaker.state),
                    "forced": str(breaker.forced) if breaker.forced else None,
                    "reason": breaker.reason,
                    "retry_in_s": round(breaker.retry_in(), 3),
                    "transitions": len(breaker.transitions),
                    # the breaker's window of recent calls: the error rate it judges by
                    "window_calls": calls,
                    "window_failures": failures,
                    "window_slow": slow,
                },
                "in_flight": h.limit.in_flight,
                "concurrency_limit": round(h.limit.limit, 2),
                "requests_last_minute": h.usage.requests,
                "tokens_last_minute": h.usage.tokens,
                "latency": h.stats.as_dict(),
            }
        )
    return report


def override_breaker(router: Router, body: Any) -> dict[str, Any]:
    """`{"deployment": name, "state": "open" | "closed" | "auto"}`: hold a breaker, or give it back."""
    if not isinstance(body, dict) or not isinstance(body.get("deployment"), str) or body.get("state") not in _OVERRIDES:
        raise bad_request('Expected {"deployment": "<name>", "state": "open" | "closed" | "auto"}.')
    health = router.health.get(body["deployment"])
    if health is None:
        raise GatewayError(404, f"Unknown deployment '{body['deployment']}'.", code="not_found")
    health.breaker.force(_OVERRIDES[body["state"]])
    return {"deployment": body["deployment"], "state": str(health.breaker.state), "forced": body["state"] != "auto"}
