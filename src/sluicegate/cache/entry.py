"""A kept answer: the canonical response as bytes (a hit gets its own copy, never a shared object), what
it cost when it was made (what a hit saves), and a stream put back together into one response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatResponse, Usage

# Finish reasons of answers worth keeping: a cut (`length`) or filtered answer never is.
COMPLETE = frozenset({"stop", "tool_calls"})


@dataclass(frozen=True, slots=True)
class Entry:
    response: ChatResponse
    cost_micros: int | None  # what the provider call that made it cost
    stored_at: float


def dump(response: ChatResponse, cost_micros: int | None, now: float) -> bytes:
    usage = response.usage
    return orjson.dumps(
        {
            "id": response.id,
            "model": response.model,
            "created": response.created,
            "choices": response.choices,
            "usage": [
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens,
                usage.reasoning_tokens,
                usage.cache_write_tokens,
            ],
            "extra": response.extra,
            "cost": cost_micros,
            "at": now,
        }
    )


def load(data: bytes) -> Entry:
    raw = orjson.loads(data)
    response = ChatResponse(raw["id"], raw["model"], raw["created"], raw["choices"], Usage(*raw["usage"]), raw["extra"])
    return Entry(response, raw["cost"], raw["at"])


def complete(response: ChatResponse) -> bool:
    """Every choice ended by itself (not cut at max_tokens, not filtered)."""
    return bool(response.choices) and all(c.get("finish_reason") in COMPLETE for c in response.choices)


class StreamCollector:
    """Puts a stream's chunks back together into the whole response they make, as they pass."""

    __slots__ = ("_choices", "_extra", "_head", "usage")

    def __init__(self) -> None:
        self._head: ChatChunk | None = None
        self._choices: dict[int, dict[str, Any]] = {}
        self._extra: dict[str, Any] = {}
        self.usage: Usage | None = None

    def add(self, chunk: ChatChunk) -> None:
        if self._head is None:
            self._head = chunk
        if chunk.extra:
            self._extra.update(chunk.extra)
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            index = choice.get("index", 0)
            whole = self._choices.get(index)
            if whole is None:
                whole = self._choices[index] = {"role": "assistant", "finish_reason": None, "text": [], "calls": {}}
            delta = choice.get("delta") or {}
            if delta.get("role"):
                whole["role"] = delta["role"]
            if delta.get("content"):
                whole["text"].append(delta["content"])
            if delta.get("refusal"):
                whole.setdefault("refusal", []).append(delta["refusal"])
            for call in delta.get("tool_calls") or ():
                slot = whole["calls"].setdefault(call.get("index", 0), {"id": None, "name": "", "arguments": []})
                if call.get("id"):
                    slot["id"] = call["id"]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["name"] = function["name"]
                if function.get("arguments"):
                    slot["arguments"].append(function["arguments"])
            if choice.get("finish_reason"):
                whole["finish_reason"] = choice["finish_reason"]

    def response(self) -> ChatResponse | None:
        """The whole answer, or None when the stream said nothing or its usage never came."""
        head = self._head
        if head is None or self.usage is None or not self._choices:
            return None
        choices = []
        for index in sorted(self._choices):
            whole = self._choices[index]
            message: dict[str, Any] = {"role": whole["role"], "content": "".join(whole["text"]) or None}
            if "refusal" in whole:
                message["refusal"] = "".join(whole["refusal"])
            if whole["calls"]:
                message["tool_calls"] = [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": c["name"], "arguments": "".join(c["arguments"])},
                    }
                    for _, c in sorted(whole["calls"].items())
                ]
            choices.append({"index": index, "message": message, "finish_reason": whole["finish_reason"]})
        return ChatResponse(head.id, head.model, head.created, choices, self.usage, dict(self._extra))
