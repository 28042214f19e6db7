"""The canonical request, response, stream-chunk and usage types every stage and adapter speaks.

They are modelled on the OpenAI Chat Completions shape (the lingua franca), but owned here: client wire
formats and provider wire formats are translated to and from these, never to each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NotRequired, TypedDict

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class FunctionCall(TypedDict):
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class ToolCall(TypedDict):
    id: str
    type: Literal["function"]
    function: FunctionCall


class ContentPart(TypedDict, total=False):
    type: str  # "text" | "image_url" | ...
    text: str
    image_url: dict[str, Any]
    cache_control: dict[str, Any]  # a prompt-cache breakpoint (Anthropic's); stripped for providers without one


class ThinkingBlock(TypedDict, total=False):
    """One block of a model's reasoning as Anthropic-family providers return it, kept whole so that it can be
    sent back on the next turn (the provider checks the signature): `{"type": "thinking", "thinking",
    "signature"}` or `{"type": "redacted_thinking", "data"}` (encrypted, never shown)."""

    type: Literal["thinking", "redacted_thinking"]
    thinking: str
    signature: str
    data: str


class Message(TypedDict):
    """A chat message. An assistant message may carry the model's reasoning: `reasoning_content` (its text,
    from any provider) and `thinking_blocks` (signed or redacted blocks, from Anthropic-family providers).
    Stream deltas carry the same two keys: text pieces in `reasoning_content`; a block's signature (a
    `thinking` block with empty text) or a whole redacted block in `thinking_blocks`."""

    role: Role
    content: NotRequired[str | list[ContentPart] | None]
    name: NotRequired[str]
    tool_calls: NotRequired[list[ToolCall]]
    tool_call_id: NotRequired[str]
    refusal: NotRequired[str | None]
    reasoning_content: NotRequired[str]
    thinking_blocks: NotRequired[list[ThinkingBlock]]


@dataclass(slots=True)
class Usage:
    """Token usage of one call.

    `input_tokens` counts every prompt token; `cached_input_tokens` (read from a prompt cache) and
    `cache_write_tokens` (written to one, priced higher by some providers) are subsets of it.
    `reasoning_tokens` is a subset of `output_tokens`.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


@dataclass(slots=True)
class ChatRequest:
    """A chat completion request.

    `params` holds every request field the gateway does not interpret (temperature, tools, tool_choice,
    response_format, seed, logprobs, n, ...), keyed and shaped as in the OpenAI API. OpenAI-format
    upstreams receive them unchanged; other adapters map them by their own documented rules.
    """

    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk at the end of a stream
    max_tokens: int | None = None
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChatResponse:
    """A whole (non-streamed) completion. `choices` are OpenAI-shaped choice objects."""

    id: str
    model: str
    created: int
    choices: list[dict[str, Any]]
    usage: Usage
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. system_fingerprint, service_tier


@dataclass(slots=True)
class ChatChunk:
    """One stream event. `choices` are OpenAI-shaped chunk choices (`delta`, `finish_reason`).

    The usage chunk that ends a stream has no choices and carries `usage`. `prompt_usage` is the input side
    of usage when a provider states it as the stream starts (Anthropic's `message_start`). `raw` is the
    event's data as the provider sent it, kept only when the client speaks the provider's format and no
    stage edits chunks in place: the client is then sent these bytes instead of a re-encoding (a stage
    that changes a chunk returns a new one, which has none).
    """

    id: str
    model: str
    created: int
    choices: list[dict[str, Any]]
    usage: Usage | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    prompt_usage: Usage | None = None
    raw: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class EmbeddingRequest:
    model: str
    input: str | list[str] | list[int] | list[list[int]]
    user: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # encoding_format, dimensions, ...


@dataclass(slots=True)
class EmbeddingResponse:
    model: str
    data: list[dict[str, Any]]  # OpenAI-shaped embedding objects
    usage: Usage
    usage_reported: bool = True  # False: the provider reports no usage (Gemini); the gateway counts the input


@dataclass(slots=True)
class TokenCount:
    """The answer to a token-counting request (Anthropic's `/v1/messages/count_tokens`): no model is called."""

    input_tokens: int
