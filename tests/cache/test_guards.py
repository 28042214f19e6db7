"""The facts a semantic candidate must agree on, one kind at a time (pure functions: no model), and the
paraphrase set as a whole against the bundled model at the default threshold."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import pytest

from sluicegate.cache.config import SemanticConfig
from sluicegate.cache.guards import disagreement, facts

DATA = Path(__file__).resolve().parent.parent / "data" / "paraphrases.jsonl"


@pytest.mark.parametrize(
    ("question", "candidate", "reason"),
    [
        ("Convert 10 miles to kilometers.", "Convert 12 miles to kilometers.", "quantities"),
        ("Convert 10 miles to kilometers.", "Convert 10 kilometers to miles.", "roles"),
        ("What is 100 degrees Fahrenheit in Celsius?", "What is 100 degrees Celsius in Fahrenheit?", "roles"),
        (
            "What is your refund policy for orders over $50?",
            "What is your refund policy for orders under $50?",
            "direction",
        ),
        ("Is Python faster than Java?", "Is Java faster than Python?", "roles"),
        (
            "How do I get from the airport to downtown Chicago?",
            "How do I get from downtown Chicago to the airport?",
            "route",
        ),
        ("What foods should I avoid during pregnancy?", "What foods should I eat during pregnancy?", "negated"),
        ("Can I take ibuprofen with paracetamol?", "Can't I take ibuprofen with paracetamol?", "negated"),
        ("What is the capital of France?", "What is the capital of Spain?", "entities"),
        ("When did World War II end?", "When did World War I end?", "entities"),
        ("Who won the FIFA World Cup in 2018?", "Who won the FIFA World Cup in 2022?", "quantities"),
        ("When is Thanksgiving in 2025?", "When is Thanksgiving in November?", "quantities"),
        ("How do I reverse a list in Python?", "How do I reverse a list in Ruby?", "programming"),
        ("How do I make an HTTP request in Go?", "How do I make an HTTP request in Rust?", "programming"),
        ("What is the capital of France?", "¿Cuál es la capital de Francia?", "entities"),
        ("How do I reset my password?", "¿Cómo restablezco mi contraseña?", "language"),
        ("How do I enable two-factor authentication?", "How do I disable two-factor authentication?", "contrast"),
        (
            "How do I convert a string to an integer in Java?",
            "How do I convert an integer to a string in Java?",
            "roles",
        ),
        ("What is 12 times 13?", "What is 12 plus 13?", "operators"),
        (
            "Who was the first president of the United States?",
            "Who was the second president of the United States?",
            "quantities",
        ),
    ],
)
def test_a_candidate_that_differs_on_a_fact_is_refused(question: str, candidate: str, reason: str) -> None:
    assert disagreement(facts(question), facts(candidate)) == reason


@pytest.mark.parametrize(
    ("question", "candidate"),
    [
        ("Convert 10 miles to kilometers.", "How many kilometers is 10 miles?"),
        ("What is your refund policy for orders over $50?", "How do refunds work for orders over 50 dollars?"),
        ("What is the capital of France?", "What's France's capital?"),
        ("Is Python faster than Java?", "Is Python quicker than Java?"),
        ("What is the derivative of x squared?", "What's the derivative of x^2?"),
        ("How do I make an HTTP request in Go?", "How can I send an HTTP request in Golang?"),
        ("What is 100 degrees Fahrenheit in Celsius?", "Convert 100 °F to Celsius."),
        ("Who was the first president of the United States?", "Who served as the first US president?"),
        ("Tokyo is in which time zone?", "What time zone is Tokyo in?"),
    ],
)
def test_a_paraphrase_agrees_on_every_fact(question: str, candidate: str) -> None:
    assert disagreement(facts(question), facts(candidate)) is None


def test_the_paraphrase_set_is_large_and_varied() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    assert len(rows) >= 150 and len({r["d"] for r in rows}) >= 20
    assert all(len(r["p"]) >= 3 and len(r["n"]) >= 1 for r in rows)


@pytest.mark.skipif(find_spec("wordllama") is None, reason="needs the local-models extra")
def test_at_the_default_threshold_paraphrases_hit_and_near_misses_do_not() -> None:
    import sys

    sys.path.insert(0, str(DATA.parent.parent.parent / "bench"))
    from cache import quality  # bench/cache.py: the same sweep it prints

    (sweep,) = quality([SemanticConfig().threshold], 0.0, DATA)
    assert sweep.paraphrase_hits / sweep.paraphrases >= 0.55, sweep.row()
    assert sweep.false_hits / sweep.hits <= 0.02, sweep.row()
