"""One clock, given out by the gateway: moving it moves operator-action expiry and breaker timers alike."""

from __future__ import annotations

from sluicegate.clock import ManualClock
from sluicegate.config.schema import GatewayConfig
from sluicegate.routing.breaker import BreakerState
from sluicegate.server.gateway import Gateway


async def test_the_gateway_hands_every_component_its_one_clock(tmp_path: object) -> None:
    config = GatewayConfig.model_validate(
        {
            "store": {"database_url": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", "spool_dir": f"{tmp_path}/spool"},
            "providers": {"sim": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
            "models": [
                {
                    "name": "m",
                    "routing": {"breaker": {"consecutive_failures": 1, "min_open_s": 30}},
                    "deployments": [{"provider": "sim", "model": "a"}],
                }
            ],
        }
    )
    clock = ManualClock()
    gateway = Gateway(config, master_key="sk-master", environ={}, clock=clock)

    status, _ = await gateway.limits.operator_action("PUT", {"entity": "team:t", "minutes": 1, "rpm": 5})
    assert status == 200 and [o.entity for o in gateway.limits.overrides.all()] == ["team:t"]

    breaker = gateway.router.health["sim/a"].breaker
    assert breaker.acquire()
    breaker.record("failure", 0.1)
    assert breaker.state is BreakerState.OPEN

    clock.advance(61)  # past the action's minute and the breaker's 30 s, with no sleeping
    assert gateway.limits.overrides.all() == []
    assert breaker.state is BreakerState.HALF_OPEN
