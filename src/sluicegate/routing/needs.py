"""What a request needs from a deployment: capabilities, room in the context window, latency, region."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sluicegate.canonical import ChatRequest, EmbeddingRequest
from sluicegate.tokens import count_chat_prompt

MAX_LATENCY_HEADER = "x-sluice-max-latency-ms"
DEFAULT_OUTPUT_ESTIMATE = 256  # output tokens assumed for cost ranking when the request sets no max_tokens


@dataclass(slots=True)
class RequestNeeds:
    capabilities: frozenset[str] = frozenset()
    prompt_bound: int = 0  # an upper bound of the prompt tokens (UTF-8 bytes + framing), free to compute
    prompt_tokens: int | None = None  # counted only when a context window is at stake
    max_tokens: int | None = None
    stream: bool = False
    max_latency_s: float | None = None
    regions: frozenset[str] | None = None  # None: anywhere

    @property
    def prompt_estimate(self) -> int:
        return self.prompt_tokens if self.prompt_tokens is not None else self.prompt_bound

    @property
    def output_estimate(self) -> int:
        return self.max_tokens or DEFAULT_OUTPUT_ESTIMATE


def _has_image(content: Any) -> bool:
    return isinstance(content, list) and any(
        isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image") for part in content
    )


def _content_bytes(content: Any) -> int:
    if isinstance(content, str):
        return len(content.encode())
    if isinstance(content, list):
        return sum(len(str(part.get("text", "")).encode()) for part in content if isinstance(part, dict))
    return 0


def needs_of(
    request: ChatRequest | EmbeddingRequest, headers: Mapping[str, str], regions: frozenset[str] | None
) -> RequestNeeds:
    """The needs read from the request and its headers. The prompt is only bounded here, not counted."""
    needs = RequestNeeds(regions=regions)
    raw = headers.get(MAX_LATENCY_HEADER)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if value > 0:
            needs.max_latency_s = value / 1000
    if isinstance(request, EmbeddingRequest):
        return needs
    capabilities: set[str] = set()
    if request.params.get("tools") or request.params.get("functions"):
        capabilities.add("tools")
    bound = 3
    for message in request.messages:
        content = message.get("content")
        bound += 4 + _content_bytes(content)
        if "vision" not in capabilities and _has_image(content):
            capabilities.add("vision")
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            bound += len(str(function.get("name", ""))) + len(str(function.get("arguments", "")).encode())
    needs.capabilities = frozenset(capabilities)
    needs.prompt_bound = bound
    needs.max_tokens = request.max_tokens
    needs.stream = request.stream
    return needs


def count_prompt(needs: RequestNeeds, request: ChatRequest | EmbeddingRequest) -> int:
    """The exact prompt tokens (cl100k with OpenAI's chat framing), counted once and kept on the needs."""
    if needs.prompt_tokens is None:
        if isinstance(request, ChatRequest):
            needs.prompt_tokens = count_chat_prompt(request.messages)  # type: ignore[arg-type]
        else:
            needs.prompt_tokens = needs.prompt_bound
    return needs.prompt_tokens
