"""What a detector reports: one finding per match, the unit every guard check speaks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """One detector's match in one text.

    `category` is what an operator configures actions for ("injection", "jailbreak", "obfuscation",
    "token_bomb", "pii_email", "pii_card", "secret_aws_key", ...); `rule_id` names the rule that matched, so
    an operator can see why and tune it ("inj.override.en.001"); `score` is the detector's confidence, 0..1.
    `start`/`end` delimit the match in the scanned text when it has a position (what a redactor replaces);
    -1 when the finding is about the text as a whole (a repetition bomb, a classifier's verdict).
    """

    category: str
    rule_id: str
    score: float
    start: int = -1
    end: int = -1

    @property
    def positional(self) -> bool:
        return 0 <= self.start < self.end
