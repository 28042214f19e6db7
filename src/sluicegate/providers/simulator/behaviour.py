"""What a simulated model does with one chat request: the reply it plans, its length and its timing.

Everything is drawn from a generator seeded by (config seed, model, messages), so the same request gets
the same text, lengths and latencies whether it is streamed or not.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.providers.simulator.config import ModelBehaviour, ScriptedReply
from sluicegate.providers.simulator.seeded import seeded_rng
from sluicegate.providers.simulator.text import Corpus
from sluicegate.providers.simulator.tool_args import arguments_for
from sluicegate.tokens import cl100k, count_text


@dataclass(frozen=True, slots=True)
class ToolCallPlan:
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ChoicePlan:
    """One choice: text pieces (one token each) or a tool call with its argument fragments."""

    pieces: list[str]
    finish_reason: str  # canonical: stop | length | tool_calls | content_filter
    tool_call: ToolCallPlan | None = None
    refusal: bool = False  # the text is a refusal (OpenAI sends it as `refusal`, not `content`)

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    choices: list[ChoicePlan]
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float  # streams: until the first chunk
    token_interval_s: float  # streams: between chunks
    total_s: float  # whole responses: until the body


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The function the reply must call, as chosen from `tools` and `tool_choice`."""

    name: str
    parameters: Any


@dataclass(frozen=True, slots=True)
class ReplyInputs:
    """What a scripted reply draws on: the script (the request's header, else the model's `reply`), the
    last user message's text (for `echo`) and the JSON schema the request asked the answer to follow."""

    script: ScriptedReply
    prompt: str = ""
    schema: Any = None


def reply_inputs(script: ScriptedReply, messages: list[dict[str, Any]], schema: Any = None) -> ReplyInputs:
    """The inputs of a reply; the prompt is read only when the script echoes it."""
    return ReplyInputs(script, last_user_text(messages) if script.type == "echo" else "", schema)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (its text parts joined), as an echo repeats it."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
            )
        return ""
    return ""


def plan_reply(
    rng: random.Random,
    behaviour: ModelBehaviour,
    corpus: Corpus,
    *,
    prompt_tokens: int,
    n: int,
    max_tokens: int | None,
    tool: ToolRequest | None,
    slow_factor: float,
    new_call_id: Callable[[], str],
    inputs: ReplyInputs | None = None,
) -> ReplyPlan:
    """Plan `n` choices; `max_tokens` (and the context window's room) cap text with finish `length`.

    A scripted reply (`inputs.script`) replaces the generated text; `refusal` and `content_filter` also
    replace a tool call, the others leave a tool call the request asked for in place."""
    room = max(behaviour.context_window - prompt_tokens, 0)
    cap = room if max_tokens is None else min(max_tokens, room)
    inputs = inputs or ReplyInputs(behaviour.reply)
    script = inputs.script
    if script.type != "generated" and (tool is None or script.type in ("refusal", "content_filter")):
        text = _scripted_text(script, inputs, rng, corpus)
        choice, tokens = _text_choice(text, cap, script)
        ttft_s, interval_s, total_s = _timing(rng, behaviour, max(len(choice.pieces), 1), slow_factor)
        return ReplyPlan([choice] * n, prompt_tokens, tokens * n, ttft_s, interval_s, total_s)
    choices: list[ChoicePlan] = []
    completion_tokens = 0
    for _ in range(n):
        if tool is not None:
            choice = _tool_choice(rng, tool, new_call_id())
            completion_tokens += count_text(tool.name) + len(choice.pieces)
        else:
            wanted = rng.randint(behaviour.output_tokens.min, behaviour.output_tokens.max)
            choice = ChoicePlan(corpus.reply(rng, min(wanted, cap)), "length" if wanted > cap else "stop")
            completion_tokens += len(choice.pieces)  # one token per piece: see `text`
        choices.append(choice)
    ttft_s, interval_s, total_s = _timing(rng, behaviour, max(len(c.pieces) for c in choices), slow_factor)
    return ReplyPlan(choices, prompt_tokens, completion_tokens, ttft_s, interval_s, total_s)


def _scripted_text(script: ScriptedReply, inputs: ReplyInputs, rng: random.Random, corpus: Corpus) -> str:
    if script.type == "echo":
        return inputs.prompt
    if script.type == "json":
        if isinstance(inputs.schema, dict):
            return orjson.dumps(arguments_for(inputs.schema, rng)).decode()
        return orjson.dumps({"answer": "".join(corpus.reply(rng, 12))}).decode()
    if script.type == "refusal":
        return script.refusal_text
    return script.text or ""  # fixed; content_filter: what came out before the filter stopped it


def _text_choice(text: str, cap: int, script: ScriptedReply) -> tuple[ChoicePlan, int]:
    """A scripted text cut at token boundaries (and at `cap` tokens, finish `length`); its token count."""
    tokens = cl100k().encode_ordinary(text)
    finish = "content_filter" if script.type == "content_filter" else "stop"
    if len(tokens) > cap:
        tokens, finish = tokens[:cap], "length"
    return ChoicePlan(_fragments(tokens), finish, refusal=script.type == "refusal"), len(tokens)


def _tool_choice(rng: random.Random, tool: ToolRequest, call_id: str) -> ChoicePlan:
    arguments = orjson.dumps(arguments_for(tool.parameters, rng)).decode()
    return ChoicePlan(_token_fragments(arguments), "tool_calls", ToolCallPlan(call_id, tool.name, arguments))


def _token_fragments(text: str) -> list[str]:
    """`text` cut at token boundaries, the way OpenAI streams tool arguments (never splitting a character)."""
    return _fragments(cl100k().encode_ordinary(text))


def _fragments(tokens: list[int]) -> list[str]:
    encoding = cl100k()
    fragments: list[str] = []
    pending = b""
    for token_bytes in encoding.decode_tokens_bytes(tokens):
        pending += token_bytes
        try:
            fragments.append(pending.decode())
        except UnicodeDecodeError:
            continue
        pending = b""
    return fragments


def _timing(
    rng: random.Random, behaviour: ModelBehaviour, pieces: int, slow_factor: float
) -> tuple[float, float, float]:
    if behaviour.instant:
        return 0.0, 0.0, 0.0
    ttft_s = behaviour.ttft_ms.sample(rng) / 1000 * slow_factor
    interval_s = slow_factor / behaviour.tokens_per_second if behaviour.tokens_per_second else 0.0
    if behaviour.latency_ms is not None:
        total_s = behaviour.latency_ms.sample(rng) / 1000 * slow_factor
    else:
        total_s = ttft_s + interval_s * max(pieces - 1, 0)
    return ttft_s, interval_s, total_s


def embedding_delay_s(behaviour: ModelBehaviour, slow_factor: float, *, seed: int, model: str, content: Any) -> float:
    """Embeddings wait `latency_ms`, or `ttft_ms` when no total latency is set."""
    distribution = behaviour.latency_ms if behaviour.latency_ms is not None else behaviour.ttft_ms
    if distribution.always_zero:
        return 0.0
    return distribution.sample(seeded_rng(seed, model, content)) / 1000 * slow_factor
