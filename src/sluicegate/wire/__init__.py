"""Client-facing wire formats. Each translates its client's format to canonical types and back."""

from __future__ import annotations

from typing import Any, Protocol

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse
from sluicegate.errors import GatewayError


class StreamEncoder(Protocol):
    def encode(self, chunk: ChatChunk, extension: dict[str, Any] | None = None) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, error: GatewayError) -> bytes: ...


class ClientWire(Protocol):
    name: str

    def parse_chat_request(self, body: bytes) -> ChatRequest: ...

    def chat_response_body(self, response: ChatResponse, extension: dict[str, Any] | None = None) -> bytes: ...

    def stream_encoder(self, request: ChatRequest, prompt_tokens: int | None = None) -> StreamEncoder:
        """`prompt_tokens`: the gateway's count of the prompt, for formats that state it as a stream starts."""
        ...

    def error_body(self, error: GatewayError) -> bytes: ...
