"""What a provider adapter is: data and pure functions between canonical types and one provider's wire."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse
from sluicegate.config.schema import ProviderConfig
from sluicegate.errors import UpstreamError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A provider endpoint as the adapters see it: its config and the credential read from the environment."""

    name: str
    config: ProviderConfig
    api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: Mapping[str, str]
    body: bytes


class StreamDecoder(Protocol):
    """Turns one provider stream event (its SSE `event` name and `data` bytes) into canonical chunks."""

    def decode(self, event: str | None, data: bytes) -> list[ChatChunk]:
        """Chunks for this event; raises `UpstreamError` for an error event or malformed data."""
        ...

    @property
    def done(self) -> bool:
        """True once the provider has signalled the end of the stream."""
        ...


class StreamFramer(Protocol):
    """Splits a provider's streamed body into (event name, data) pairs: SSE for most, AWS event-stream for
    Bedrock. `push` the bytes of each read, then take the events one at a time with `next_event`."""

    def push(self, data: bytes) -> None: ...

    def next_event(self) -> tuple[str | None, bytes] | None: ...

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]: ...


class ProviderAdapter(Protocol):
    family: str

    def chat_request(self, endpoint: Endpoint, model: str, request: ChatRequest) -> UpstreamRequest: ...

    def chat_response(self, body: bytes) -> ChatResponse: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def stream_framer(self) -> StreamFramer: ...

    def embedding_request(self, endpoint: Endpoint, model: str, request: EmbeddingRequest) -> UpstreamRequest: ...

    def embedding_response(self, body: bytes) -> EmbeddingResponse: ...

    def classify_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError: ...
