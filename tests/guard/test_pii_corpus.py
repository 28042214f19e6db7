"""The PII detector on the held-out part of the labelled corpus (tests/data/pii/): structured PII recall
at least 99% and precision at least 98% overall, no kind far behind, and the hard negatives (order numbers,
versions, timestamps, hashes, UUIDs, digits failing Luhn, ...) left alone."""

from __future__ import annotations

from sluicegate.guard import pii
from tests.guard.pii_corpus import load, score, total


def test_held_out_recall_and_precision_meet_the_targets() -> None:
    items = load("held_out")
    scores = score(items, pii.scan)
    overall = total(scores)
    assert overall.found + overall.missed >= 500, "the held-out part has enough values to measure"
    assert overall.recall >= 0.99, [m for s in scores.values() for m in s.misses]
    assert overall.precision >= 0.98, [m for s in scores.values() for m in s.false]
    assert set(scores) == set(pii.CATEGORIES)
    for category, s in scores.items():
        assert s.recall >= 0.97 and s.precision >= 0.97, (category, s.misses, s.false)


def test_hard_negatives_give_no_finding() -> None:
    negatives = [item for item in load("all") if item.kind == "negative"]
    assert len(negatives) >= 1000
    flagged = [(item.text, [item.text[f.start : f.end] for f in pii.scan(item.text)]) for item in negatives]
    flagged = [(text, found) for text, found in flagged if found]
    assert len(flagged) <= len(negatives) // 200, flagged  # at most 0.5%
