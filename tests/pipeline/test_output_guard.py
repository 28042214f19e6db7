"""The output guard stage on the pipeline's hooks, without processes: what a whole answer and a stream of
several choices become, and what the context records."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse, EmbeddingResponse, Usage
from sluicegate.catalog import Deployment
from sluicegate.config.schema import GatewayConfig
from sluicegate.errors import GatewayError
from sluicegate.events import EventBus
from sluicegate.guard.redact import Redactor
from sluicegate.pipeline.bill import request_bill
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import ChunkSource, Pipeline
from sluicegate.pipeline.stages import StageServices
from sluicegate.pipeline.stages.output_guard import OutputGuard, create
from sluicegate.pricing import Price


def stage(**settings: object) -> OutputGuard:
    config = GatewayConfig.model_validate({"pipeline": {"stages": ["output_guard"]}, "output_guard": settings})
    return create(StageServices(config, EventBus()))


def context(text: str = "hi") -> RequestContext:
    return RequestContext("req-1", "chat", "openai", {}, ChatRequest("m", [{"role": "user", "content": text}]))


async def test_a_whole_answer_is_redacted_and_the_request_placeholders_restored_in_text_and_tool_calls() -> None:
    ctx = context()
    ctx.redactor = Redactor(restore=True)
    ctx.redactor.redact_all('mail jane@example.com, db postgres://app:Tr0u"b4x@db/app')
    message = {
        "role": "assistant",
        "content": "Writing to <EMAIL_1>; also found bob@example.org",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "send", "arguments": '{"dsn": "postgres://app:<PASSWORD_1>@db/app"}'},
            }
        ],
    }
    response = ChatResponse("r", "m", 0, [{"index": 0, "message": message, "finish_reason": "stop"}], Usage())
    await stage().on_response(ctx, response)
    assert message["content"] == "Writing to jane@example.com; also found <EMAIL_2>"
    arguments = orjson.loads(message["tool_calls"][0]["function"]["arguments"])  # type: ignore[index]
    assert arguments == {"dsn": 'postgres://app:Tr0u"b4x@db/app'}, "restored as JSON string content"
    assert ctx.guardrail_action == "redact" and ctx.guardrail_categories == ("pii_email",)
    assert ctx.response_headers["x-sluice-guardrail"] == "redacted; categories=pii_email"
    assert [v.stage for v in ctx.verdicts] == ["output_guard"]


async def test_personal_data_in_tool_call_arguments_is_redacted_and_the_arguments_stay_json() -> None:
    args = '{"to": "bob@example.org", "card": 4111111111111111, "note": "hi", "n": 3}'
    call = {"id": "c1", "type": "function", "function": {"name": "pay", "arguments": args}}
    untouched = '{"city":  "Paris", "days": 3}'
    other = {"id": "c2", "type": "function", "function": {"name": "weather", "arguments": untouched}}
    message = {"role": "assistant", "content": None, "tool_calls": [call, other]}
    ctx = context()
    await stage().on_response(ctx, ChatResponse("r", "m", 0, [{"index": 0, "message": message}], Usage()))
    assert orjson.loads(call["function"]["arguments"]) == {"to": "<EMAIL_1>", "card": "<CARD_1>", "note": "hi", "n": 3}
    assert other["function"]["arguments"] == untouched, "arguments with nothing to redact are kept as written"
    assert ctx.guardrail_categories == ("pii_card", "pii_email")


def chunk(*deltas: tuple[int, str], finish: bool = False) -> ChatChunk:
    choices = [
        {"index": i, "delta": {"content": text}, "finish_reason": "stop" if finish else None} for i, text in deltas
    ]
    return ChatChunk("r", "m", 0, choices)


def test_each_choice_of_a_stream_has_its_own_hold_back_and_what_is_held_comes_out_before_its_end() -> None:
    guard, ctx = stage(), context()
    out = guard.on_chunks(ctx, [chunk((0, "Card 4111 1111"), (1, "No card"))])
    out += guard.on_chunks(ctx, [chunk((0, " 1111 1111"), (1, " here"))])
    out += guard.on_chunks(ctx, [chunk((0, ""), (1, ""), finish=True)])
    out += guard.on_end(ctx)
    text = {0: "", 1: ""}
    for c in out:
        for choice in c.choices:
            text[choice["index"]] += choice["delta"].get("content") or ""
    assert text == {0: "Card <CARD_1>", 1: "No card here"}
    assert out[-1].choices[0]["finish_reason"] == "stop", "the held text comes before the end of its choice"
    assert ctx.guardrail_categories == ("pii_card",)


def test_a_configuration_that_redacts_only_secrets_leaves_personal_data() -> None:
    guard, ctx = stage(redact=["secret_*"]), context()
    out = guard.on_chunks(ctx, [chunk((0, "mail jane@example.com key AKIAZ7QWERTY2345ABCD ok"))]) + guard.on_end(ctx)
    assert "".join(c.choices[0]["delta"]["content"] for c in out) == "mail jane@example.com key <AWS_ACCESS_KEY_1> ok"


def test_settings_without_the_stage_or_with_an_unknown_category_are_refused() -> None:
    config = GatewayConfig.model_validate({"output_guard": {"restore": True}})
    assert (("output_guard",), "output_guard is configured but not in pipeline.stages") in config.reference_problems()
    with pytest.raises(ValidationError, match="'injection' is not a PII or secret category"):
        GatewayConfig.model_validate({"output_guard": {"redact": ["injection"]}})


async def test_without_a_firewall_the_stage_can_redact_requests_itself_and_restore_the_answer() -> None:
    guard = stage(redact_requests=True, restore=True)
    ctx = context("call me on +44 20 7946 0958 or mail jane@example.com")
    ctx.request.messages.append({"role": "assistant", "content": "noted: jane@example.com"})  # type: ignore[union-attr]
    await guard.on_request(ctx)
    assert ctx.chat.messages[0]["content"] == "call me on <PHONE_1> or mail <EMAIL_1>"
    assert ctx.chat.messages[1]["content"] == "noted: jane@example.com", "the model's own turns are left"
    assert ctx.redactor is not None and ctx.redactor.restore
    message = {"role": "assistant", "content": "I will call <PHONE_1>."}
    await guard.on_response(ctx, ChatResponse("r", "m", 0, [{"index": 0, "message": message}], Usage()))
    assert message["content"] == "I will call +44 20 7946 0958."


async def test_a_request_another_stage_redacted_is_left_to_it() -> None:
    ctx = context("mail jane@example.com")
    ctx.redactor = Redactor()
    await stage(redact_requests=True).on_request(ctx)
    assert ctx.chat.messages[0]["content"] == "mail jane@example.com"


class JsonUpstream:
    """Answers each whole request with the next of `texts`, as a provider at a known price."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.calls = 0
        self.deployment = Deployment("sim/m", "m", "chat", None, price=Price(Decimal("1"), Decimal("2")))  # type: ignore[arg-type]

    async def complete(self, ctx: RequestContext) -> ChatResponse:
        self.calls += 1
        ctx.deployment = self.deployment
        ctx.usage = Usage(100, 10)
        message = {"role": "assistant", "content": self.texts.pop(0)}
        return ChatResponse("r", "m", 0, [{"index": 0, "message": message, "finish_reason": "stop"}], ctx.usage)

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        raise AssertionError("not used")

    async def open_stream(self, ctx: RequestContext) -> ChunkSource:
        raise AssertionError("not used")


def json_context() -> RequestContext:
    request = ChatRequest(
        "m", [{"role": "user", "content": "json"}], params={"response_format": {"type": "json_object"}}
    )
    return RequestContext("req-1", "chat", "openai", {}, request)


async def test_json_check_retry_asks_once_more_and_bills_both_answers() -> None:
    upstream = JsonUpstream("Sure! here it is", '{"ok": true}')
    ctx = json_context()
    answer = await Pipeline([stage(json_check="retry")], upstream)._answer(ctx)
    assert isinstance(answer, ChatResponse) and answer.choices[0]["message"]["content"] == '{"ok": true}'
    assert upstream.calls == 2
    bill = request_bill(ctx)
    assert bill.usage == Usage(200, 20), "the refused answer's tokens are billed beside the new one"
    assert bill.micros == 2 * upstream.deployment.price.cost_micros(Usage(100, 10))  # type: ignore[union-attr]


async def test_json_check_retry_answers_the_error_when_the_second_answer_is_not_json_either() -> None:
    upstream = JsonUpstream("no", "still no")
    with pytest.raises(GatewayError) as info:
        await Pipeline([stage(json_check="retry")], upstream)._answer(json_context())
    assert info.value.status == 502 and info.value.code == "invalid_json_output"
    assert upstream.calls == 2


def test_text_held_when_the_last_chunk_carries_both_text_and_the_finish_keeps_its_order() -> None:
    guard, ctx = stage(), context()
    first = ChatChunk("s1", "m", 7, [{"index": 0, "delta": {"content": "see you"}, "finish_reason": None}])
    last = ChatChunk("s1", "m", 7, [{"index": 0, "delta": {"content": " soon"}, "finish_reason": "stop"}])
    out = guard.on_chunks(ctx, [first]) + guard.on_chunks(ctx, [last]) + guard.on_end(ctx)
    assert "".join(c.choices[0]["delta"].get("content") or "" for c in out) == "see you soon"
    assert out[-1].choices[0]["finish_reason"] == "stop" and out[-1].id == "s1"
