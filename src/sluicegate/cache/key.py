"""Cache keys: a hash of everything in a request that changes its answer, in canonical JSON (sorted keys, so
key order never matters), within a namespace, and a fingerprint of the model group's deployments so that a
change of deployments or model versions in the configuration leaves the old answers unreachable."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.canonical import ChatRequest
from sluicegate.catalog import ModelGroup
from sluicegate.principal import Principal

VERSION = "rc1"  # changes when the key's recipe changes, so old entries are never read with a new meaning
# Request fields that do not change the answer (who asks, how it is delivered, provider bookkeeping): the
# only ones left out of the key. Everything else, known to the gateway or not, is in it.
NOT_IN_KEY = frozenset(
    {"user", "metadata", "stream_options", "store", "prompt_cache_key", "safety_identifier", "service_tier"}
)
_DUMP = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def group_fingerprint(group: ModelGroup) -> str:
    """What the group's answers depend on in the configuration: each deployment's provider and model."""
    parts = sorted((d.name, d.endpoint.name, d.model) for d in group.deployments)
    return hashlib.blake2b(orjson.dumps(parts), digest_size=8).hexdigest()


def namespace_of(principal: Principal | None, kind: str) -> str:
    """Who shares answers: the tenant by default, or the team, or the key (always within its tenant)."""
    if principal is None:
        return "tenant:default"
    tenant = principal.tenant_id or "default"
    if kind == "team" and principal.team_id:
        return f"tenant:{tenant}/team:{principal.team_id}"
    if kind == "key":
        return f"tenant:{tenant}/key:{principal.key_id}"
    return f"tenant:{tenant}"


def short(text: str) -> str:
    """A fixed-length, pattern-safe id for a namespace or group name in a store's key."""
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True, slots=True)
class CacheKey:
    namespace: str
    group: str
    digest: str  # hex: the request's hash

    @property
    def store_key(self) -> str:
        """`<tenant>:<namespace>:<group>:<digest>`, each name hashed: a store can find every entry of a
        tenant, a namespace, a group or a digest by pattern."""
        tenant = self.namespace.partition("/")[0]
        return f"{short(tenant)}:{short(self.namespace)}:{short(self.group)}:{self.digest}"


def pattern(namespace: str | None, group: str | None, digest: str | None) -> tuple[str, str, str, str]:
    """The four parts of the store keys an invalidation matches, "*" for any. A namespace without "/" (a
    tenant) matches every namespace inside it (its teams' and keys')."""
    tenant = space = "*"
    if namespace is not None:
        if "/" in namespace:
            space = short(namespace)
        else:
            tenant = short(namespace)
    return tenant, space, short(group) if group is not None else "*", digest or "*"


def _params(request: ChatRequest) -> dict[str, Any]:
    params = request.params
    if not NOT_IN_KEY.isdisjoint(params):
        return {k: v for k, v in params.items() if k not in NOT_IN_KEY}
    return params


def request_digest(request: ChatRequest, group: str, fingerprint: str, messages: list[Any] | None = None) -> str:
    """The hash of the canonical request: group, its deployments, every message (or `messages` in their
    place), max_tokens and every parameter but the few in NOT_IN_KEY."""
    payload = (
        VERSION,
        group,
        fingerprint,
        request.messages if messages is None else messages,
        request.max_tokens,
        _params(request),
    )
    return hashlib.blake2b(orjson.dumps(payload, option=_DUMP), digest_size=16).hexdigest()
