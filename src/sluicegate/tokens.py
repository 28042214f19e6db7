"""Token counting with real BPE encodings shipped as package data (never fetched at run time).

OpenAI families are counted exactly (cl100k_base, o200k_base); other families are estimated with
cl100k_base plus a safety margin, so that a reservation errs high.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import tiktoken
from tiktoken.load import load_tiktoken_bpe

_CL100K_HASH = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|"""
    r"""\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

_O200K_HASH = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_O200K_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}

# Provider model names (after any "provider/" prefix) -> encoding, longest prefix first. From OpenAI's
# published model-to-encoding table.
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "chatgpt-4o", "o1", "o3", "o4", "ft:gpt-4o")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada-002", "ft:gpt-4")

# An image part's tokens are not in its text; this bounds a high-detail image of OpenAI's largest tiling.
IMAGE_PART_TOKENS = 1_600

# OpenAI's documented chat framing: every message costs 3 tokens beyond its content, a `name` one
# more, and every reply is primed with 3 tokens.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


def _encoding(name: str, pattern: str, special: dict[str, int], expected_hash: str) -> tiktoken.Encoding:
    """An encoding from the BPE file shipped inside the package, hash-checked. Its merge ranks then live
    only in tiktoken's compiled core: the Python copy `Encoding` keeps for pickling (which the gateway
    never does) is dropped, a third of the encoding's memory (28 MB of o200k's 76)."""
    path = resources.files("sluicegate") / "data" / f"{name}.tiktoken"
    with resources.as_file(path) as local:
        ranks = load_tiktoken_bpe(str(local), expected_hash=expected_hash)
    encoding = tiktoken.Encoding(name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special)
    encoding._mergeable_ranks = {}
    return encoding


# Loaded on first use, once per process and shared by every caller: a gateway whose models are all of one
# family never loads the other encoding.
@functools.cache
def cl100k() -> tiktoken.Encoding:
    """The cl100k_base encoding (gpt-4, gpt-3.5, embeddings; the estimate for other families)."""
    return _encoding("cl100k_base", _CL100K_PATTERN, _CL100K_SPECIAL, _CL100K_HASH)


@functools.cache
def o200k() -> tiktoken.Encoding:
    """The o200k_base encoding (gpt-4o, gpt-4.1, o-series)."""
    return _encoding("o200k_base", _O200K_PATTERN, _O200K_SPECIAL, _O200K_HASH)


def exact_encoding(model: str) -> tiktoken.Encoding | None:
    """The encoding a provider model is billed in, when it is an OpenAI family; None otherwise."""
    name = model.rsplit("/", 1)[-1].lower()
    if name.startswith(_O200K_PREFIXES):
        return o200k()
    if name.startswith(_CL100K_PREFIXES):
        return cl100k()
    return None


@dataclass(frozen=True, slots=True)
class PromptCount:
    tokens: int
    exact: bool


class TokenCounter:
    """Counts a prompt before the call: exact for OpenAI families, cl100k plus `margin` for the rest."""

    def __init__(self, margin: float = 0.15) -> None:
        self.margin = margin

    def count_prompt(self, models: Sequence[str], messages: list[dict[str, Any]], extra_text: str = "") -> PromptCount:
        """The highest count over the deployments that may serve the request (routing is not yet done)."""
        best = PromptCount(0, True)
        seen: set[str] = set()
        for model in models:
            encoding = exact_encoding(model)
            name = encoding.name if encoding is not None else "estimate"
            if name in seen:
                continue
            seen.add(name)
            counted = count_chat_prompt(messages, encoding or cl100k())
            if extra_text:
                counted += len((encoding or cl100k()).encode_ordinary(extra_text))
            if encoding is None:
                counted = math.ceil(counted * (1 + self.margin))
            if counted > best.tokens or (counted == best.tokens and encoding is None):
                best = PromptCount(counted, encoding is not None)
        return best

    def count_output(self, model: str, text: str) -> int:
        """Output tokens of `text`, before any margin (apply `margin_for` to a running total)."""
        return len((exact_encoding(model) or cl100k()).encode_ordinary(text))

    def margin_for(self, model: str) -> float:
        return 0.0 if exact_encoding(model) is not None else self.margin


def count_text(text: str) -> int:
    return len(cl100k().encode_ordinary(text))


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _image_parts(content: Any) -> int:
    if isinstance(content, list):
        return sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    return 0


@functools.lru_cache(maxsize=64)
def _role_tokens(enc: tiktoken.Encoding, role: str) -> int:
    """A role's tokens, remembered: the same few roles are in every prompt."""
    return len(enc.encode_ordinary(role))


def count_chat_prompt(messages: list[dict[str, Any]], encoding: tiktoken.Encoding | None = None) -> int:
    """Prompt tokens of an OpenAI-shaped message list, framed as OpenAI counts them (cl100k by default)."""
    enc = encoding or cl100k()
    encode = enc.encode_ordinary
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += _role_tokens(enc, str(message.get("role", "")))
        content = message.get("content")
        if isinstance(content, str):
            total += len(encode(content))
        else:
            total += len(encode(_content_text(content))) + IMAGE_PART_TOKENS * _image_parts(content)
        if message.get("name"):
            total += TOKENS_PER_NAME + len(enc.encode_ordinary(str(message["name"])))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            total += len(enc.encode_ordinary(str(function.get("name", ""))))
            total += len(enc.encode_ordinary(str(function.get("arguments", ""))))
    return total
