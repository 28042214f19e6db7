"""The components one simulator app owns and hands to its endpoint handlers."""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from sluicegate.providers.simulator.config import SimulatorConfig
from sluicegate.providers.simulator.faults import FaultBook
from sluicegate.providers.simulator.stats import SimulatorStats
from sluicegate.providers.simulator.text import Corpus
from sluicegate.tokens import count_chat_prompt


class IdSource:
    """Unique ids with OpenAI's prefixes: a random per-app part and a counter (cheap, never repeats)."""

    def __init__(self) -> None:
        self._instance = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def next(self, prefix: str) -> str:
        return f"{prefix}{self._instance}{next(self._counter):012x}"


class PromptTokenCounter:
    """`count_chat_prompt`, remembering recent prompts: benchmarks, retries and fallbacks resend them."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._counts: dict[bytes, int] = {}

    def count(self, digest: bytes, messages: list[dict[str, Any]]) -> int:
        """Prompt tokens of `messages`, whose content hashes to `digest`."""
        tokens = self._counts.get(digest)
        if tokens is None:
            tokens = count_chat_prompt(messages)
            if len(self._counts) >= self._capacity:
                del self._counts[next(iter(self._counts))]  # oldest first
            self._counts[digest] = tokens
        return tokens


def fingerprint_for(seed: int) -> str:
    return "fp_" + hashlib.blake2b(str(seed).encode(), digest_size=5).hexdigest()


@dataclass(slots=True)
class Runtime:
    config: SimulatorConfig
    faults: FaultBook
    corpus: Corpus
    stats: SimulatorStats = field(default_factory=SimulatorStats)
    ids: IdSource = field(default_factory=IdSource)
    prompt_tokens: PromptTokenCounter = field(default_factory=PromptTokenCounter)
    fingerprint: str = ""
