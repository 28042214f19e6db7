"""A simulated model's extended thinking: the thoughts it plans, their signature, and the check of signed
thoughts sent back on later turns (as Anthropic checks them, so a client or gateway that alters or drops
them is caught)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from sluicegate.providers.simulator.seeded import seeded_rng
from sluicegate.providers.simulator.text import Corpus

# The prompt text Anthropic documents for testing redacted thinking: the reply then has a redacted block.
REDACTED_TRIGGER = "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"
REDACTED_TOKENS = 12  # what a redacted block counts as output


@dataclass(frozen=True, slots=True)
class ThinkingPlan:
    pieces: list[str]  # one token each
    signature: str
    redacted: str | None  # the data of a redacted block that follows the thoughts, when the prompt asks

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tokens(self) -> int:
        return len(self.pieces) + (REDACTED_TOKENS if self.redacted else 0)


def sign(seed: int, text: str) -> str:
    return base64.b64encode(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=48).digest()).decode()


def _redacted_data(seed: int, digest: bytes) -> str:
    return base64.b64encode(b"sim-redacted:" + hashlib.blake2b(digest + str(seed).encode()).digest()).decode()


def plan_thinking(seed: int, model: str, digest: bytes, corpus: Corpus, budget: int, prompt: str) -> ThinkingPlan:
    """Thoughts of 8 to 24 tokens (never more than the budget), drawn from their own generator so that the
    answer after them is the one the same request gets without thinking."""
    rng = seeded_rng(seed, model, digest, "thinking")
    pieces = corpus.reply(rng, min(rng.randint(8, 24), budget))
    text = "".join(pieces)
    redacted = _redacted_data(seed, digest) if REDACTED_TRIGGER in prompt else None
    return ThinkingPlan(pieces, sign(seed, text), redacted)


def bad_signature(seed: int, messages: list[dict[str, Any]]) -> str | None:
    """Where a thinking block sent back does not carry the signature its text was given, or None."""
    for i, message in enumerate(messages):
        for j, block in enumerate(message.get("thinking_blocks") or ()):
            if block.get("type") == "thinking" and block.get("signature") != sign(seed, block.get("thinking", "")):
                return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
            if block.get("type") == "redacted_thinking" and not str(block.get("data", "")).startswith(
                "c2ltLXJlZGFjdGVk"
            ):
                return f"messages.{i}.content.{j}: Invalid `data` in `redacted_thinking` block"
    return None


def missing_thoughts(messages: list[dict[str, Any]]) -> str | None:
    """With thinking on, the assistant turn whose tool calls are being answered must bring its thoughts back
    (Anthropic's rule: the turn must start with a thinking block)."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.get("role") == "tool":
            continue
        if message.get("role") == "assistant" and message.get("tool_calls") and not message.get("thinking_blocks"):
            return (
                f"messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. "
                "When `thinking` is enabled, a final `assistant` message must start with a thinking block."
            )
        return None
    return None
