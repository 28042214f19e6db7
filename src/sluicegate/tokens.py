"""Token counting with real BPE encodings shipped as package data (never fetched at run time)."""

from __future__ import annotations

import functools
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

# OpenAI's documented chat framing: every message costs 3 tokens beyond its content, a `name` one
# more, and every reply is primed with 3 tokens.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


@functools.cache
def cl100k() -> tiktoken.Encoding:
    """The cl100k_base encoding, loaded from the copy shipped inside the package."""
    path = resources.files("sluicegate") / "data" / "cl100k_base.tiktoken"
    with resources.as_file(path) as local:
        ranks = load_tiktoken_bpe(str(local), expected_hash=_CL100K_HASH)
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=_CL100K_SPECIAL,
    )


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


def count_chat_prompt(messages: list[dict[str, Any]]) -> int:
    """Prompt tokens of an OpenAI-shaped message list, framed as OpenAI counts them."""
    enc = cl100k()
    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += len(enc.encode_ordinary(str(message.get("role", ""))))
        total += len(enc.encode_ordinary(_content_text(message.get("content"))))
        if message.get("name"):
            total += TOKENS_PER_NAME + len(enc.encode_ordinary(str(message["name"])))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            total += len(enc.encode_ordinary(str(function.get("name", ""))))
            total += len(enc.encode_ordinary(str(function.get("arguments", ""))))
    return total
