"""The OpenAI Responses API client format: `/v1/responses` bodies <-> canonical, its typed stream events.

Pure translation: a `previous_response_id` is resolved by the server (which alone reads the stored
responses) before the body gets here. Errors are OpenAI's (the same body as
Chat Completions), so the SDK raises its usual exception types.
"""

from __future__ import annotations

from sluicegate.canonical import ChatRequest
from sluicegate.wire.openai import error_body
from sluicegate.wire.responses.request import input_items, load_body, parse_responses_request, responses_request
from sluicegate.wire.responses.response import chat_response_body, response_dict
from sluicegate.wire.responses.stream import ResponsesStreamEncoder

__all__ = [
    "ResponsesStreamEncoder",
    "ResponsesWire",
    "chat_response_body",
    "input_items",
    "load_body",
    "parse_responses_request",
    "response_dict",
    "responses_request",
]


class ResponsesWire:
    """The Responses client format as one object (see `wire.ClientWire`)."""

    name = "responses"
    parse_chat_request = staticmethod(parse_responses_request)
    chat_response_body = staticmethod(chat_response_body)
    error_body = staticmethod(error_body)

    @staticmethod
    def stream_encoder(request: ChatRequest, prompt_tokens: int | None = None) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(request)
