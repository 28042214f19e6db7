"""The labelled PII corpus (tests/data/pii/corpus.jsonl, made by generate.py beside it) and how the PII
detector scores on it: per category, what it found (recall) and how much of what it reported was right
(precision). Shared by the tests and bench/firewall_pii.py."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from sluicegate.guard.findings import Finding

CORPUS = Path(__file__).resolve().parent.parent / "data" / "pii" / "corpus.jsonl"
SLACK = 6  # a finding may run this many characters past the labelled value (a parenthesis, an extension)


@dataclass(frozen=True, slots=True)
class Item:
    kind: str
    region: str
    text: str
    spans: tuple[tuple[str, int, int], ...]
    split: str


@dataclass(slots=True)
class Score:
    found: int = 0
    missed: int = 0
    wrong: int = 0  # reported where no value of that category is
    misses: list[str] = field(default_factory=list)
    false: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / (self.found + self.missed) if self.found + self.missed else 1.0

    @property
    def precision(self) -> float:
        return self.found / (self.found + self.wrong) if self.found + self.wrong else 1.0


def load(split: str = "all") -> list[Item]:
    items = []
    for line in CORPUS.read_bytes().splitlines():
        raw = orjson.loads(line)
        if split == "all" or raw["split"] == split:
            spans = tuple((c, s, e) for c, s, e in raw["spans"])
            items.append(Item(raw["kind"], raw["region"], raw["text"], spans, raw["split"]))
    return items


def score(items: Iterable[Item], scan: Callable[[str], list[Finding]]) -> dict[str, Score]:
    scores: dict[str, Score] = defaultdict(Score)
    for item in items:
        findings = [f for f in scan(item.text) if f.positional]
        used: set[int] = set()
        for category, start, end in item.spans:
            hit = next(
                (
                    i
                    for i, f in enumerate(findings)
                    if f.category == category
                    and f.start <= start
                    and f.end >= end
                    and f.end - f.start <= end - start + SLACK
                ),
                None,
            )
            if hit is None:
                scores[category].missed += 1
                scores[category].misses.append(f"{item.region}: {item.text!r}")
            else:
                scores[category].found += 1
                used.add(hit)
        for i, f in enumerate(findings):
            if i not in used:
                scores[f.category].wrong += 1
                scores[f.category].false.append(f"{item.kind}: {item.text[f.start : f.end]!r} in {item.text!r}")
    return scores


def total(scores: dict[str, Score]) -> Score:
    all_ = Score()
    for s in scores.values():
        all_.found += s.found
        all_.missed += s.missed
        all_.wrong += s.wrong
    return all_
