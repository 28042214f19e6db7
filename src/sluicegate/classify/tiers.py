"""Tiers and what each model group serves: the shipped defaults for well-known model names, and each
group's effective tier and capabilities (declared in the configuration, else the defaults)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sluicegate.classify.config import TASK_TYPES

# Well-known model names (the provider's own, matched by the longest prefix, with a provider prefix such as
# "anthropic." or "openai/" tried without it too) -> their tier among the default three.
KNOWN_TIERS: dict[str, str] = {
    # economy: small, fast, cents per million tokens
    "gpt-4o-mini": "economy",
    "gpt-4.1-mini": "economy",
    "gpt-4.1-nano": "economy",
    "gpt-5-mini": "economy",
    "gpt-5-nano": "economy",
    "gpt-3.5-turbo": "economy",
    "claude-3-haiku": "economy",
    "claude-3-5-haiku": "economy",
    "claude-haiku": "economy",
    "gemini-1.5-flash": "economy",
    "gemini-2.0-flash": "economy",
    "gemini-2.5-flash": "economy",
    "mistral-small": "economy",
    "ministral": "economy",
    "open-mistral-nemo": "economy",
    "llama-3.1-8b": "economy",
    "llama-3.2": "economy",
    "llama3.1:8b": "economy",
    "qwen2.5-7b": "economy",
    # balanced: capable general models
    "gpt-4o": "balanced",
    "gpt-4.1": "balanced",
    "o3-mini": "balanced",
    "o4-mini": "balanced",
    "claude-3-5-sonnet": "balanced",
    "claude-3-7-sonnet": "balanced",
    "claude-sonnet": "balanced",
    "gemini-1.5-pro": "balanced",
    "gemini-2.5-pro": "balanced",
    "mistral-large": "balanced",
    "llama-3.1-70b": "balanced",
    "llama-3.3-70b": "balanced",
    "deepseek-chat": "balanced",
    "qwen2.5-72b": "balanced",
    # flagship: the strongest reasoning models
    "o1": "flagship",
    "o3": "flagship",
    "gpt-4.5": "flagship",
    "gpt-5": "flagship",
    "claude-opus": "flagship",
    "claude-3-opus": "flagship",
    "deepseek-reasoner": "flagship",
    "llama-3.1-405b": "flagship",
}


def known_tier(model: str) -> str | None:
    """The shipped tier of a provider model name, or None for a name the table does not know."""
    names = [model]
    for sep in ("/", "."):
        if sep in model:
            head, _, tail = model.partition(sep)
            if tail and not head[-1:].isdigit():  # "anthropic.claude..." but not "gpt-4.1"
                names.append(tail)
    for name in names:
        best = None
        for prefix, tier in KNOWN_TIERS.items():
            whole = name.startswith(prefix) and (len(name) == len(prefix) or not name[len(prefix)].isalnum())
            if whole and (best is None or len(prefix) > len(best[0])):
                best = (prefix, tier)
        if best is not None:
            return best[1]
    return None


def default_complexity(tier: str, tiers: Sequence[str]) -> tuple[float, float]:
    """The complexity a tier serves when its groups declare none: the n-th of n tiers up to n/n."""
    position = tiers.index(tier)
    return (0.0, round((position + 1) / len(tiers), 4))


def tier_for(complexity: float, tiers: Sequence[str]) -> str:
    """The lowest tier whose default range covers `complexity` (what the bench calls a classifier's tier)."""
    for tier in tiers:
        if complexity <= default_complexity(tier, tiers)[1]:
            return tier
    return tiers[-1]


@dataclass(frozen=True, slots=True)
class Capability:
    """A model group's place among the tiers and what it serves well."""

    tier: str
    rank: int  # the tier's position, cheapest first
    tasks: frozenset[str]
    low: float
    high: float

    def covers(self, task: str, complexity: float) -> bool:
        return task in self.tasks and complexity <= self.high


def capability(
    tier: str | None,
    tasks: Sequence[str] | None,
    complexity: tuple[float, float] | None,
    models: Sequence[str],
    tiers: Sequence[str],
) -> Capability | None:
    """The effective capability of a group: what it declares, else the defaults of its first deployment's
    well-known model name. None when neither gives a tier (the configuration check says so)."""
    if tier is None:
        for model in models:
            tier = known_tier(model)
            if tier is not None:
                break
    if tier is None or tier not in tiers:
        return None
    low, high = complexity if complexity is not None else default_complexity(tier, tiers)
    return Capability(tier, tiers.index(tier), frozenset(tasks if tasks is not None else TASK_TYPES), low, high)
