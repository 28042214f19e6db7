"""Deterministic reply text made of pieces that are each exactly one cl100k token.

Every word below is a single token with its leading space (" the", " The") and capitalised bare
("The"), and "." is one token; the encoder's pre-tokenizer never merges across a word boundary, so a
reply of N pieces is exactly N tokens and streams one token per chunk. `verify_vocabulary` checks the
pieces against the real encoding at start-up.
"""

from __future__ import annotations

import random

import tiktoken

VOCABULARY: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on",
    "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "they", "you",
    "were", "her", "she", "there", "been", "one", "all", "we", "their", "has", "would", "when", "if",
    "so", "no", "will", "can", "more", "other", "its", "into", "time", "only", "some", "could", "new",
    "them", "these", "than", "two", "may", "first", "then", "do", "any", "like", "my", "now", "over",
    "such", "our", "man", "me", "even", "most", "made", "after", "also", "did", "many", "before", "must",
    "through", "back", "years", "where", "much", "your", "way", "well", "down", "should", "because",
    "each", "just", "those", "people", "how", "too", "little", "state", "good", "very", "make", "world",
    "still", "own", "see", "men", "work", "long", "get", "here", "between", "both", "life", "being",
    "under", "never", "day", "same", "another", "know", "while", "last", "us", "great", "old", "year",
    "off", "come", "since", "against", "go", "right", "used", "take", "three", "states", "few", "house",
    "use", "during", "without", "again", "place", "around", "however", "home", "small", "found",
    "thought", "say", "part", "once", "general", "high", "upon", "school", "every", "does", "group",
    "country", "important", "until", "always", "often", "need", "system", "water", "public", "end",
    "open", "tell", "set", "side", "power", "program", "given", "large", "already", "hand", "later",
    "number", "point", "order", "form", "rather", "keep", "line", "city", "business", "early", "area",
    "data", "model", "answer", "river", "light", "music", "field", "story", "market", "simple",
    "design", "level", "clear",
)  # fmt: skip

FULL_STOP = "."
_SPACED = tuple(" " + word for word in VOCABULARY)
_OPENING = tuple(word.capitalize() for word in VOCABULARY)
_SPACED_OPENING = tuple(" " + word for word in _OPENING)
_SENTENCE_WORDS = (5, 14)
_CORPUS_PIECES = 1 << 15


def verify_vocabulary(encoding: tiktoken.Encoding) -> None:
    """Raise ValueError naming every piece that is not exactly one token in `encoding`."""
    pieces = (FULL_STOP, *_SPACED, *_OPENING, *_SPACED_OPENING)
    bad = [piece for piece in pieces if len(encoding.encode_ordinary(piece)) != 1]
    if bad:
        raise ValueError(f"simulator vocabulary pieces that are not a single token: {bad!r}")


class Corpus:
    """A long run of sentences written once from a seed; every reply is a slice of it.

    Slicing costs far less than drawing each word per request, and a seeded corpus keeps replies
    deterministic. Pieces are stored with their leading space; a reply drops the space of its first
    word ("The"), which is itself one token.
    """

    __slots__ = ("_pieces", "_starts")

    def __init__(self, seed: int, size: int = _CORPUS_PIECES) -> None:
        rng = random.Random(seed)
        pieces: list[str] = []
        starts: list[int] = []
        while len(pieces) < size:
            starts.append(len(pieces))
            pieces.append(rng.choice(_SPACED_OPENING))
            pieces.extend(rng.choices(_SPACED, k=rng.randint(*_SENTENCE_WORDS) - 1))
            pieces.append(FULL_STOP)
        self._pieces = tuple(pieces)
        self._starts = tuple(starts)

    def reply(self, rng: random.Random, count: int) -> list[str]:
        """`count` one-token pieces from a sentence start, ending on a full stop when it fits."""
        if count <= 0:
            return []
        start = self._starts[rng.randrange(len(self._starts))]
        pieces = list(self._pieces[start : start + count])
        while len(pieces) < count:  # wrap around: the corpus ends a sentence and starts another
            pieces.extend(self._pieces[: count - len(pieces)])
        pieces[0] = pieces[0][1:]
        if count > 2 and pieces[-1] != FULL_STOP:
            if pieces[-2] == FULL_STOP:  # cut just after a sentence opened: "... end. The" -> "... end the."
                pieces[-2] = pieces[-1].lower()  # (never "..": that would be a single token)
            pieces[-1] = FULL_STOP
        return pieces


def generate_word(rng: random.Random) -> str:
    """One vocabulary word, for filling string values."""
    return rng.choice(VOCABULARY)
