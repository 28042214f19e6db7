"""A `random.Random` that costs almost nothing to seed, for the generator each request gets.

Mersenne Twister seeding costs microseconds (it fills 624 words); a request needs only a few draws, so
this uses splitmix64: one 64-bit integer of state, and every `random.Random` method works on top.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import orjson

_MASK = (1 << 64) - 1
_TWO_TO_53 = float(1 << 53)


class SplitMix64(random.Random):
    def __init__(self, seed: int = 0) -> None:  # deliberately no super().__init__: no MT seeding
        self._state = seed & _MASK
        self.gauss_next = None

    def seed(self, a: Any = None, version: int = 2) -> None:
        self._state = (a if isinstance(a, int) else 0) & _MASK

    def _next64(self) -> int:
        self._state = state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & _MASK
        return z ^ (z >> 31)

    def getrandbits(self, k: int) -> int:
        if k <= 64:
            return self._next64() >> (64 - k)
        bits = 0
        for _ in range((k + 63) // 64):
            bits = (bits << 64) | self._next64()
        return bits >> (-k % 64)

    def random(self) -> float:
        return (self._next64() >> 11) / _TWO_TO_53


def content_digest(value: Any) -> bytes:
    """A short digest of JSON-able content; dict key order does not matter."""
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def seeded_rng(*key: Any) -> SplitMix64:
    """A generator determined by `key` (JSON-able values, or bytes such as a `content_digest`)."""
    parts = [part.hex() if isinstance(part, bytes) else part for part in key]
    return SplitMix64(int.from_bytes(content_digest(parts)[:8]))
