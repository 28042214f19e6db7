"""Prompt counting before the call: exact for OpenAI families (o200k and cl100k ship verified), an
estimate that errs high for the rest."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import resources

from sluicegate.tokens import TokenCounter, cl100k, count_chat_prompt, exact_encoding, o200k

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Café prices in Zürich?"}]


def test_o200k_ships_as_the_published_file() -> None:
    data = (resources.files("sluicegate") / "data" / "o200k_base.tiktoken").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
    assert o200k().encode("hello world") == [24912, 2375]
    assert o200k().n_vocab == 200019


def test_model_families_pick_their_encoding() -> None:
    assert exact_encoding("gpt-4o-mini") is o200k()
    assert exact_encoding("openai/gpt-4.1-nano") is o200k()
    assert exact_encoding("o3-mini") is o200k()
    assert exact_encoding("gpt-4-turbo") is cl100k()
    assert exact_encoding("gpt-3.5-turbo") is cl100k()
    assert exact_encoding("claude-3-5-sonnet") is None


def test_other_families_are_estimated_high_by_the_margin() -> None:
    base = count_chat_prompt(MESSAGES)
    estimate = TokenCounter(margin=0.15).count_prompt(["claude-3-5-haiku"], MESSAGES)
    assert not estimate.exact and estimate.tokens >= base * 1.15
    exact = TokenCounter().count_prompt(["gpt-4o"], MESSAGES)
    assert exact.exact and exact.tokens == count_chat_prompt(MESSAGES, o200k())


def test_a_mixed_group_counts_its_highest() -> None:
    counted = TokenCounter().count_prompt(["gpt-4o", "gpt-4", "llama-3-70b"], MESSAGES)
    assert counted.tokens == max(
        count_chat_prompt(MESSAGES, o200k()), count_chat_prompt(MESSAGES), -(-count_chat_prompt(MESSAGES) * 115 // 100)
    )


def test_images_are_not_free() -> None:
    with_image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:..."}}]}]
    assert count_chat_prompt(with_image) > 1000


def test_an_encoding_loads_only_when_a_model_of_its_family_is_counted() -> None:
    """Each encoding costs tens of MB: a gateway serving only non-OpenAI or only gpt-4o models must not
    pay for both (a fresh process, since this one may have loaded them already)."""
    script = (
        "from sluicegate.tokens import TokenCounter, cl100k, o200k\n"
        "counter = TokenCounter()\n"
        "counter.count_prompt(['gpt-4o-mini'], [{'role': 'user', 'content': 'hi'}])\n"
        "counter.count_output('gpt-4o-mini', 'hello there')\n"
        "print(o200k.cache_info().currsize, cl100k.cache_info().currsize)\n"
        "counter.count_prompt(['claude-3-5-haiku'], [{'role': 'user', 'content': 'hi'}])\n"
        "print(o200k.cache_info().currsize, cl100k.cache_info().currsize)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["1 0", "1 1"]
