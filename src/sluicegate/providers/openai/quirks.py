"""Where OpenAI-compatible servers depart from OpenAI, as data, keyed by the provider's `quirks` name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class Quirks:
    stream_usage: bool = True  # honours stream_options.include_usage (else usage comes unasked, or never)
    max_tokens_field: Literal["max_tokens", "max_completion_tokens", "as_sent"] = "as_sent"
    unsupported: frozenset[str] = frozenset()  # parameters the server rejects: dropped or refused by policy
    renames: dict[str, str] = field(default_factory=dict)  # OpenAI name -> the server's name


OPENAI = Quirks()

KNOWN: dict[str, Quirks] = {
    "openai": OPENAI,
    "vllm": Quirks(max_tokens_field="max_tokens"),
    "ollama": Quirks(max_tokens_field="max_tokens", unsupported=frozenset({"logit_bias", "n"})),
    "groq": Quirks(
        max_tokens_field="max_completion_tokens",
        unsupported=frozenset({"logprobs", "top_logprobs", "logit_bias", "store", "metadata"}),
    ),
    "together": Quirks(max_tokens_field="max_tokens", unsupported=frozenset({"store", "metadata", "service_tier"})),
    "mistral": Quirks(
        stream_usage=False,  # Mistral sends usage in its last chunk unasked and rejects stream_options
        max_tokens_field="max_tokens",
        unsupported=frozenset({"logit_bias", "logprobs", "top_logprobs", "user", "store", "metadata", "service_tier"}),
        renames={"seed": "random_seed"},
    ),
    "deepseek": Quirks(
        max_tokens_field="max_tokens", unsupported=frozenset({"n", "logit_bias", "seed", "store", "metadata"})
    ),
    "openrouter": Quirks(),
}


def quirks_for(name: str | None) -> Quirks:
    return KNOWN.get(name or "openai", OPENAI)
