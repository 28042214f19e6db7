"""What a classifier says about a chat request, and the one interface both classifiers share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Latency = Literal["interactive", "normal", "relaxed"]
LONG_CONTEXT_TOKENS = 32_000  # a prompt above this (estimated) needs a long-context model


@dataclass(frozen=True, slots=True)
class Prompt:
    """The parts of a chat request a classifier reads."""

    messages: Sequence[Mapping[str, Any]]
    tools: bool = False  # the request offers tools (or functions)
    stream: bool = False
    max_latency_ms: float | None = None  # x-sluice-max-latency-ms
    priority: int = 1  # 0 low, 1 normal, 2 high, 3 critical
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    task: str  # one of `config.TASK_TYPES`
    complexity: float  # 0..1
    confidence: float  # 0..1
    output_tokens: int  # expected
    latency: Latency  # how long the client is willing to wait
    needs: frozenset[str]  # read from the request itself: tools, vision, long_context
    by: str  # heuristic | learned

    def header(self) -> str:
        """`x-sluice-classification`: task=code; complexity=0.72; confidence=0.81; by=heuristic"""
        return f"task={self.task}; complexity={self.complexity:.2f}; confidence={self.confidence:.2f}; by={self.by}"


class Classifier(Protocol):
    name: str

    async def classify(self, prompt: Prompt) -> Classification: ...


def latency_tolerance(prompt: Prompt) -> Latency:
    """Streaming, a latency bound of a few seconds or a high priority: interactive; low priority: relaxed."""
    if prompt.stream or prompt.priority >= 2 or (prompt.max_latency_ms is not None and prompt.max_latency_ms <= 5000):
        return "interactive"
    if prompt.priority <= 0:
        return "relaxed"
    return "normal"
