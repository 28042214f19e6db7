"""The semantic layer's index: the questions this instance knows, as L2-normalised vectors, grouped by
everything else that changes an answer (namespace, group, system prompt, earlier turns, parameters), searched
by brute force (one matrix product per lookup: a few milliseconds at 100k questions of 256 dimensions).

A lookup takes the best candidate above the threshold, then asks it to agree with the question's facts
(`guards`) and to beat the best candidate with other facts by the margin. The answers themselves live in the
answer store under their exact keys; the index only points at them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from sluicegate.cache.guards import Facts, disagreement, facts, normalized
from sluicegate.canonical import ChatRequest

Verdict = Literal["hit", "miss", "near-miss"]
PLACEHOLDER = "\x00question"  # the last user turn's place in the request hashed as its context


def question_of(request: ChatRequest, max_chars: int) -> str | None:
    """The last user turn's text, when the request ends with one made of text alone."""
    messages = request.messages
    if not messages or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, list):
        if any(part.get("type") != "text" for part in content):
            return None  # an image or a file: its meaning is not in the text
        content = "\n".join(str(part.get("text") or "") for part in content)
    if not isinstance(content, str) or not content.strip() or len(content) > max_chars:
        return None
    return content


def context_messages(request: ChatRequest) -> list[Any]:
    """Every message, the last user turn's text replaced by a placeholder: what must be identical."""
    last = dict(request.messages[-1])
    last["content"] = PLACEHOLDER
    return [*request.messages[:-1], last]


COARSE_DIMENSIONS = 64  # a large bucket is searched on these first dimensions, then its best rows in full
COARSE_FROM = 8_192  # rows: below this, one full product is as fast
COARSE_CANDIDATES = 64
CANDIDATES = 8  # rows above the threshold a lookup asks to agree with the question, best first
TIE = 0.01  # ... among those as close as the best: the same words in another order embed alike


@dataclass(slots=True)
class _Bucket:
    vectors: np.ndarray  # (capacity, d), the first `count` rows in use
    coarse: np.ndarray  # (capacity, COARSE_DIMENSIONS): the same rows' first dimensions, contiguous
    count: int = 0
    keys: list[str] = field(default_factory=list)  # the answer's store key, per row
    facts: list[Facts] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Match:
    verdict: Verdict
    key: str | None = None  # the answer's store key, on a hit
    similarity: float = 0.0
    reason: str | None = None  # on a near-miss: what the candidate disagreed on


def _grown(array: np.ndarray, rows: int) -> np.ndarray:
    grown = np.empty((rows * 2, array.shape[1]), dtype=np.float32)
    grown[:rows] = array[:rows]
    return grown


class SemanticIndex:
    """At most `max_entries` questions (the oldest go first), in buckets of identical context."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._buckets: dict[str, _Bucket] = {}
        self._order: OrderedDict[str, str] = OrderedDict()  # answer key -> its bucket, oldest first
        self.dimensions: int | None = None

    def __len__(self) -> int:
        return len(self._order)

    def add(self, bucket: str, key: str, vector: np.ndarray, question: Facts) -> None:
        if key in self._order:
            return
        if self.dimensions is None:
            self.dimensions = int(vector.shape[0])
        elif vector.shape[0] != self.dimensions:
            return  # another model's vector: never comparable
        found = self._buckets.get(bucket)
        if found is None:
            dims = vector.shape[0]
            found = self._buckets[bucket] = _Bucket(
                np.empty((16, dims), dtype=np.float32), np.empty((16, min(dims, COARSE_DIMENSIONS)), dtype=np.float32)
            )
        if found.count == found.vectors.shape[0]:
            found.vectors = _grown(found.vectors, found.count)
            found.coarse = _grown(found.coarse, found.count)
        found.vectors[found.count] = vector
        found.coarse[found.count] = vector[: found.coarse.shape[1]]
        found.count += 1
        found.keys.append(key)
        found.facts.append(question)
        self._order[key] = bucket
        while len(self._order) > self.max_entries:
            self.remove(next(iter(self._order)))

    def remove(self, key: str) -> None:
        bucket_name = self._order.pop(key, None)
        if bucket_name is None:
            return
        bucket = self._buckets[bucket_name]
        row = bucket.keys.index(key)
        last = bucket.count - 1
        if row != last:  # the last row takes its place
            bucket.vectors[row] = bucket.vectors[last]
            bucket.coarse[row] = bucket.coarse[last]
            bucket.keys[row] = bucket.keys[last]
            bucket.facts[row] = bucket.facts[last]
        bucket.keys.pop()
        bucket.facts.pop()
        bucket.count = last
        if not last:
            del self._buckets[bucket_name]

    def clear(self) -> None:
        self._buckets.clear()
        self._order.clear()

    def search(self, bucket: str, vector: np.ndarray, question: Facts, threshold: float, margin: float) -> Match:
        found = self._buckets.get(bucket)
        if found is None or vector.shape[0] != found.vectors.shape[1]:
            return Match("miss")
        rows: np.ndarray | None = None
        if found.count >= COARSE_FROM:
            # a first pass on the leading dimensions (a quarter of the memory to read), then the best rows in
            # full: these models put most of a vector's meaning first
            width = found.coarse.shape[1]
            rough = found.coarse[: found.count] @ vector[:width]
            rows = np.argpartition(-rough, COARSE_CANDIDATES)[:COARSE_CANDIDATES]
            scores = found.vectors[rows] @ vector
        else:
            scores = found.vectors[: found.count] @ vector
        top = int(np.argmax(scores))
        similarity = float(scores[top])
        if similarity < threshold:
            return Match("miss", similarity=similarity)
        # The candidates as close as the best, best first: the first that agrees with the question's facts is
        # the answer ("10 km to miles" and "10 miles to km" embed alike: either may come first). It must beat
        # every closer or nearly as close candidate with other facts by the margin.
        count = min(CANDIDATES, scores.shape[0])
        order = np.argpartition(-scores, count - 1)[:count] if count < scores.shape[0] else np.arange(count)
        order = order[np.argsort(-scores[order])]
        refused: list[tuple[float, str]] = []
        for position in order:
            score = float(scores[position])
            if score < threshold or score < similarity - TIE:
                break
            row = int(rows[position]) if rows is not None else int(position)
            reason = disagreement(question, found.facts[row])
            if reason is not None:
                refused.append((score, reason))
                continue
            if margin > 0 and any(other > score - margin for other, _ in refused):
                return Match("near-miss", similarity=score, reason="margin")
            if margin > 0:
                for later in order[list(order).index(position) + 1 :]:
                    other = float(scores[later])
                    if other < score - margin:
                        break
                    later_row = int(rows[later]) if rows is not None else int(later)
                    if disagreement(found.facts[row], found.facts[later_row]) is not None:
                        return Match("near-miss", similarity=score, reason="margin")
            return Match("hit", found.keys[row], score)
        return Match("near-miss", similarity=refused[0][0], reason=refused[0][1])


class Vectors(Protocol):
    async def embed(self, texts: Sequence[str]) -> Any: ...


@dataclass(frozen=True, slots=True)
class Question:
    """A request's question as the semantic layer sees it: where its neighbours are and what it says."""

    bucket: str  # namespace and the hash of everything but the question
    text: str
    facts: Facts
    vector: np.ndarray | None = None


class SemanticLayer:
    """The lookup by meaning: the question's embedding (from the model host, with a deadline; a late or
    missing one is a plain miss) searched in this instance's index. With a shared store, every instance
    publishes the questions it keeps and follows the others' (`follow`)."""

    def __init__(self, vectors: Vectors, max_entries: int, max_chars: int) -> None:
        self.vectors = vectors
        self.index = SemanticIndex(max_entries)
        self.max_chars = max_chars

    def question(self, request: ChatRequest, namespace: str, context_digest: str) -> Question | None:
        text = question_of(request, self.max_chars)
        if text is None:
            return None
        return Question(f"{namespace}|{context_digest}", text, facts(text))

    async def embed(self, question: Question) -> Question | None:
        found = await self.vectors.embed([normalized(question.text)])
        if found is None or len(found) != 1:
            return None
        return Question(question.bucket, question.text, question.facts, np.asarray(found[0], dtype=np.float32))

    def search(self, question: Question, threshold: float, margin: float) -> Match:
        assert question.vector is not None
        return self.index.search(question.bucket, question.vector, question.facts, threshold, margin)

    def keep(self, question: Question, key: str) -> None:
        if question.vector is not None:
            self.index.add(question.bucket, key, question.vector, question.facts)

    def keep_shared(self, bucket: str, key: str, vector: bytes, text: str) -> None:
        """A question another instance kept (its facts are read again here: the same text, the same facts)."""
        array = np.frombuffer(vector, dtype="<f4")
        self.index.add(bucket, key, array.astype(np.float32, copy=False), facts(text))
