"""Canonical chunks -> the Responses API's typed stream events; one stateful encoder per stream.

The sequence is the one OpenAI sends and the `openai` SDK's stream helper checks: response.created,
response.in_progress, then per output item `output_item.added`, its parts and deltas, their `.done`
events and `output_item.done`, and last response.completed (or response.incomplete), which carries the
whole response with its usage. Every event has a `sequence_number`.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, Usage
from sluicegate.errors import GatewayError
from sluicegate.wire.responses.response import (
    STATUSES,
    base_id,
    call_item,
    message_item,
    reasoning_item,
    refusal_part,
    response_object,
    text_part,
    usage_body,
)


class _Call:
    __slots__ = ("arguments", "call_id", "name", "output_index")

    def __init__(self, output_index: int, call_id: str, name: str) -> None:
        self.output_index = output_index
        self.call_id = call_id
        self.name = name
        self.arguments: list[str] = []


class ResponsesStreamEncoder:
    """Tracks the open reasoning item, the open message item (and its open part) and the function calls."""

    __slots__ = (
        "_calls",
        "_created",
        "_ended",
        "_extension",
        "_finish",
        "_given_stem",
        "_items",
        "_message",
        "_model",
        "_part_open",
        "_parts",
        "_reasoning",
        "_reasoning_text",
        "_seq",
        "_stem",
        "_stored",
        "_usage",
        "final",
    )

    def __init__(self, request: ChatRequest, stem: str | None = None, stored: bool = False) -> None:
        self._seq = 0
        self._stem: str | None = None
        self._given_stem = stem
        self._stored = stored
        self.final: dict[str, Any] | None = None  # the completed response, once the stream has ended
        self._model = request.model
        self._created = 0
        self._items: list[dict[str, Any] | None] = []  # output items once done, in output order
        self._reasoning: int | None = None  # output index of the open reasoning item
        self._reasoning_text: list[str] = []
        self._message: int | None = None  # output index of the open message item
        self._parts: list[tuple[str, list[str]]] = []  # the open message's parts: (kind, pieces)
        self._part_open = False  # the last of `_parts` still takes deltas
        self._calls: dict[int, _Call] = {}  # canonical tool-call index -> its open item
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._extension: dict[str, Any] | None = None
        self._ended = False

    def _event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload["type"] = kind
        payload["sequence_number"] = self._seq
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _start(self, chunk: ChatChunk | None) -> bytes:
        if self._given_stem is not None:
            self._stem = self._given_stem
        elif chunk is not None and chunk.id:
            self._stem = base_id(chunk.id)
        else:
            self._stem = secrets.token_hex(12)
        if chunk is not None:
            self._model = chunk.model or self._model
            self._created = chunk.created
        snapshot = response_object(self._stem, self._model, self._created, "in_progress", [], None, stored=self._stored)
        return self._event("response.created", {"response": snapshot}) + self._event(
            "response.in_progress", {"response": snapshot}
        )

    def _item_id(self, prefix: str, index: int) -> str:
        return f"{prefix}_{self._stem}_{index}"

    # -- items ---------------------------------------------------------------------------------------

    def _add_item(self, item: dict[str, Any]) -> bytes:
        index = len(self._items)
        self._items.append(None)
        return self._event("response.output_item.added", {"output_index": index, "item": item})

    def _done_item(self, index: int, item: dict[str, Any]) -> bytes:
        self._items[index] = item
        return self._event("response.output_item.done", {"output_index": index, "item": item})

    def _reasoning_delta(self, text: str) -> bytes:
        out = b""
        if self._reasoning is None:
            out += self._close_message()
            index = self._reasoning = len(self._items)
            item = reasoning_item(f"{self._stem}_{index}", "", "in_progress")
            out += self._add_item(item)
            part = {"type": "reasoning_text", "text": ""}
            out += self._event(
                "response.content_part.added",
                {"item_id": item["id"], "output_index": index, "content_index": 0, "part": part},
            )
        self._reasoning_text.append(text)
        index = self._reasoning
        payload = {"item_id": self._item_id("rs", index), "output_index": index, "content_index": 0, "delta": text}
        return out + self._event("response.reasoning_text.delta", payload)

    def _close_reasoning(self) -> bytes:
        index = self._reasoning
        if index is None:
            return b""
        self._reasoning = None
        text = "".join(self._reasoning_text)
        self._reasoning_text = []
        item_id = self._item_id("rs", index)
        out = self._event(
            "response.reasoning_text.done",
            {"item_id": item_id, "output_index": index, "content_index": 0, "text": text},
        )
        out += self._event(
            "response.content_part.done",
            {
                "item_id": item_id,
                "output_index": index,
                "content_index": 0,
                "part": {"type": "reasoning_text", "text": text},
            },
        )
        return out + self._done_item(index, reasoning_item(f"{self._stem}_{index}", text))

    def _message_delta(self, kind: str, text: str) -> bytes:
        out = b""
        if self._message is None:
            out += self._close_reasoning()
            index = self._message = len(self._items)
            out += self._add_item(message_item(f"{self._stem}_{index}", [], "in_progress"))
        index = self._message
        item_id = self._item_id("msg", index)
        if not self._part_open or self._parts[-1][0] != kind:
            out += self._close_part()
            self._parts.append((kind, []))
            self._part_open = True
            part = text_part("") if kind == "text" else refusal_part("")
            out += self._event(
                "response.content_part.added",
                {"item_id": item_id, "output_index": index, "content_index": len(self._parts) - 1, "part": part},
            )
        self._parts[-1][1].append(text)
        payload: dict[str, Any] = {
            "item_id": item_id,
            "output_index": index,
            "content_index": len(self._parts) - 1,
            "delta": text,
        }
        if kind == "text":
            payload["logprobs"] = []
            return out + self._event("response.output_text.delta", payload)
        return out + self._event("response.refusal.delta", payload)

    def _close_part(self) -> bytes:
        """Ends the open part of the open message (the message itself stays open)."""
        if self._message is None or not self._part_open:
            return b""
        self._part_open = False
        kind, pieces = self._parts[-1]
        index = self._message
        text = "".join(pieces)
        base = {"item_id": self._item_id("msg", index), "output_index": index, "content_index": len(self._parts) - 1}
        if kind == "text":
            out = self._event("response.output_text.done", {**base, "text": text, "logprobs": []})
            part = text_part(text)
        else:
            out = self._event("response.refusal.done", {**base, "refusal": text})
            part = refusal_part(text)
        return out + self._event("response.content_part.done", {**base, "part": part})

    def _close_message(self) -> bytes:
        index = self._message
        if index is None:
            return b""
        out = self._close_part()
        parts = [
            text_part("".join(pieces)) if kind == "text" else refusal_part("".join(pieces))
            for kind, pieces in self._parts
        ]
        self._message = None
        self._parts = []
        return out + self._done_item(index, message_item(f"{self._stem}_{index}", parts))

    def _tool_delta(self, call: dict[str, Any]) -> bytes:
        out = b""
        position = call.get("index", 0)
        function = call.get("function") or {}
        open_call = self._calls.get(position)
        if open_call is None:
            out += self._close_reasoning() + self._close_message()
            open_call = self._calls[position] = _Call(
                len(self._items), call.get("id") or "", function.get("name") or ""
            )
            item = call_item(self._stem or "", 0, open_call.call_id, open_call.name, "", "in_progress")
            item["id"] = self._item_id("fc", open_call.output_index)
            out += self._add_item(item)
        arguments = function.get("arguments")
        if arguments:
            open_call.arguments.append(arguments)
            payload = {
                "item_id": self._item_id("fc", open_call.output_index),
                "output_index": open_call.output_index,
                "delta": arguments,
            }
            out += self._event("response.function_call_arguments.delta", payload)
        return out

    def _close_calls(self) -> bytes:
        out = b""
        for call in sorted(self._calls.values(), key=lambda c: c.output_index):
            arguments = "".join(call.arguments)
            item_id = self._item_id("fc", call.output_index)
            out += self._event(
                "response.function_call_arguments.done",
                {"item_id": item_id, "output_index": call.output_index, "arguments": arguments},
            )
            item = call_item("", 0, call.call_id, call.name, arguments, "completed")
            item["id"] = item_id
            out += self._done_item(call.output_index, item)
        self._calls = {}
        return out

    # -- the encoder ---------------------------------------------------------------------------------

    def encode(self, chunk: ChatChunk, extension: dict[str, Any] | None = None) -> bytes:
        if self._ended:
            return b""
        out = b"" if self._stem is not None else self._start(chunk)
        for choice in chunk.choices:
            if choice.get("index", 0) != 0:
                continue  # one answer per response
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content")
            if reasoning:
                out += self._reasoning_delta(reasoning)
            if delta.get("content"):
                out += self._message_delta("text", delta["content"])
            if delta.get("refusal"):
                out += self._message_delta("refusal", delta["refusal"])
            for call in delta.get("tool_calls") or ():
                out += self._tool_delta(call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        if chunk.usage is not None:
            self._usage = chunk.usage
            self._extension = extension
        return out

    def finish(self) -> bytes:
        if self._ended:
            return b""
        self._ended = True
        out = b"" if self._stem is not None else self._start(None)
        out += self._close_reasoning() + self._close_message() + self._close_calls()
        status, incomplete = STATUSES.get(self._finish or "stop", ("completed", None))
        output = [item for item in self._items if item is not None]
        usage = usage_body(self._usage or Usage(), self._extension)
        snapshot = response_object(
            self._stem or "", self._model, self._created, status, output, usage, incomplete, stored=self._stored
        )
        self.final = snapshot
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return out + self._event(kind, {"response": snapshot})

    def error(self, error: GatewayError) -> bytes:
        """An upstream failure after the stream began: an `error` event, then response.failed."""
        if self._ended:
            return b""
        self._ended = True
        out = b"" if self._stem is not None else self._start(None)
        code = error.code or error.type
        out += self._event("error", {"code": code, "message": error.message, "param": error.param})
        output = [item for item in self._items if item is not None]
        snapshot = response_object(
            self._stem or "",
            self._model,
            self._created,
            "failed",
            output,
            None,
            error={"code": code, "message": error.message},
        )
        return out + self._event("response.failed", {"response": snapshot})
