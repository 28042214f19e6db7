"""The execute stage: attempts over the route's chain with retries, fallbacks, breakers and hedging.

A failure before the first token reached the client fails over invisibly, streams included: a stream is
held until its first token arrives. After that, a failure ends the stream with an error event (the server
does that when the chunk iterator raises).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from sluicegate.canonical import ChatChunk, ChatResponse, EmbeddingRequest, EmbeddingResponse, Usage
from sluicegate.catalog import Deployment
from sluicegate.errors import RETRYABLE, ErrorClass, GatewayError, UpstreamError, upstream_to_client
from sluicegate.pipeline.context import RequestContext, SideAttempt
from sluicegate.pipeline.decide import facts_of
from sluicegate.pipeline.records import Attempt, RouteStep
from sluicegate.providers.http import UpstreamClient, UpstreamStream
from sluicegate.providers.sse import SSEParser
from sluicegate.routing.breaker import Outcome
from sluicegate.routing.health import DeploymentHealth
from sluicegate.routing.needs import count_prompt
from sluicegate.routing.retry import backoff_delay
from sluicegate.routing.router import Router
from sluicegate.tokens import count_text

T = TypeVar("T")

# Errors after which another deployment may well succeed (AUTH: another deployment has other credentials).
_FAILOVER = RETRYABLE | {ErrorClass.AUTH}
# Errors worth retrying on the same deployment (a timeout or a bad credential will most likely repeat).
_SAME_DEPLOYMENT = RETRYABLE - {ErrorClass.TIMEOUT}
_BREAKER_OUTCOME: dict[ErrorClass, Outcome] = {
    ErrorClass.RATE_LIMITED: "ignored",  # throttling is backpressure's business, not a sign of ill health
    ErrorClass.CONTEXT_WINDOW: "ignored",
    ErrorClass.CONTENT_POLICY: "ignored",
    ErrorClass.BAD_REQUEST: "ignored",
}
_THROTTLES = frozenset({ErrorClass.RATE_LIMITED, ErrorClass.OVERLOADED})


def client_error(ctx: RequestContext, error: UpstreamError) -> GatewayError:
    """Records the upstream failure on the context and shapes what the client is told."""
    ctx.outcome = str(error.error_class)
    deployment = ctx.deployment.name if ctx.deployment else "unknown"
    return upstream_to_client(error, deployment)


def embedding_input_tokens(value: str | list[str] | list[int] | list[list[int]]) -> int:
    """The input tokens of an embedding request: token arrays as given, text by the gateway's tokenizer."""
    items: list[Any] = [value] if isinstance(value, str) else list(value)
    if items and isinstance(items[0], int):
        return len(items)
    return sum(len(item) if isinstance(item, list) else count_text(item) for item in items)


def _has_token(chunk: ChatChunk) -> bool:
    for choice in chunk.choices:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or delta.get("refusal") or choice.get("finish_reason"):
            return True
    return False


class _Attempt:
    """Bookkeeping of one upstream call: in-flight count, breaker, latency stats, backpressure, usage."""

    __slots__ = ("_clock", "_ctx", "_done", "_health", "deployment", "started", "ttft")

    def __init__(self, ctx: RequestContext, health: DeploymentHealth, clock: Callable[[], float]) -> None:
        self._ctx = ctx
        self._health = health
        self._done = False
        self.deployment = health.deployment
        self._clock = clock
        self.started = clock()
        self.ttft: float | None = None
        health.limit.in_flight += 1
        health.usage.add(requests=1)
        ctx.attempts += 1

    def first_token(self) -> None:
        if self.ttft is None:
            self.ttft = self._clock() - self.started

    def succeed_after_reply(self, usage: Usage | None) -> None:
        """A whole answer arrived: its bookkeeping (breaker, latency statistics, in-flight count) is done by
        `finish` once the client has it, timed as of now; until then the call counts as in flight."""
        self._ctx.after_reply.append(partial(self.finish, None, usage, at=self._clock()))

    def finish(
        self, error: UpstreamError | None, usage: Usage | None = None, cancelled: bool = False, at: float | None = None
    ) -> None:
        if self._done:
            return
        self._done = True
        health = self._health
        now = self._clock() if at is None else at
        duration = now - self.started
        health.limit.in_flight -= 1
        if usage is not None:
            health.usage.add(tokens=usage.total_tokens)
        if cancelled:
            health.breaker.record("ignored")
            self._ctx.attempt_log.append(self._record("cancelled", now))
            return
        if error is None:
            health.breaker.record("success", duration)
            health.limit.on_success()
            health.stats.observe(duration, self.ttft, usage.output_tokens if usage else 0)
            self._ctx.attempt_log.append(self._record("ok", now))
            return
        health.breaker.record(_BREAKER_OUTCOME.get(error.error_class, "failure"), duration)
        if error.error_class in _THROTTLES:
            # A 429 always means "not now"; a 503/529 only when it says for how long (else it may be an
            # outage, which is the breaker's to judge quickly).
            rate_limited = error.error_class is ErrorClass.RATE_LIMITED
            health.throttle(now, error.retry_after if rate_limited or error.retry_after is not None else 0.0)
        self._ctx.attempt_log.append(self._record(str(error.error_class), now))

    def _record(self, outcome: str, now: float) -> Attempt:
        d = self.deployment
        return Attempt(d.name, outcome, d.model, d.family, self.started, now)


class OpenStream:
    """An upstream stream held until its first token; then relayed chunk by chunk."""

    def __init__(self, deployment: Deployment, upstream: UpstreamStream, relay_raw: bool = False) -> None:
        self.deployment = deployment
        self._upstream = upstream
        self._decoder = deployment.adapter.stream_decoder()
        # the provider's events are OpenAI chunks and the client reads OpenAI chunks: each chunk keeps its bytes
        self._keep_raw = relay_raw and getattr(self._decoder, "openai_wire", False)
        framer = getattr(deployment.adapter, "stream_framer", None)  # Bedrock frames its stream in binary
        self._parser = framer() if framer is not None else SSEParser()
        self.held: deque[ChatChunk] = deque()
        self.ended = False
        self.attempt: _Attempt | None = None
        self.usage: Usage | None = None

    async def _read(self) -> bool:
        """Hands the next network read to the parser (its events are split and decoded later, as needed);
        False at the end of the body."""
        data = await self._upstream.read()
        if data is None:
            self.ended = True
            if not self._decoder.done:
                raise UpstreamError(
                    ErrorClass.CONNECTION, "the provider ended the stream before it was complete"
                ) from None
            return False
        self._parser.push(data)
        return True

    def _decode(self, until_token: bool) -> bool:
        """Decodes the events read so far into `held`: all of them, or up to the first one carrying a
        token. True when that token is held."""
        parser, decoder, held = self._parser, self._decoder, self.held
        keep_raw = self._keep_raw
        while (event := parser.next_event()) is not None:
            found = False
            for chunk in decoder.decode(*event):
                if chunk.usage is not None:
                    self.usage = chunk.usage
                if not chunk.model:  # Bedrock's ConverseStream names no model: the client is told which
                    chunk.model = self.deployment.model
                elif keep_raw and event[0] is None:
                    chunk.raw = event[1]
                held.append(chunk)
                found = found or _has_token(chunk)
            if until_token and found:
                return True
        return False

    async def fill_until_first_token(self) -> None:
        """Reads until the first token is held. Events after it in the same read wait unsplit and undecoded,
        so the first token leaves before the rest of a burst is worked on."""
        while not self._decode(until_token=True):
            if not await self._read():
                return

    async def batches(self) -> AsyncIterator[list[ChatChunk]]:
        """The chunks decoded from each network read, together (they are written to the client together)."""
        while True:
            if self.held:  # first, what was decoded up to the first token; then each read's chunks
                batch = list(self.held)
                self.held.clear()
                yield batch
            self._decode(until_token=False)  # the rest of that read
            if self.held:
                continue
            if self.ended or not await self._read():
                return

    def close(self) -> None:
        self._upstream.close()


class Execute:
    name = "execute"

    def __init__(self, client: UpstreamClient, router: Router) -> None:
        self._client = client
        self._router = router

    # -- the three kinds of call ---------------------------------------------------------------------

    async def complete(self, ctx: RequestContext) -> ChatResponse:
        response = await self._run(ctx, self._complete_once, stream=False)
        if not response.model and ctx.deployment is not None:  # Bedrock's Converse names no model
            response.model = ctx.deployment.model
        ctx.usage = response.usage
        return response

    async def embed(self, ctx: RequestContext) -> EmbeddingResponse:
        response = await self._run(ctx, self._embed_once, stream=False)
        if not response.model and ctx.deployment is not None:  # Gemini's batchEmbedContents names none
            response.model = ctx.deployment.model
        if not response.usage_reported:
            # Unknown is not zero: the provider was paid for these tokens, so the gateway counts them
            assert isinstance(ctx.request, EmbeddingRequest)
            response.usage = Usage(input_tokens=embedding_input_tokens(ctx.request.input))
            ctx.usage_estimated = True
        ctx.usage = response.usage
        return response

    async def open_stream(self, ctx: RequestContext) -> AsyncIterator[list[ChatChunk]]:
        """Opens the stream on the first deployment that produces a first token; failures before it fail over."""
        opened = await self._run(ctx, self._open_once, stream=True)
        return self._relay(opened)

    # -- one attempt of each kind ----------------------------------------------------------------------

    async def _complete_once(self, ctx: RequestContext, deployment: Deployment, attempt: _Attempt) -> ChatResponse:
        request = deployment.adapter.chat_request(deployment.endpoint, deployment.model, ctx.chat)
        reply = await self._client.call(deployment.endpoint, request)
        if reply.status >= 400:
            raise deployment.adapter.classify_error(reply.status, reply.headers, reply.body)
        response = deployment.adapter.chat_response(reply.body)
        attempt.succeed_after_reply(response.usage)
        return response

    async def _embed_once(self, ctx: RequestContext, deployment: Deployment, attempt: _Attempt) -> EmbeddingResponse:
        assert isinstance(ctx.request, EmbeddingRequest)
        request = deployment.adapter.embedding_request(deployment.endpoint, deployment.model, ctx.request)
        reply = await self._client.call(deployment.endpoint, request)
        if reply.status >= 400:
            raise deployment.adapter.classify_error(reply.status, reply.headers, reply.body)
        response = deployment.adapter.embedding_response(reply.body)
        attempt.succeed_after_reply(response.usage)
        return response

    async def _open_once(self, ctx: RequestContext, deployment: Deployment, attempt: _Attempt) -> OpenStream:
        request = deployment.adapter.chat_request(deployment.endpoint, deployment.model, ctx.chat)
        timeouts = deployment.endpoint.config.timeouts
        upstream: UpstreamStream | None = None
        try:
            async with asyncio.timeout(timeouts.first_token or timeouts.head(stream=True)):
                upstream = await self._client.open_stream(deployment.endpoint, request)
                if upstream.status >= 400:
                    body = await upstream.read_body()
                    raise deployment.adapter.classify_error(upstream.status, upstream.headers, body)
                opened = OpenStream(deployment, upstream, ctx.relay_raw)
                await opened.fill_until_first_token()
        except BaseException as exc:
            if upstream is not None:
                upstream.close()
            if isinstance(exc, TimeoutError):
                raise UpstreamError(ErrorClass.TIMEOUT, "no first token from the provider in time") from None
            raise
        attempt.first_token()
        opened.attempt = attempt  # the attempt is finished by the relay, when the stream ends
        return opened

    async def _relay(self, opened: OpenStream) -> AsyncIterator[list[ChatChunk]]:
        attempt = opened.attempt
        assert attempt is not None
        error: UpstreamError | None = None
        finished = False
        try:
            async for batch in opened.batches():
                yield batch
            finished = True
        except UpstreamError as exc:
            error = exc
            raise
        finally:
            attempt.finish(error, opened.usage, cancelled=error is None and not finished)
            opened.close()

    # -- attempts over the chain ---------------------------------------------------------------------

    async def _run(
        self,
        ctx: RequestContext,
        once: Callable[[RequestContext, Deployment, _Attempt], Awaitable[T]],
        *,
        stream: bool,
    ) -> T:
        plan = ctx.route_plan
        if plan is None:
            raise RuntimeError("execute stage reached without a route plan")
        router = self._router
        router.retry_budget.on_request()
        group = plan.group
        routing = group.routing
        retry = routing.retry
        queue: deque[Deployment] = deque(plan.chain)
        pending_groups = list(routing.fallbacks)
        failed: set[str] = set()
        same_retries = 0
        last_error: UpstreamError | None = None
        last_deployment: Deployment | None = None
        blocked = list(plan.blocked)
        hedge = routing.hedging.enabled or facts_of(ctx).hedge
        while True:
            deployment = self._next(queue, failed, blocked)
            if deployment is None:
                if not pending_groups:
                    break
                fallback = router.groups([pending_groups.pop(0)])
                if fallback:
                    try:
                        more = router.plan(fallback[0], plan.needs)
                    except GatewayError:
                        continue
                    ticket = ctx.admission
                    queue.extend(more.chain if ticket is None else [d for d in more.chain if ticket.may_call(d)])
                    blocked.extend(more.blocked)
                    ctx.route.append(RouteStep("fallback", f"fallback {fallback[0].name}"))
                continue
            health = router.health_of(deployment)
            if ctx.attempts >= retry.max_attempts or (ctx.attempts > 0 and not router.retry_budget.try_spend()):
                health.breaker.record("ignored")  # give back the slot `_next` took
                break
            ctx.deployment = deployment
            try:
                if hedge and ctx.attempts == 0:
                    return await self._hedged(ctx, once, deployment, queue, failed, blocked, stream)
                return await self._attempt(ctx, once, deployment)
            except UpstreamError as error:
                last_error, last_deployment = error, ctx.deployment or deployment
                failed.add(last_deployment.name)
                by_error = routing.fallbacks_by_error.get(error.error_class)  # type: ignore[call-overload]
                if by_error:
                    queue.clear()
                    pending_groups = list(by_error)
                    ctx.route.append(RouteStep("error_fallback", f"{error.error_class} -> {','.join(by_error)}"))
                    continue
                if error.error_class not in _FAILOVER:
                    break
                if (
                    error.error_class in _SAME_DEPLOYMENT
                    and same_retries < retry.same_deployment
                    and not self._has_alternative(queue, failed)
                    and not pending_groups
                ):
                    delay = backoff_delay(same_retries + 1, retry, error.retry_after, router.rng)
                    if delay is not None:
                        same_retries += 1
                        await asyncio.sleep(delay)
                        failed.discard(last_deployment.name)
                        queue.appendleft(last_deployment)
        if last_error is not None:
            ctx.deployment = last_deployment
            raise client_error(ctx, last_error)
        ctx.outcome = "no_healthy_deployment"
        wait = min((h.breaker.retry_in() for h in blocked), default=1.0)
        raise GatewayError(
            503,
            f"No healthy deployment of '{group.name}' is available right now; the gateway is keeping "
            "traffic off failing deployments. Retry shortly.",
            type="overloaded_error",
            code="no_healthy_deployment",
            headers={"retry-after": str(max(1, math.ceil(wait)))},
        )

    def _next(self, queue: deque[Deployment], failed: set[str], blocked: list[DeploymentHealth]) -> Deployment | None:
        """The next deployment whose breaker lets a call through (taking a half-open probe slot if so)."""
        while queue:
            deployment = queue.popleft()
            if deployment.name in failed:
                continue
            health = self._router.health_of(deployment)
            if health.breaker.acquire():
                return deployment
            blocked.append(health)
        return None

    def _has_alternative(self, queue: deque[Deployment], failed: set[str]) -> bool:
        """Whether another deployment in the chain could take a call now (not failed, breaker allowing)."""
        health = self._router.health
        return any(d.name not in failed and health[d.name].breaker.would_allow() for d in queue)

    async def _attempt(
        self,
        ctx: RequestContext,
        once: Callable[[RequestContext, Deployment, _Attempt], Awaitable[T]],
        deployment: Deployment,
    ) -> T:
        attempt = _Attempt(ctx, self._router.health_of(deployment), self._router.clock)
        try:
            return await once(ctx, deployment, attempt)
        except UpstreamError as error:
            attempt.finish(error)
            raise
        except asyncio.CancelledError:
            attempt.finish(None, cancelled=True)
            raise
        except BaseException:
            attempt.finish(None, cancelled=True)
            raise

    # -- hedging -------------------------------------------------------------------------------------

    async def _hedged(
        self,
        ctx: RequestContext,
        once: Callable[[RequestContext, Deployment, _Attempt], Awaitable[T]],
        first: Deployment,
        queue: deque[Deployment],
        failed: set[str],
        blocked: list[DeploymentHealth],
        stream: bool,
    ) -> T:
        """Asks a second deployment when the first has not answered by its p95; the first answer wins."""
        plan = ctx.route_plan
        assert plan is not None
        hedging = plan.group.routing.hedging
        delay_s = (hedging.delay_ms / 1000) if hedging.delay_ms else self._router.health_of(first).stats.p95(stream)
        if delay_s is None:  # no samples yet: nothing to say the first deployment is slow
            return await self._attempt(ctx, once, first)
        delay_s = max(delay_s, hedging.min_delay_ms / 1000)
        tasks: dict[asyncio.Task[T], Deployment] = {}
        loop = asyncio.get_running_loop()
        tasks[loop.create_task(self._attempt(ctx, once, first))] = first
        errors: list[tuple[UpstreamError, Deployment]] = []
        try:
            done, _ = await asyncio.wait(tasks, timeout=delay_s)
            if not done:
                second = self._next(queue, failed, blocked)
                if second is not None:
                    if self._router.retry_budget.try_spend():
                        tasks[loop.create_task(self._attempt(ctx, once, second))] = second
                        ctx.route.append(RouteStep("hedge", f"hedged to {second.name} after {delay_s * 1000:.0f}ms"))
                    else:
                        self._router.health_of(second).breaker.record("ignored")
                        queue.appendleft(second)
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is None:
                        ctx.deployment = tasks[task]
                        await self._settle_losers(ctx, tasks, task)
                        return task.result()
                    if isinstance(exc, UpstreamError):
                        errors.append((exc, tasks[task]))
                    else:
                        raise exc
            error, deployment = errors[0]
            ctx.deployment = deployment
            for _, other in errors[1:]:
                failed.add(other.name)
            raise error
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()

    async def _settle_losers(
        self, ctx: RequestContext, tasks: dict[asyncio.Task[Any], Deployment], winner: Any
    ) -> None:
        """Cancels the slower call and keeps what it cost: reported usage, or the counted prompt at least."""
        plan = ctx.route_plan
        assert plan is not None
        for task, deployment in tasks.items():
            if task is winner:
                continue
            if not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
            if task.cancelled() or task.exception() is not None:
                if task.cancelled():
                    assert ctx.request is not None
                    prompt = count_prompt(plan.needs, ctx.request)
                    ctx.side_attempts.append(SideAttempt(deployment, Usage(input_tokens=prompt), estimated=True))
                continue
            result = task.result()
            if isinstance(result, OpenStream):
                assert ctx.request is not None
                prompt = count_prompt(plan.needs, ctx.request)
                if result.attempt is not None:
                    result.attempt.finish(None, cancelled=True)
                result.close()
                ctx.side_attempts.append(SideAttempt(deployment, Usage(input_tokens=prompt), estimated=True))
            else:
                ctx.side_attempts.append(SideAttempt(deployment, result.usage, estimated=False))
