"""OpenAI wire shapes: completions, stream chunks, embeddings, model lists and error bodies.

Pure functions returning plain dicts (or bytes for error bodies), in the key order OpenAI sends.
"""

from __future__ import annotations

from typing import Any

import orjson

JSONObject = dict[str, Any]


# --- chat completions ------------------------------------------------------------------------------


def usage(prompt_tokens: int, completion_tokens: int, reasoning_tokens: int = 0) -> JSONObject:
    """`completion_tokens` includes `reasoning_tokens`, as OpenAI counts them."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_call(call_id: str, name: str, arguments: str) -> JSONObject:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def text_message(content: str) -> JSONObject:
    return {"role": "assistant", "content": content, "refusal": None, "annotations": []}


def refusal_message(refusal: str) -> JSONObject:
    return {"role": "assistant", "content": None, "refusal": refusal, "annotations": []}


def tool_call_message(calls: list[JSONObject]) -> JSONObject:
    return {"role": "assistant", "content": None, "tool_calls": calls, "refusal": None, "annotations": []}


def choice(index: int, message: JSONObject, finish_reason: str) -> JSONObject:
    return {"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason}


def completion(
    completion_id: str,
    created: int,
    model: str,
    fingerprint: str,
    choices: list[JSONObject],
    usage_: JSONObject,
) -> JSONObject:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
        "usage": usage_,
        "service_tier": "default",
        "system_fingerprint": fingerprint,
    }


class ChunkWriter:
    """Serialises the `data: {...}\\n\\n` lines of one streamed completion."""

    __slots__ = ("_head", "_usage_null")

    def __init__(self, completion_id: str, created: int, model: str, fingerprint: str, include_usage: bool) -> None:
        self._head = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        }
        self._usage_null = include_usage

    def _line(self, choices: list[JSONObject], usage_: JSONObject | None = None) -> bytes:
        chunk = {**self._head, "choices": choices}
        if self._usage_null or usage_ is not None:
            chunk["usage"] = usage_
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(self, index: int, delta: JSONObject, finish_reason: str | None = None) -> bytes:
        return self._line([{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])

    def usage(self, usage_: JSONObject) -> bytes:
        return self._line([], usage_)


def role_delta() -> JSONObject:
    return {"role": "assistant", "content": "", "refusal": None}


def content_delta(text: str) -> JSONObject:
    return {"content": text}


def refusal_delta(text: str) -> JSONObject:
    return {"refusal": text}


def tool_call_start_delta(call_id: str, name: str) -> JSONObject:
    call = {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}


def tool_arguments_delta(fragment: str) -> JSONObject:
    return {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]}


DONE = b"data: [DONE]\n\n"


# --- embeddings and models -------------------------------------------------------------------------


def embedding_list(model: str, embeddings: list[Any], prompt_tokens: int) -> JSONObject:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(embeddings)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def model_list(names: list[str], created: int) -> JSONObject:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": created, "owned_by": "system"} for name in names],
    }


# --- errors ----------------------------------------------------------------------------------------


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})


def invalid_json() -> bytes:
    return error_body(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
        "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
        "JSON.)",
        "invalid_request_error",
    )


def missing_parameter(name: str) -> bytes:
    return error_body(
        f"Missing required parameter: '{name}'.", "invalid_request_error", name, "missing_required_parameter"
    )


def invalid_parameter(name: str, expected: str) -> bytes:
    return error_body(f"Invalid type for '{name}': expected {expected}.", "invalid_request_error", name, "invalid_type")


def not_found(method: str, path: str) -> bytes:
    return error_body(f"Invalid URL ({method} {path})", "invalid_request_error")


def invalid_api_key(given: str | None) -> bytes:
    if not given:
        return error_body(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            "invalid_api_key",
        )
    masked = given[:3] + "*" * 4 + given[-4:] if len(given) > 8 else "*" * 4
    return error_body(
        f"Incorrect API key provided: {masked}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    )


def context_length_exceeded(context_window: int, prompt_tokens: int) -> bytes:
    return error_body(
        f"This model's maximum context length is {context_window} tokens. However, your messages resulted "
        f"in {prompt_tokens} tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    )


def rate_limited(model: str, retry_after: float) -> bytes:
    return error_body(
        f"Rate limit reached for {model} in organization org-simulator on requests per min (RPM): "
        f"Limit 60, Used 60, Requested 1. Please try again in {retry_after:g}s.",
        "requests",
        None,
        "rate_limit_exceeded",
    )


def server_error() -> bytes:
    return error_body("The server had an error while processing your request. Sorry about that!", "server_error")


def unavailable() -> bytes:
    return error_body("The server is overloaded or not ready yet.", "server_error")
