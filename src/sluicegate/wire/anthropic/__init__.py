"""The Anthropic Messages client format: `/v1/messages` bodies <-> canonical, its SSE events and errors.

Whatever provider serves the request, an `anthropic` SDK client sees Anthropic's shapes: content blocks,
`stop_reason`, `usage` without cached tokens in `input_tokens`, and the exact stream event sequence
message_start, content_block_start, ping, content_block_delta..., content_block_stop, message_delta,
message_stop (or an `error` event).
"""

from __future__ import annotations

from sluicegate.canonical import ChatRequest
from sluicegate.wire.anthropic.request import (
    count_prompt_tokens,
    count_tokens_body,
    parse_chat_request,
    parse_count_tokens_request,
)
from sluicegate.wire.anthropic.response import (
    ERROR_TYPES,
    STOP_REASONS,
    chat_response_body,
    error_body,
    message_id,
    usage_body,
)
from sluicegate.wire.anthropic.stream import AnthropicStreamEncoder

__all__ = [
    "ERROR_TYPES",
    "STOP_REASONS",
    "AnthropicStreamEncoder",
    "AnthropicWire",
    "chat_response_body",
    "count_prompt_tokens",
    "count_tokens_body",
    "error_body",
    "message_id",
    "parse_chat_request",
    "parse_count_tokens_request",
    "usage_body",
]


class AnthropicWire:
    """The Anthropic client format as one object (see `wire.ClientWire`)."""

    name = "anthropic"
    parse_chat_request = staticmethod(parse_chat_request)
    chat_response_body = staticmethod(chat_response_body)
    error_body = staticmethod(error_body)

    @staticmethod
    def stream_encoder(request: ChatRequest, prompt_tokens: int | None = None) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(request, prompt_tokens)
