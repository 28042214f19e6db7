"""The `guardrails` section: the level for requests whose chain sets none, the named custom policies, and
the changes to the shipped firewall rules. Validated whole at start-up (every rule compiled)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sluicegate.guard.firewall_rules import RulesConfig, rule_set
from sluicegate.guard.policy import BUILT_IN, LEVEL_NAME, Levels, Policy

# The stages the `guardrails` section configures: listed in `pipeline.stages`, they are what turn it on.
GUARD_STAGES = ("firewall",)


class GuardrailsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The level of a request whose tenant, team and key set none (and of the master key): off, standard,
    # strict or a policy below. A level set anywhere along the chain replaces it.
    default_level: str = Field("off", pattern=LEVEL_NAME)
    policies: dict[str, Policy] = Field(default_factory=dict)
    rules: RulesConfig = RulesConfig()
    # A redacted request's answer gets the originals back in place of the placeholders (by the output_guard
    # stage, which must then be listed after the firewall); off, the client sees the placeholders.
    restore: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> GuardrailsConfig:
        for name in self.policies:
            if name in BUILT_IN:
                raise ValueError(f"policies: '{name}' is a built-in level and cannot be redefined")
            if not _valid_name(name):
                raise ValueError(f"policies: '{name}' is not a level name ({LEVEL_NAME})")
        levels = Levels(self.policies)
        if not levels.known(self.default_level):
            known = ", ".join(levels.names)
            raise ValueError(f"default_level: unknown level '{self.default_level}' (expected one of: {known})")
        rule_set(self.rules)  # every file read, every rule compiled: a broken rule stops the start
        return self

    @property
    def level_names(self) -> tuple[str, ...]:
        return (*BUILT_IN, *self.policies)


def _valid_name(name: str) -> bool:
    return re.match(LEVEL_NAME, name) is not None
