"""The Gemini generateContent / streamGenerateContent wire format as the simulator serves it."""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.providers.simulator.asgi import SSE_CONTENT, Rejected
from sluicegate.providers.simulator.family import FamilyRequest, Reply, choose_tool

FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}
_ERRORS = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "server_error": (500, "INTERNAL", "An internal error has occurred. Please retry or report."),
    "unavailable": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "outage": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "context_window": (400, "INVALID_ARGUMENT", "The input token count exceeds the maximum number of tokens allowed "),
    "bad_request": (400, "INVALID_ARGUMENT", ""),
}


def _text(parts: list[Any]) -> str:
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        messages.append({"role": "system", "content": _text(system.get("parts") or [])})
    for content in body.get("contents") or []:
        parts = content.get("parts") or []
        role = "assistant" if content.get("role") == "model" else "user"
        responses = [p["functionResponse"] for p in parts if isinstance(p, dict) and "functionResponse" in p]
        for response in responses:
            messages.append({"role": "tool", "content": orjson.dumps(response.get("response")).decode()})
        calls = [p["functionCall"] for p in parts if isinstance(p, dict) and "functionCall" in p]
        text = _text(parts)
        if text or calls or not responses:
            message: dict[str, Any] = {"role": role, "content": text}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": "",
                        "type": "function",
                        "function": {"name": c.get("name", ""), "arguments": orjson.dumps(c.get("args")).decode()},
                    }
                    for c in calls
                ]
            messages.append(message)
    return messages


def _lower_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _usage(prompt: int, output: int, thoughts: int = 0) -> dict[str, int]:
    """`output` counts the thoughts too (the plan's completion tokens); Gemini reports them apart."""
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": output - thoughts, "totalTokenCount": prompt + output}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


def _thoughts(reply: Reply) -> int:
    return reply.thinking.tokens if reply.thinking is not None else 0


def _thinking_budget(generation: dict[str, Any]) -> int | None:
    """The thoughts asked for: `thinkingConfig` with `includeThoughts` and a budget other than 0."""
    config = generation.get("thinkingConfig")
    if not isinstance(config, dict) or not config.get("includeThoughts"):
        return None
    budget = config.get("thinkingBudget", -1)
    if not isinstance(budget, int) or budget == 0:
        return None
    return 4096 if budget < 0 else budget


class _Writer:
    def __init__(self, fmt: GeminiFormat, reply: Reply) -> None:
        self._fmt = fmt
        self._reply = reply
        self._choice = reply.plan.choices[0]

    def _event(self, parts: list[dict[str, Any]], output: int, finish: str | None = None) -> bytes:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        thoughts = _thoughts(self._reply)
        data = {
            "candidates": [candidate],
            "usageMetadata": _usage(self._reply.plan.prompt_tokens, output + thoughts, thoughts),  # cumulative
            "modelVersion": self._reply.model,
            "responseId": self._reply.reply_id,
        }
        return b"data: " + orjson.dumps(data) + b"\r\n\r\n"

    def opening(self) -> bytes:
        thinking = self._reply.thinking
        if thinking is None:
            return b""
        return self._event([{"text": thinking.text, "thought": True}], 0)

    def piece(self, index: int) -> bytes:
        call = self._choice.tool_call
        if call is not None:
            if index:
                return b""  # Gemini streams a function call whole, in one event
            return self._event([{"functionCall": {"name": call.name, "args": orjson.loads(call.arguments)}}], 0)
        return self._event([{"text": self._choice.pieces[index]}], index + 1)

    def closing(self) -> bytes:
        finish = FINISH_REASONS[self._choice.finish_reason]
        return self._event([{"text": ""}], self._reply.plan.completion_tokens - _thoughts(self._reply), finish)


class GeminiFormat:
    name = "gemini"
    call_prefix = "call_"
    reply_prefix = "resp-"
    stream_headers = [SSE_CONTENT, (b"cache-control", b"no-cache")]

    def parse(self, body: Any, model: str | None) -> FamilyRequest:
        if not isinstance(body, dict) or not isinstance(body.get("contents"), list) or not body["contents"]:
            raise self.error("bad_request", model or "", "* GenerateContentRequest.contents: contents is not specified")
        messages = _messages(body)
        functions = [
            (d.get("name", ""), d.get("parametersJsonSchema", d.get("parameters")))
            for tool in body.get("tools") or []
            for d in tool.get("functionDeclarations") or []
        ]
        config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        mode = str(config.get("mode", "AUTO")).lower()
        allowed = config.get("allowedFunctionNames") or []
        forced = allowed[0] if mode == "any" and len(allowed) == 1 else None
        tool = choose_tool(functions, forced, "required" if mode == "any" else mode, messages)
        generation = body.get("generationConfig") or {}
        schema = generation.get("responseJsonSchema")
        if schema is None and generation.get("responseSchema") is not None:
            schema = _lower_types(generation["responseSchema"])  # OpenAPI's "OBJECT" is JSON Schema's "object"
        return FamilyRequest(
            model or "",
            messages,
            False,
            generation.get("maxOutputTokens"),
            tool,
            schema,
            thinking_budget=_thinking_budget(generation),
        )

    def whole(self, reply: Reply) -> bytes:
        choice = reply.plan.choices[0]
        call = choice.tool_call
        parts: list[dict[str, Any]] = (
            [{"text": choice.text}]
            if call is None
            else [{"functionCall": {"name": call.name, "args": orjson.loads(call.arguments)}}]
        )
        if reply.thinking is not None:
            parts.insert(0, {"text": reply.thinking.text, "thought": True})
        return orjson.dumps(
            {
                "candidates": [
                    {
                        "content": {"parts": parts, "role": "model"},
                        "finishReason": FINISH_REASONS[choice.finish_reason],
                        "index": 0,
                    }
                ],
                "usageMetadata": _usage(reply.plan.prompt_tokens, reply.plan.completion_tokens, _thoughts(reply)),
                "modelVersion": reply.model,
                "responseId": reply.reply_id,
            }
        )

    def writer(self, reply: Reply) -> _Writer:
        return _Writer(self, reply)

    def malformed(self) -> bytes:
        return b'data: {"candidates": [{"content": {"parts": [{"text\r\n\r\n'

    def error(self, kind: str, model: str, detail: str = "", retry_after: float | None = None) -> Rejected:
        status, code, message = _ERRORS[kind]
        body = orjson.dumps({"error": {"code": status, "message": message + detail, "status": code}})
        return Rejected(status, body)
