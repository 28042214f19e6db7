"""The `response_cache` section: where answers are kept, for how long, and which requests may use them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SemanticConfig(_Strict):
    """The semantic layer: the last user turn's embedding (from the model host) searched among answers whose
    everything else (system prompt, earlier turns, tools, parameters, group) is identical."""

    enabled: bool = False
    threshold: float = Field(0.855, gt=0, le=1)  # cosine similarity of the best candidate (bench/cache.py)
    margin: float = Field(0.0, ge=0, le=1)  # the best must beat a different second-best question by this much
    deadline_ms: float = Field(50.0, gt=0, le=10_000)  # the embedding's deadline; missed: a plain miss
    max_entries: int = Field(100_000, ge=1, le=10_000_000)  # vectors in this instance's index
    max_question_chars: int = Field(2_000, ge=16, le=100_000)  # longer questions are only cached exactly


class GroupCacheConfig(_Strict):
    """Per model group: overrides of the cache-wide settings."""

    enabled: bool = True
    ttl_seconds: int | None = Field(None, ge=1, le=30 * 86_400)
    semantic: bool | None = None
    threshold: float | None = Field(None, gt=0, le=1)
    margin: float | None = Field(None, ge=0, le=1)


class ResponseCacheConfig(_Strict):
    """Used by the `response_cache` stage (`pipeline.stages`)."""

    # memory: this instance only, bounded by max_memory_mb; redis: shared by every instance (redis.url)
    store: Literal["memory", "redis"] = "memory"
    namespace: Literal["tenant", "team", "key"] = "tenant"  # who shares answers (never across tenants)
    ttl_seconds: int = Field(3_600, ge=1, le=30 * 86_400)
    max_ttl_seconds: int = Field(86_400, ge=1, le=30 * 86_400)  # the most a client's x-sluice-cache-ttl may ask
    max_memory_mb: float = Field(64.0, gt=0, le=1_000_000)  # memory store: entries beyond it evict the oldest used
    max_entry_bytes: int = Field(256 * 1024, ge=1024, le=64 * 1024 * 1024)  # larger answers are not kept
    max_temperature: float = Field(1.0, ge=0, le=2)  # requests asking a higher temperature are not cached
    allow_tools: bool = False  # requests that offer tools are cached too
    count_hits_in_rate_limits: bool = False  # a hit takes a place in its scopes' requests-per-minute windows
    redis_prefix: str = Field("sluicegate:rc", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")  # gateways sharing a Redis
    redis_timeout_ms: float = Field(50.0, gt=0, le=10_000)  # a Redis call slower than this is a miss
    # scopes that never use the cache ("key:<id>", "team:<id>", "tenant:<id>"); a key's metadata
    # `response_cache: off` does the same
    disabled_for: list[str] = Field(default_factory=list)
    semantic: SemanticConfig = SemanticConfig()
    groups: dict[str, GroupCacheConfig] = Field(default_factory=dict)

    def group(self, name: str) -> GroupCacheConfig:
        return self.groups.get(name) or _DEFAULT_GROUP


_DEFAULT_GROUP = GroupCacheConfig()
