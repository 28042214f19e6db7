"""The fault rules in force per model (configured, or injected at run time) and the seeded draws.

A model's injected rules replace its configured ones; rules injected for `*` apply to every model on
top of its own. A rule with `duration_s` is an outage window: it starts when the rule is installed and
expires by itself. Draws come from one `random.Random` per model, seeded from (seed, model), consumed
in arrival order, so a seeded run is reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sluicegate.providers.simulator.config import FaultRule, SimulatorConfig

WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class InstalledFault:
    rule: FaultRule
    installed_at: float

    def active(self, now: float) -> bool:
        duration = self.rule.duration_s
        return duration is None or now < self.installed_at + duration

    def describe(self, now: float, injected: bool) -> dict[str, Any]:
        out: dict[str, Any] = self.rule.model_dump(exclude_none=True)
        out["active"] = self.active(now)
        if self.rule.duration_s is not None:
            out["remaining_s"] = round(max(0.0, self.installed_at + self.rule.duration_s - now), 3)
        out["source"] = "injected" if injected else "config"
        return out


@dataclass(frozen=True, slots=True)
class FaultDraw:
    """What one request suffers: at most one failure, and a latency multiplier."""

    failure: FaultRule | None = None
    slow_factor: float = 1.0


NO_FAULT = FaultDraw()

_Rules = tuple[InstalledFault, ...]


def _install(rules: Iterable[FaultRule], now: float) -> _Rules:
    return tuple(InstalledFault(rule, now) for rule in rules)


class FaultBook:
    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self._seed = config.seed
        self._clock = clock
        now = clock()
        self._configured: dict[str, _Rules] = {
            name: _install(behaviour.faults, now) for name, behaviour in config.models.items()
        }
        self._default = _install(config.default.faults, now)
        self._injected: dict[str, _Rules] = {}
        self._rngs: dict[str, random.Random] = {}

    def rules_for(self, model: str) -> _Rules:
        own = self._injected.get(model)
        if own is None:
            own = self._configured.get(model, self._default)
        wildcard = self._injected.get(WILDCARD)
        return own + wildcard if wildcard else own

    def draw(self, model: str) -> FaultDraw:
        rules = self.rules_for(model)
        if not rules:
            return NO_FAULT
        now = self._clock()
        rng = self._rngs.get(model)
        if rng is None:
            rng = self._rngs[model] = random.Random(f"{self._seed}:{model}")
        failure: FaultRule | None = None
        factor = 1.0
        for installed in rules:
            rule = installed.rule
            if rule.probability <= 0 or not installed.active(now):
                continue
            if rule.probability < 1 and rng.random() >= rule.probability:
                continue
            if rule.type == "slow":
                factor *= rule.factor or 1.0
            elif failure is None:
                failure = rule
        if failure is None and factor == 1.0:
            return NO_FAULT
        return FaultDraw(failure, factor)

    def replace(self, model: str, rules: list[FaultRule]) -> None:
        """Install `rules` for `model` (or `*`), restarting its draws so a drill replays identically."""
        self._injected[model] = _install(rules, self._clock())
        if model == WILDCARD:
            self._rngs.clear()
        else:
            self._rngs.pop(model, None)

    def clear(self) -> None:
        """Drop every injected rule; configured rules apply again."""
        self._injected.clear()

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        models: dict[str, list[dict[str, Any]]] = {}
        for name, rules in self._configured.items():
            models[name] = [f.describe(now, injected=False) for f in rules]
        for name, rules in self._injected.items():
            models[name] = [f.describe(now, injected=True) for f in rules]
        return {"models": models, "default": [f.describe(now, injected=False) for f in self._default]}
