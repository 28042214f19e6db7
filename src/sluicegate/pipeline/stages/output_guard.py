"""The output guard stage: personal data and secrets redacted in answers, whole and streamed (a stream holds
back only what could still be the start of a match), the request's placeholders put back when its
redaction asked for it, and an answer that should be JSON checked.

It sits after the meter, so what the provider sent is counted and billed as sent, and the client gets the
redacted text. Canonical chunks are the same for every client format, so OpenAI and Anthropic clients get
the same treatment. With `redact_requests`, it also redacts the client's messages before the upstream call,
for requests that no firewall stage redacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse
from sluicegate.errors import GatewayError
from sluicegate.guard.findings import Finding
from sluicegate.guard.output_config import OutputGuardConfig
from sluicegate.guard.redact import Redactor, Scan, StreamRedactor, restore, sensitive
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import Answer, RetryAnswer
from sluicegate.pipeline.stages import Slot, StageServices

SLOT: Slot = "output"
GUARDRAIL_HEADER = "x-sluice-guardrail"
_PAST = {"flag": "flagged", "redact": "redacted", "block": "blocked"}
_RANK = {"allow": 0, "flag": 1, "redact": 2, "block": 3}


@dataclass(slots=True)
class Streaming:
    """The stage's business with one streamed answer: a redactor per choice and what it found."""

    redactor: Redactor
    mapping: dict[str, str]  # the request's placeholders to put back (empty: none)
    choices: dict[int, StreamRedactor] = field(default_factory=dict)
    categories: set[str] = field(default_factory=set)
    last: ChatChunk | None = None  # the stream's last chunk: what a chunk of held text is made like


class OutputGuard:
    name = "output_guard"

    def __init__(self, config: OutputGuardConfig, services: StageServices) -> None:
        self.config = config
        self._services = services

    # -- the request (only with redact_requests) -------------------------------------------------------

    async def on_request(self, ctx: RequestContext) -> None:
        if not self.config.redact_requests or ctx.redactor is not None or type(ctx.request) is not ChatRequest:
            return
        redactor = Redactor(restore=self.config.restore)
        found: set[str] = set()
        for message in ctx.request.messages:
            if message.get("role") == "assistant":
                continue  # the model's own earlier turns: what it said is not the client's to protect
            content = message.get("content")
            if isinstance(content, str):
                message["content"] = self._redact(redactor, content, found)
            elif isinstance(content, list):
                for part in content:
                    text = part.get("text")
                    if part.get("type") == "text" and isinstance(text, str):
                        part["text"] = self._redact(redactor, text, found)
        if found:
            ctx.redactor = redactor
            self._record(ctx, found, "request")
            ctx.response_headers[GUARDRAIL_HEADER] = _header(ctx)

    # -- whole answers ---------------------------------------------------------------------------------

    async def on_response(self, ctx: RequestContext, response: Answer) -> Answer:
        if type(response) is not ChatResponse:
            return response
        if self.config.json_check != "off" and _wants_json(ctx):
            for choice in response.choices:
                error = _json_error(choice)
                if error is not None:
                    raise RetryAnswer(error) if self.config.json_check == "retry" else error
        redactor = ctx.redactor or Redactor()
        mapping = dict(redactor.mapping) if redactor.restore else {}
        found: set[str] = set()
        for choice in response.choices:
            message = choice.get("message")
            if not message:
                continue
            for key in ("content", "refusal"):
                text = message.get(key)
                if isinstance(text, str) and text:
                    text = self._redact(redactor, text, found)
                    message[key] = restore(text, mapping) if mapping else text
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                if isinstance(function.get("arguments"), str):
                    arguments = self._redact_arguments(redactor, function["arguments"], found)
                    function["arguments"] = _restore_json(arguments, mapping) if mapping else arguments
        if found:
            self._record(ctx, found, "answer")
            ctx.response_headers[GUARDRAIL_HEADER] = _header(ctx)
        return response

    # -- streams ---------------------------------------------------------------------------------------

    def on_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        state = ctx.output_guard
        if state is None:
            redactor = ctx.redactor or Redactor()
            state = ctx.output_guard = Streaming(redactor, dict(redactor.mapping) if redactor.restore else {})
        out: list[ChatChunk] = []
        for chunk in batch:
            keep = True
            for choice in chunk.choices:
                index = choice.get("index", 0)
                delta = choice.get("delta")
                stream = state.choices.get(index)
                if stream is None:
                    stream = state.choices[index] = StreamRedactor(
                        state.redactor, self._scanner(state.categories), state.mapping or None
                    )
                text = delta.get("content") if delta else None
                fed = False
                if delta and isinstance(text, str) and text:
                    fed = True
                    sent = stream.feed(text)
                    delta["content"] = sent
                    if not sent and len(delta) == 1 and choice.get("finish_reason") is None:
                        keep = len(chunk.choices) > 1 or chunk.usage is not None
                if choice.get("finish_reason") is not None and stream.holding:  # what was held, before the end
                    if fed and delta:
                        delta["content"] += stream.flush()
                    else:
                        out.append(_text_chunk(chunk, index, stream.flush()))
            if keep:
                out.append(chunk)
        if batch:
            state.last = batch[-1]
        return out

    def on_end(self, ctx: RequestContext) -> list[ChatChunk]:
        state = ctx.output_guard
        if state is None:
            return []
        tail = [(index, stream.flush()) for index, stream in state.choices.items() if stream.holding]
        if state.categories:
            self._record(ctx, state.categories, "answer")
        if not tail:
            return []
        template = state.last or ChatChunk(ctx.request_id, ctx.model, 0, [])
        return [_text_chunk(template, index, text) for index, text in tail]

    # -- helpers ---------------------------------------------------------------------------------------

    def _scanner(self, categories: set[str]) -> Scan:
        """The detectors, keeping what this configuration redacts and noting its categories in
        `categories`."""
        config = self.config

        def scan(text: str) -> list[Finding]:
            kept = [f for f in sensitive(text) if f.score >= config.min_score and config.redacts(f.category)]
            categories.update(f.category for f in kept)
            return kept

        return scan

    def _redact(self, redactor: Redactor, text: str, found: set[str]) -> str:
        return redactor.redact(text, self._scanner(found)(text))

    def _redact_arguments(self, redactor: Redactor, arguments: str, found: set[str]) -> str:
        """Tool-call arguments with what this configuration redacts replaced in their string (and integer)
        values, so the JSON stays JSON; arguments that are not JSON are redacted as text."""
        try:
            value = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return self._redact(redactor, arguments, found)
        before = len(found), len(redactor.mapping)
        redacted = self._redact_value(redactor, value, found)
        if (len(found), len(redactor.mapping)) == before and redacted == value:
            return arguments  # nothing to redact: the model's text is kept as it wrote it
        return orjson.dumps(redacted).decode()

    def _redact_value(self, redactor: Redactor, value: object, found: set[str]) -> object:
        if isinstance(value, str):
            return self._redact(redactor, value, found)
        if isinstance(value, dict):
            return {k: self._redact_value(redactor, v, found) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_value(redactor, v, found) for v in value]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**7:
            text = str(value)
            redacted = self._redact(redactor, text, found)
            return value if redacted == text else redacted  # a card number written as a number
        return value

    def _record(self, ctx: RequestContext, categories: set[str], where: str) -> None:
        if _RANK.get(ctx.guardrail_action or "allow", 0) < _RANK["redact"]:
            ctx.guardrail_action = "redact"
        ctx.guardrail_categories = tuple(sorted({*ctx.guardrail_categories, *categories}))
        self._services.verdict(ctx, self.name, "redact", f"{where}: {','.join(sorted(categories))}")


def _wants_json(ctx: RequestContext) -> bool:
    request = ctx.request
    if type(request) is not ChatRequest:
        return False
    response_format = request.params.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema")


def _json_error(choice: dict[str, object]) -> GatewayError | None:
    """The error for a choice whose text should be JSON and is not (None when it is, or has no text)."""
    message = choice.get("message")
    if not isinstance(message, dict) or message.get("tool_calls"):
        return None
    content = message.get("content")
    if choice.get("finish_reason") == "length" or not isinstance(content, str):
        return None  # cut short by max_tokens: the client asked for a length the JSON did not fit in
    try:
        orjson.loads(content)
    except orjson.JSONDecodeError:
        return GatewayError(
            502,
            "The model's answer is not valid JSON although the request asked for JSON (response_format); "
            "the answer was withheld. Retry, or lower the temperature.",
            type="server_error",
            code="invalid_json_output",
        )
    return None


def _restore_json(arguments: str, mapping: dict[str, str]) -> str:
    """Placeholders in tool-call arguments (JSON text) put back, escaped as JSON string content."""
    escaped = {k: orjson.dumps(v).decode()[1:-1] for k, v in mapping.items()}
    return restore(arguments, escaped)


def _text_chunk(like: ChatChunk, index: int, text: str) -> ChatChunk:
    return ChatChunk(
        like.id, like.model, like.created, [{"index": index, "delta": {"content": text}, "finish_reason": None}]
    )


def _header(ctx: RequestContext) -> str:
    action = _PAST.get(ctx.guardrail_action or "", "redacted")
    return f"{action}; categories={','.join(ctx.guardrail_categories)}"


def create(services: StageServices) -> OutputGuard:
    return OutputGuard(services.config.output_guard or OutputGuardConfig(), services)
