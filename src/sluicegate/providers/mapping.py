"""Request-parameter mapping as data: each OpenAI parameter -> a provider parameter, bounds and transform.

A family declares a `ParamMap`; parameters it maps are moved into the provider body, parameters it
ignores by rule are dropped, and any other parameter is one the provider cannot honour: dropped or
refused with a 400, as the provider's `unsupported_params` policy says (docs/providers.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sluicegate.errors import bad_request

Policy = Literal["drop", "refuse"]


@dataclass(frozen=True, slots=True)
class Param:
    """Where one OpenAI parameter goes: a dotted path in the provider body, checked and transformed."""

    target: str
    transform: Callable[[Any], Any] | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class ParamMap:
    family: str
    params: Mapping[str, Param]
    handled: frozenset[str] = frozenset()  # translated by the adapter's own code (tools, tool_choice, ...)
    ignored: frozenset[str] = frozenset()  # no meaning for this provider: always dropped
    # Values that ask for nothing beyond the default (n=1, logprobs=false) are no-ops, never "unsupported".
    noop: Mapping[str, Callable[[Any], bool]] = field(default_factory=dict)

    def apply(self, params: Mapping[str, Any], body: dict[str, Any], policy: Policy) -> None:
        for name, value in params.items():
            if value is None or name in self.handled or name in self.ignored:
                continue
            rule = self.params.get(name)
            if rule is None:
                accepts = self.noop.get(name)
                if accepts is not None and accepts(value):
                    continue
                if policy == "refuse":
                    raise bad_request(
                        f"The parameter '{name}' is not supported by the {self.family} provider serving this model.",
                        param=name,
                        code="unsupported_parameter",
                    )
                continue
            _check_bounds(self.family, name, value, rule)
            set_path(body, rule.target, rule.transform(value) if rule.transform else value)


def _check_bounds(family: str, name: str, value: Any, rule: Param) -> None:
    if rule.low is None and rule.high is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad_request(f"Invalid type for '{name}': expected a number.", param=name)
    if (rule.low is not None and value < rule.low) or (rule.high is not None and value > rule.high):
        # Clamping would silently change what the client asked for.
        raise bad_request(
            f"'{name}' must be between {rule.low:g} and {rule.high:g} for the {family} provider serving this "
            f"model (got {value:g}).",
            param=name,
        )


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def stop_list(value: Any) -> list[str]:
    """OpenAI's `stop` is a string or a list of strings; other APIs take a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise bad_request("Invalid value for 'stop': expected a string or an array of strings.", param="stop")


def is_one(value: Any) -> bool:
    return bool(value == 1)


def is_false(value: Any) -> bool:
    return value is False


# OpenAI-account parameters that mean nothing to another provider and change no answer.
OPENAI_ONLY = frozenset(
    {"store", "metadata", "service_tier", "prediction", "stream_options", "user", "sluicegate_cache_hints"}
    | {"sluicegate_reasoning_history"}
)
