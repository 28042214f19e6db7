"""The firewall's rules as data: the schema of a rule file, the files shipped with the package, and how a
configuration adds, disables and re-scores rules. Everything is validated strictly (unknown keys refused,
every pattern compiled) before a gateway starts."""

from __future__ import annotations

import re
from functools import cached_property
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RULE_ID = r"^[a-z0-9][a-z0-9_.-]{1,63}$"
CATEGORY = r"^[a-z][a-z0-9_]{1,31}$"
SHIPPED = ("firewall.yaml",)  # the rule files in sluicegate/guard/rules/, loaded in this order


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _joined(pattern: str) -> str:
    """A pattern written over several lines (a YAML block) is one line: each line's indentation and the
    line breaks are not part of it."""
    return "".join(line.strip() for line in pattern.splitlines()) if "\n" in pattern else pattern


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"the pattern does not compile: {exc}") from None
    return pattern


class Rule(_Strict):
    """One pattern check. It runs on the lower-cased text, and only when one of its triggers (lower-case
    literal substrings) occurs there: the triggers are the prefilter, the pattern decides."""

    id: str = Field(pattern=RULE_ID)
    category: str = Field(pattern=CATEGORY)
    score: float = Field(ge=0, le=1)
    triggers: list[str] = Field(min_length=1)
    pattern: str = Field(min_length=1)
    where: Literal["any", "user", "tool"] = "any"  # tool: tool results and pasted documents only
    description: str = ""

    @field_validator("triggers")
    @classmethod
    def _lower(cls, triggers: list[str]) -> list[str]:
        for trigger in triggers:
            if not trigger or trigger != trigger.lower():
                raise ValueError(f"trigger {trigger!r} must be non-empty and lower-case (the text is lower-cased)")
        return triggers

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        return _compiles(_joined(pattern))


class Cooccurrence(_Strict):
    """Words of every group within `within` characters of each other (in any order): a check for what is
    said in too many wordings for one pattern ("scratch whatever guidance you got earlier"). The words are
    lower-case literal substrings, found in the same pass as the triggers."""

    id: str = Field(pattern=RULE_ID)
    category: str = Field(pattern=CATEGORY)
    score: float = Field(ge=0, le=1)
    within: int = Field(120, ge=10, le=1000)
    groups: list[list[str]] = Field(min_length=1, max_length=6)
    # the group the one pass looks for (the rarest words); the others are looked for around its words only
    anchor: int = Field(0, ge=0)
    description: str = ""

    @model_validator(mode="after")
    def _anchor(self) -> Cooccurrence:
        if self.anchor >= len(self.groups):
            raise ValueError(f"anchor {self.anchor}: there are {len(self.groups)} groups")
        return self

    @field_validator("groups")
    @classmethod
    def _words(cls, groups: list[list[str]]) -> list[list[str]]:
        for group in groups:
            if not group:
                raise ValueError("a group needs at least one word")
            for word in group:
                if not word or word != word.lower():
                    raise ValueError(f"word {word!r} must be non-empty and lower-case (the text is lower-cased)")
        return groups


class Discount(_Strict):
    """Context that makes a match a mention rather than an attack (a quotation, reported speech): found
    within `window` characters before the match (quotes: on both sides), it scales the score down."""

    id: str = Field(pattern=RULE_ID)
    pattern: str = Field(min_length=1)
    window: int = Field(ge=1, le=400)

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, pattern: str) -> str:
        return _compiles(pattern)


class Thresholds(_Strict):
    many_shot_turns: int = Field(8, ge=2)
    repetition_min_chars: int = Field(1500, ge=100)
    repetition_unique_ratio: float = Field(0.08, gt=0, lt=1)
    padding_distinct_chars: int = Field(6, ge=1)
    padding_min_chars: int = Field(1000, ge=100)
    max_n: int = Field(16, ge=1)
    max_tokens: int = Field(200_000, ge=1)
    max_tools: int = Field(128, ge=1)
    max_tools_bytes: int = Field(65_536, ge=1024)
    decode_min_chars: int = Field(16, ge=8)
    quote_factor: float = Field(0.6, ge=0, le=1)


class ThresholdChanges(_Strict):
    """Thresholds a configuration changes (the others keep the shipped values)."""

    many_shot_turns: int | None = Field(None, ge=2)
    repetition_min_chars: int | None = Field(None, ge=100)
    repetition_unique_ratio: float | None = Field(None, gt=0, lt=1)
    padding_distinct_chars: int | None = Field(None, ge=1)
    padding_min_chars: int | None = Field(None, ge=100)
    max_n: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    max_tools: int | None = Field(None, ge=1)
    max_tools_bytes: int | None = Field(None, ge=1024)
    decode_min_chars: int | None = Field(None, ge=8)
    quote_factor: float | None = Field(None, ge=0, le=1)


class RuleFile(_Strict):
    version: int = Field(ge=1)
    name: str = Field(min_length=1, max_length=64)
    rules: list[Rule] = Field(default_factory=list)
    cooccurrence: list[Cooccurrence] = Field(default_factory=list)
    thresholds: ThresholdChanges = ThresholdChanges()
    discounts: list[Discount] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RuleFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule '{rule.id}' is defined twice")
            seen.add(rule.id)
        return self


class RuleChange(_Strict):
    """A shipped rule re-scored, re-targeted or switched off from the configuration."""

    score: float | None = Field(None, ge=0, le=1)
    category: str | None = Field(None, pattern=CATEGORY)
    enabled: bool = True


class RulesConfig(_Strict):
    """`guardrails.rules` in the configuration: more rule files, rules written inline, changes to shipped
    rules (by id) and thresholds."""

    files: list[str] = Field(default_factory=list)
    add: list[Rule] = Field(default_factory=list)
    change: dict[str, RuleChange] = Field(default_factory=dict)
    thresholds: ThresholdChanges = ThresholdChanges()


class RuleSet(_Strict):
    """The rules in force: shipped files, then the configuration's files and additions, then its changes."""

    rules: tuple[Rule, ...]
    cooccurrence: tuple[Cooccurrence, ...]
    discounts: tuple[Discount, ...]
    thresholds: Thresholds
    versions: tuple[str, ...]  # "name@version" of every file, for `firewall test` and the docs

    @cached_property
    def by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


def read_rule_file(text: str, source: str) -> RuleFile:
    """A rule file parsed and validated; `ValueError` names the source and what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    try:
        return RuleFile.model_validate(data)
    except Exception as exc:
        raise ValueError(f"{source}: {exc}") from None


def shipped_files() -> list[RuleFile]:
    folder = resources.files("sluicegate.guard") / "rules"
    return [read_rule_file((folder / name).read_text(encoding="utf-8"), name) for name in SHIPPED]


def rule_set(config: RulesConfig | None = None) -> RuleSet:
    """The shipped rules with the configuration's additions and changes applied."""
    files = shipped_files()
    if config is not None:
        for path in config.files:
            with open(path, encoding="utf-8") as handle:
                files.append(read_rule_file(handle.read(), path))
    rules: dict[str, Rule] = {}
    discounts: dict[str, Discount] = {}
    thresholds = Thresholds().model_dump()
    changes = [f.thresholds for f in files] + ([config.thresholds] if config is not None else [])
    cooccurrence: dict[str, Cooccurrence] = {}
    for file in files:
        for co in file.cooccurrence:
            cooccurrence[co.id] = co
        for rule in file.rules:
            rules[rule.id] = rule  # a later file's rule of the same id replaces the earlier one
        for discount in file.discounts:
            discounts[discount.id] = discount
    for change in changes:
        thresholds.update({k: v for k, v in change.model_dump().items() if v is not None})
    if config is not None:
        for rule in config.add:
            rules[rule.id] = rule
        for rule_id, rule_change in config.change.items():
            table: dict[str, Any] = rules if rule_id in rules else cooccurrence
            if rule_id not in table:
                raise ValueError(f"guardrails.rules.change: no rule '{rule_id}' to change")
            if not rule_change.enabled:
                del table[rule_id]
                continue
            update = {
                k: v for k, v in (("score", rule_change.score), ("category", rule_change.category)) if v is not None
            }
            table[rule_id] = table[rule_id].model_copy(update=update)
    return RuleSet(
        rules=tuple(rules.values()),
        cooccurrence=tuple(cooccurrence.values()),
        discounts=tuple(discounts.values()),
        thresholds=Thresholds(**thresholds),
        versions=tuple(f"{f.name}@{f.version}" for f in files),
    )
