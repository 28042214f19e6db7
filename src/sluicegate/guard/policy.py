"""Guardrail levels and what they do: per category, allow, flag, redact or block; the strictest level along a
key's chain (tenant, team, key) applies; a request's findings become one decision.

Levels are `off`, `standard`, `strict` and the named custom policies of the configuration
(`guardrails.policies`). A category is named exactly ("injection") or by a prefix ending in `*` ("pii_*").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.guard.findings import Finding

Action = Literal["allow", "flag", "redact", "block"]
ACTIONS: tuple[Action, ...] = ("allow", "flag", "redact", "block")  # in order of strictness
_RANK = {action: rank for rank, action in enumerate(ACTIONS)}
BUILT_IN = ("off", "standard", "strict")
LEVEL_NAME = r"^[A-Za-z0-9_.-]{1,32}$"
CATEGORY_KEY = r"^(?:[a-z][a-z0-9_]{0,31}\*?|\*)$"
# The categories a redaction can act on: detectors that report where the text is (PII and secrets).
REDACTABLE = ("pii_", "secret_")


class Policy(BaseModel):
    """What a level does with findings. A finding under `flag_score` is ignored; a category whose action is
    `block` blocks at or above `block_score` and is flagged below it (a quotation, a weak pattern)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    extends: str | None = Field(None, pattern=LEVEL_NAME)  # a built-in level this policy starts from
    actions: dict[str, Action] = Field(default_factory=dict)
    block_score: float | None = Field(None, ge=0, le=1)
    flag_score: float | None = Field(None, ge=0, le=1)

    @field_validator("actions")
    @classmethod
    def _categories(cls, actions: dict[str, Action]) -> dict[str, Action]:
        for key, action in actions.items():
            if not re.match(CATEGORY_KEY, key):
                raise ValueError(f"'{key}' is not a category name or a prefix ending in '*'")
            if action == "redact" and not (key == "*" or key.startswith(REDACTABLE)):
                raise ValueError(f"'{key}': redact applies to PII and secrets only (pii_*, secret_*)")
        return actions

    @model_validator(mode="after")
    def _scores(self) -> Policy:
        if self.block_score is not None and self.flag_score is not None and self.flag_score > self.block_score:
            raise ValueError("flag_score must not be above block_score")
        return self


_STANDARD = Policy(
    actions={
        "injection": "block",
        "jailbreak": "block",
        "obfuscation": "block",
        "token_bomb": "block",
        "pii_*": "flag",
        "secret_*": "redact",
        "*": "flag",
    },
    block_score=0.8,
    flag_score=0.5,
)
_STRICT = Policy(
    actions={
        "injection": "block",
        "jailbreak": "block",
        "obfuscation": "block",
        "token_bomb": "block",
        "pii_*": "redact",
        "secret_*": "block",
        "*": "block",
    },
    block_score=0.55,
    flag_score=0.35,
)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A policy with everything filled in, ready to decide."""

    exact: Mapping[str, Action]
    prefixes: tuple[tuple[str, Action], ...]  # longest prefix first
    default: Action
    block_score: float
    flag_score: float

    def action_for(self, category: str) -> Action:
        action = self.exact.get(category)
        if action is not None:
            return action
        for prefix, prefixed in self.prefixes:
            if category.startswith(prefix):
                return prefixed
        return self.default

    def acts_on(self, prefix: str) -> bool:
        """Whether any category starting with `prefix` gets an action other than allow (so its detector runs)."""
        if self.default != "allow":
            return True
        if any(c.startswith(prefix) and a != "allow" for c, a in self.exact.items()):
            return True
        return any((p.startswith(prefix) or prefix.startswith(p)) and a != "allow" for p, a in self.prefixes)


def _resolve(policy: Policy, base: Resolved | None) -> Resolved:
    exact: dict[str, Action] = dict(base.exact) if base else {}
    prefixes: dict[str, Action] = dict(base.prefixes) if base else {}
    default: Action = base.default if base else "allow"
    for key, action in policy.actions.items():
        if key == "*":
            default = action
        elif key.endswith("*"):
            prefixes[key[:-1]] = action
        else:
            exact[key] = action
    return Resolved(
        exact=exact,
        prefixes=tuple(sorted(prefixes.items(), key=lambda p: -len(p[0]))),
        default=default,
        block_score=policy.block_score if policy.block_score is not None else (base.block_score if base else 0.8),
        flag_score=policy.flag_score if policy.flag_score is not None else (base.flag_score if base else 0.5),
    )


class Levels:
    """The levels a deployment knows (built-in and its custom policies), resolved once, and the strictest
    combination along a chain, cached per distinct chain (a handful in practice)."""

    def __init__(self, custom: Mapping[str, Policy] | None = None) -> None:
        built_in = {"standard": _resolve(_STANDARD, None), "strict": _resolve(_STRICT, None)}
        self._levels: dict[str, Resolved | None] = {"off": None, **built_in}
        for name, policy in (custom or {}).items():
            if name in BUILT_IN:
                raise ValueError(f"guardrails.policies: '{name}' is a built-in level and cannot be redefined")
            base = None
            if policy.extends is not None:
                if policy.extends not in built_in:
                    raise ValueError(
                        f"guardrails.policies.{name}.extends: '{policy.extends}' is not standard or strict"
                    )
                base = built_in[policy.extends]
            self._levels[name] = _resolve(policy, base)
        self._chains: dict[tuple[str, ...], Resolved | None] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._levels)

    def known(self, name: str) -> bool:
        return name in self._levels

    def get(self, name: str) -> Resolved | None:
        return self._levels[name]

    def chain(self, names: Sequence[str]) -> Resolved | None:
        """The strictest of the named levels (None: every one is off). An unknown name is treated as
        `strict`: a level the deployment does not define must not weaken the firewall."""
        key = tuple(names)
        cached = self._chains.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        resolved = [self._levels.get(name, self._levels["strict"]) for name in names]
        combined = strictest(r for r in resolved if r is not None)
        if len(self._chains) < 1024:
            self._chains[key] = combined
        return combined


_MISSING = object()


def strictest(policies: Iterable[Resolved]) -> Resolved | None:
    """Per category the strictest action, the lowest thresholds: no level along the chain is weakened."""
    chosen = list(policies)
    if not chosen:
        return None
    if len(chosen) == 1:
        return chosen[0]
    categories = {c for p in chosen for c in p.exact}
    prefixes = {c for p in chosen for c, _ in p.prefixes}
    exact = {c: max((p.action_for(c) for p in chosen), key=_RANK.__getitem__) for c in categories}
    prefixed = {}
    for prefix in prefixes:
        prefixed[prefix] = max((p.action_for(prefix) for p in chosen), key=_RANK.__getitem__)
    return Resolved(
        exact=exact,
        prefixes=tuple(sorted(prefixed.items(), key=lambda p: -len(p[0]))),
        default=max((p.default for p in chosen), key=_RANK.__getitem__),
        block_score=min(p.block_score for p in chosen),
        flag_score=min(p.flag_score for p in chosen),
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """What a request's findings come to under a policy."""

    action: Action  # the strongest action taken
    categories: tuple[str, ...]  # the categories acted on (flagged, redacted or blocked), sorted
    blocked_by: Finding | None  # the finding that blocks (the strongest), when the action is block
    redact: tuple[Finding, ...]  # positional findings to replace with placeholders
    acted: tuple[tuple[Finding, Action], ...]  # every finding that was acted on, and how


def decide(policy: Resolved, findings: Iterable[Finding]) -> Decision:
    acted: list[tuple[Finding, Action]] = []
    for finding in findings:
        if finding.score < policy.flag_score:
            continue
        action = policy.action_for(finding.category)
        if action == "allow":
            continue
        if action == "block" and finding.score < policy.block_score:
            action = "flag"
        elif action == "redact" and not finding.positional:
            action = "flag"  # nothing to replace: the text as a whole was found
        acted.append((finding, action))
    if not acted:
        return Decision("allow", (), None, (), ())
    top = max(_RANK[a] for _, a in acted)
    action = ACTIONS[top]
    blocked_by = None
    if action == "block":
        blocked_by = max((f for f, a in acted if a == "block"), key=lambda f: f.score)
    return Decision(
        action=action,
        categories=tuple(sorted({f.category for f, _ in acted})),
        blocked_by=blocked_by,
        redact=tuple(f for f, a in acted if a == "redact"),
        acted=tuple(acted),
    )
