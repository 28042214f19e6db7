"""The learned classifier: a small head over sentence embeddings from the model host, trained on the train
split of the labelled set (`tests/data/classify/train_head.py`), its weights shipped in the package.

The head reads the embedding of the request's instruction and the heuristic's own answer, and says which tier
the request needs. Its answer is used when the model host answered in time and the head is confident
(`classify.min_confidence`); otherwise the heuristic's answer stands (counted by reason).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import numpy as np

from sluicegate.classify.classification import Classification, Prompt
from sluicegate.classify.config import DEFAULT_TIERS, TASK_TYPES
from sluicegate.classify.heuristic import HeuristicClassifier, _instruction, _text

Embed = Callable[[Sequence[str]], Awaitable[Any]]  # -> float32 vectors (one row per text), or None
HEAD_FILE = "classify_head.npz"
FEATURES = 16  # heuristic features after the embedding


def instruction_of(prompt: Prompt) -> str:
    """The text the head embeds: the last user message's instruction (pasted material left out)."""
    for message in reversed(prompt.messages):
        if message.get("role") == "user":
            return _instruction(_text(message.get("content")))[0][:2000]
    return ""


def heuristic_features(c: Classification, text: str) -> np.ndarray:
    features = np.zeros(FEATURES, dtype=np.float32)
    features[0] = c.complexity
    features[1] = c.confidence
    features[2 + TASK_TYPES.index(c.task)] = 1.0
    features[14] = min(len(text), 2000) / 2000
    features[15] = 1.0  # bias
    return features


class Head:
    """Multinomial logistic regression: features -> probabilities of the default tiers."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights

    @classmethod
    def shipped(cls) -> Head:
        with resources.as_file(resources.files("sluicegate") / "data" / HEAD_FILE) as path:
            return cls(np.load(path)["weights"])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        z = features @ self.weights
        z = z - z.max(axis=-1, keepdims=True)
        e = np.exp(z)
        result: np.ndarray = e / e.sum(axis=-1, keepdims=True)
        return result


def decide(probabilities: np.ndarray) -> tuple[int, float]:
    """(tier index, confidence): the tier where the cumulative probability from the top first passes one half
    (a request goes up a tier when the head is unsure), and how sure the head is of it."""
    above = 0.0
    for index in range(len(probabilities) - 1, -1, -1):
        above += float(probabilities[index])
        if above >= 0.5:
            return index, float(probabilities[index])
    return 0, float(probabilities[0])


class LearnedClassifier:
    name = "learned"

    def __init__(
        self,
        embed: Embed,
        *,
        min_confidence: float = 0.8,
        head: Head | None = None,
        heuristic: HeuristicClassifier | None = None,
        fell_back: Callable[[str], None] | None = None,
    ) -> None:
        self._embed = embed
        self.min_confidence = min_confidence
        self._head = head or Head.shipped()
        self._heuristic = heuristic or HeuristicClassifier()
        self._fell_back = fell_back

    async def classify(self, prompt: Prompt) -> Classification:
        rules = self._heuristic.classify_now(prompt)
        text = instruction_of(prompt)
        vectors = await self._embed([text])
        if vectors is None:
            return self._fallback(rules, "unavailable")
        features = np.concatenate([np.asarray(vectors[0], dtype=np.float32), heuristic_features(rules, text)])
        index, confidence = decide(self._head.probabilities(features))
        if confidence < self.min_confidence:
            return self._fallback(rules, "not_confident")
        n = len(DEFAULT_TIERS)
        low, high = index / n, (index + 1) / n
        complexity = rules.complexity if low < rules.complexity <= high else (low + high) / 2
        return Classification(
            rules.task,
            round(complexity, 4),
            round(confidence, 4),
            rules.output_tokens,
            rules.latency,
            rules.needs,
            self.name,
        )

    def _fallback(self, rules: Classification, reason: str) -> Classification:
        if self._fell_back is not None:
            self._fell_back(reason)
        return rules


class LocalEncoder:
    """The model host's default local model, run in this process: for training and the bench, not serving."""

    def __init__(self, model: str = "l2_supercat", dimensions: int = 256) -> None:
        from sluicegate.models.worker import StaticEmbedder

        self._model = StaticEmbedder(model, dimensions, None)
        self.dimensions = dimensions

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        data = self._model.embed(list(texts))
        return np.frombuffer(data, dtype="<f4").reshape(len(texts), self.dimensions)

    async def embed_async(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed(texts)
