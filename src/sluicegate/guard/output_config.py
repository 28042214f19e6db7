"""The `output_guard` section: what the output guard stage redacts in answers, whether it redacts requests
itself (when no firewall stage does), and what it does with an answer that should be JSON and is not."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CATEGORY = r"^(?:(?:pii|secret)_[a-z0-9_]*\*?|\*)$"


class OutputGuardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Categories redacted in answers, whole and streamed: names ("pii_card") or prefixes ending in "*"
    # ("pii_*"); an empty list redacts nothing (the stage then only restores and checks JSON).
    redact: list[str] = Field(default_factory=lambda: ["pii_*", "secret_*"])
    min_score: float = Field(0.5, ge=0, le=1)  # a finding scored below this is left in the answer
    # Redact the same categories in the client's messages before the provider sees them, for requests that
    # no firewall stage redacted; `restore` puts the originals back in the answer to the same request.
    redact_requests: bool = False
    restore: bool = False
    # When the request asked for JSON (response_format json_object or json_schema) and a whole answer does
    # not parse: "error" answers 502 `invalid_json_output` in the client's format instead; "retry" asks the
    # provider once more (both answers are billed) and answers that error if the second does not parse
    # either; "off" lets it through. (Streams are not checked: their chunks have left before the end shows
    # whether it parses.)
    json_check: Literal["off", "error", "retry"] = "off"

    @field_validator("redact")
    @classmethod
    def _categories(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.match(_CATEGORY, name):
                raise ValueError(
                    f"'{name}' is not a PII or secret category (pii_..., secret_...) or a prefix ending in '*'"
                )
        return names

    def redacts(self, category: str) -> bool:
        return any(name == category or (name.endswith("*") and category.startswith(name[:-1])) for name in self.redact)
