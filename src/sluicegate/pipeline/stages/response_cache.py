"""The response cache stage: answers a repeated request from the cache (exact, then by meaning when the
semantic layer is on) and keeps each eligible answer, whole or streamed, once it has been sent.

It sits before admission, so a hit is neither charged to a budget nor routed: the ledger records it with no
provider tokens, a cost of 0, its cache status and the cost it saved. Every answer says what happened in
`x-sluice-cache` (hit-exact, hit-semantic, miss or skip).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from sluicegate.cache.config import GroupCacheConfig, ResponseCacheConfig
from sluicegate.cache.entry import StreamCollector, complete, dump, load
from sluicegate.cache.key import CacheKey, group_fingerprint, namespace_of, request_digest
from sluicegate.cache.metrics import CacheCollector, CacheCounters
from sluicegate.cache.store import AnswerStore, MemoryStore, RedisStore
from sluicegate.canonical import ChatChunk, ChatRequest, ChatResponse
from sluicegate.clock import Clock
from sluicegate.errors import bad_request
from sluicegate.pipeline.context import RequestContext
from sluicegate.pipeline.runner import Answer, LocalReply
from sluicegate.pipeline.stages import Slot, StageServices

if TYPE_CHECKING:
    from sluicegate.cache.semantic import Question, SemanticLayer

SLOT: Slot = "request"
log = logging.getLogger("sluicegate.response_cache")

STATUS_HEADER = "x-sluice-cache"
TTL_HEADER = "x-sluice-cache-ttl"
KEY_HEADER = "x-sluice-cache-key"  # the entry's digest: what `invalidate --key` takes
SIMILARITY_HEADER = "x-sluice-cache-similarity"
SKIP_HEADER = "x-sluice-cache-skip-reason"
OPT_OUT_METADATA = "response_cache"  # a key's metadata `response_cache: off`


@dataclass(slots=True)
class Pending:
    """The cache's business with one request that was looked up: where its answer goes once it is sent."""

    key: CacheKey
    ttl: int  # 0: not kept
    collector: StreamCollector | None = None
    response: ChatResponse | None = None
    question: Question | None = None  # for the semantic layer: the question, its facts and its embedding


class ResponseCache:
    name = "response_cache"
    edits_chunks = False  # it reads a stream's chunks to keep the answer

    def __init__(
        self,
        config: ResponseCacheConfig,
        store: AnswerStore,
        clock: Clock,
        fingerprints: dict[str, str],
        semantic: SemanticLayer | None = None,
        services: StageServices | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.semantic = semantic
        self._services = services
        self.counters = CacheCounters()
        self._clock = clock
        self._fingerprints = fingerprints  # group -> its deployments' fingerprint
        self._disabled = frozenset(config.disabled_for)
        self._max_bytes = config.max_entry_bytes

    # -- lookup ---------------------------------------------------------------------------------------

    async def on_request(self, ctx: RequestContext) -> LocalReply | None:
        group = ctx.group
        if ctx.endpoint != "chat" or group is None:
            return None
        request = ctx.chat
        settings = self.config.group(group.name)
        reason, lookup, ttl = self._eligibility(ctx, request, settings)
        if reason is not None:
            self._skip(ctx, group.name, reason)
            return None
        if not lookup and not ttl:
            self._skip(ctx, group.name, "cache-control")
            return None
        namespace = namespace_of(ctx.principal, self.config.namespace)
        fingerprint = self._fingerprints.get(group.name, "")
        key = CacheKey(namespace, group.name, request_digest(request, group.name, fingerprint))
        result = "miss" if lookup else "skip"
        question = None
        if lookup:
            data = await self.store.get(key.store_key)
            if data is not None:
                return await self._hit(ctx, key, data, "hit-exact")
        semantic = self.semantic
        on = settings.semantic if settings.semantic is not None else self.config.semantic.enabled
        if semantic is not None and on:
            from sluicegate.cache.semantic import context_messages

            question = semantic.question(
                request, namespace, request_digest(request, group.name, fingerprint, context_messages(request))
            )
            if question is not None:
                question = await semantic.embed(question)
            if question is not None and lookup:
                threshold = settings.threshold or self.config.semantic.threshold
                margin = settings.margin if settings.margin is not None else self.config.semantic.margin
                match = semantic.search(question, threshold, margin)
                if match.verdict == "hit" and match.key is not None:
                    data = await self.store.get(match.key)
                    if data is not None:
                        reply = await self._hit(ctx, key, data, "hit-semantic")
                        ctx.response_headers[KEY_HEADER] = match.key.rsplit(":", 1)[1]
                        ctx.response_headers[SIMILARITY_HEADER] = f"{match.similarity:.3f}"
                        return reply
                    semantic.index.remove(match.key)  # expired or invalidated: its question goes too
                elif match.verdict == "near-miss":
                    result = "near-miss"  # a miss for the client; a candidate refused on a fact, counted apart
                    if self._services is not None:
                        self._services.verdict(ctx, self.name, "near-miss", f"{match.reason} ({match.similarity:.3f})")
        self.counters.lookups[(group.name, result)] += 1
        ctx.cache_status = "miss" if lookup else "skip"
        ctx.response_headers[STATUS_HEADER] = ctx.cache_status
        ctx.response_headers[KEY_HEADER] = key.digest
        if ttl:
            ctx.response_cache = Pending(key, ttl, question=question)
        return None

    def _eligibility(
        self, ctx: RequestContext, request: ChatRequest, settings: GroupCacheConfig
    ) -> tuple[str | None, bool, int]:
        """(why not, None if eligible; whether to look up; the TTL of the answer to keep, 0 for none)."""
        if not settings.enabled:
            return "group", False, 0
        principal = ctx.principal
        if principal is not None:
            if principal.metadata.get(OPT_OUT_METADATA, "").lower() in ("off", "false", "0", "no"):
                return "opt-out", False, 0
            if self._disabled and any(f"{s.kind}:{s.id}" in self._disabled for s in principal.scopes):
                return "opt-out", False, 0
            if self._disabled and f"key:{principal.key_id}" in self._disabled:
                return "opt-out", False, 0
        if any(category.startswith(("pii", "secret")) for category in ctx.guardrail_categories):
            return "pii", False, 0  # the firewall found personal data or a secret in it: never kept, never shared
        params = request.params
        if params.get("tools") and not self.config.allow_tools:
            return "tools", False, 0
        temperature = params.get("temperature")
        if isinstance(temperature, int | float) and temperature > self.config.max_temperature:
            return "temperature", False, 0
        headers = ctx.headers
        lookup, keep = True, True
        control = headers.get("cache-control")
        if control:
            directives = {d.strip().split("=", 1)[0].lower() for d in control.split(",")}
            lookup = "no-cache" not in directives
            keep = "no-store" not in directives
        ttl = settings.ttl_seconds or self.config.ttl_seconds
        asked = headers.get(TTL_HEADER)
        if asked is not None:
            if not asked.strip().isdigit():
                raise bad_request(
                    f"The {TTL_HEADER} header must be a whole number of seconds (0 to {self.config.max_ttl_seconds}).",
                    code="invalid_cache_ttl",
                )
            ttl = min(int(asked), self.config.max_ttl_seconds)
        return None, lookup, ttl if keep else 0

    def _skip(self, ctx: RequestContext, group: str, reason: str) -> None:
        self.counters.lookups[(group, "skip")] += 1
        ctx.cache_status = "skip"
        ctx.response_headers[STATUS_HEADER] = "skip"
        ctx.response_headers[SKIP_HEADER] = reason

    async def _hit(self, ctx: RequestContext, key: CacheKey, data: bytes, status: str) -> LocalReply:
        if self.config.count_hits_in_rate_limits and self._services is not None:
            count = self._services.count_request
            if count is not None:
                await count(ctx)  # over a requests-per-minute limit: the same 429 as any request
        entry = load(data)
        group = key.group
        self.counters.lookups[(group, status)] += 1
        if entry.cost_micros:
            self.counters.saved_micros[group] += entry.cost_micros
        ctx.cache_status = status
        ctx.saved_micros = entry.cost_micros
        ctx.response_headers[STATUS_HEADER] = status
        ctx.response_headers[KEY_HEADER] = key.digest
        return LocalReply(response=entry.response, outcome="ok")

    # -- keeping the answer -----------------------------------------------------------------------------

    async def on_response(self, ctx: RequestContext, response: Answer) -> Answer:
        pending = ctx.response_cache
        if pending is not None and type(response) is ChatResponse:
            pending.response = response
        return response

    def on_chunks(self, ctx: RequestContext, batch: list[ChatChunk]) -> list[ChatChunk]:
        pending = ctx.response_cache
        if pending is not None:
            collector = pending.collector
            if collector is None:
                collector = pending.collector = StreamCollector()
            for chunk in batch:
                collector.add(chunk)
        return batch

    def on_end(self, ctx: RequestContext) -> list[ChatChunk]:
        return []

    async def on_finish(self, ctx: RequestContext) -> None:
        pending = ctx.response_cache
        if pending is None or ctx.outcome != "ok" or ctx.status != 200 or ctx.cut_off or ctx.error_code:
            return
        group = ctx.group
        if group is None or group.name != pending.key.group or ctx.deployment not in group.deployments:
            return  # answered by another group (a downgrade, a fallback): not this request's answer to keep
        response = pending.response
        if response is None and pending.collector is not None:
            response = pending.collector.response()
        if response is None or not complete(response):
            return
        data = dump(response, ctx.cost_micros, self._clock.now())
        if len(data) > self._max_bytes:
            return
        await self.store.put(pending.key.store_key, data, pending.ttl)
        self.counters.stored[group.name] += 1
        question = pending.question
        if question is not None and self.semantic is not None and question.vector is not None:
            self.semantic.keep(question, pending.key.store_key)
            share = getattr(self.store, "share_question", None)
            if share is not None:
                await share(question.bucket, pending.key.store_key, question.vector.tobytes(), question.text)

    # -- operations -----------------------------------------------------------------------------------

    async def invalidate(self, namespace: str | None = None, group: str | None = None, key: str | None = None) -> int:
        """Drops the answers of a namespace (a tenant: every namespace in it), a group, or one entry."""
        return await self.store.invalidate(namespace, group, key)

    def sizes(self) -> tuple[int | None, int | None, int | None]:
        store = self.store
        vectors = len(self.semantic.index) if self.semantic is not None else None
        if isinstance(store, MemoryStore):
            return len(store), store.bytes, vectors
        return None, None, vectors

    async def start(self) -> None:
        follow = getattr(self.store, "follow_questions", None)
        if self.semantic is not None and follow is not None:
            follow(self.semantic.keep_shared)  # the questions other instances keep, in this one's index

    async def stop(self) -> None:
        await self.store.close()


def build_store(config: ResponseCacheConfig, services: StageServices) -> AnswerStore:
    if config.store == "redis":
        from sluicegate.state.connect import connect

        url = services.config.redis.url
        assert url is not None, "checked with the configuration"
        timeout = config.redis_timeout_ms / 1000
        client = connect(url, timeout=max(timeout, 2.0))  # the follower's blocking read waits up to 0.5 s
        return RedisStore(client, config.redis_prefix, timeout, config.semantic.max_entries)
    return MemoryStore(int(config.max_memory_mb * 1024 * 1024), services.clock.monotonic)


def build_semantic(config: ResponseCacheConfig, services: StageServices) -> SemanticLayer | None:
    """The semantic layer, when it is on and can work: it needs the model host (and, for the host's local
    backend, the `local-models` extra); without them the cache is exact only, which is logged once."""
    semantic = config.semantic
    wanted = semantic.enabled or any(g.semantic for g in config.groups.values())
    if not wanted:
        return None
    host = services.model_host
    if host is None:
        log.warning("response cache: semantic lookups need a model_host section; the cache is exact only")
        return None
    if getattr(host.config.embeddings, "backend", None) == "local" and find_spec("wordllama") is None:
        log.warning(
            "response cache: semantic lookups need the local embedding model (pip install 'sluicegate[local-models]');"
            " the cache is exact only"
        )
        return None
    from sluicegate.cache.semantic import SemanticLayer

    vectors: Any = host.embedder(fail="open", deadline_ms=semantic.deadline_ms)  # late: a plain miss
    return SemanticLayer(vectors, semantic.max_entries, semantic.max_question_chars)


def create(services: StageServices) -> ResponseCache:
    config = services.config.response_cache or ResponseCacheConfig()
    catalog = services.catalog
    fingerprints = {group.name: group_fingerprint(group) for group in catalog} if catalog is not None else {}
    semantic = build_semantic(config, services)
    cache = ResponseCache(config, build_store(config, services), services.clock, fingerprints, semantic, services)
    if services.registry is not None:
        services.registry.register(CacheCollector(cache.counters, cache.sizes))
    return cache
