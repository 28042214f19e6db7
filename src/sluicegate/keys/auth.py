"""The auth stage for virtual keys: key -> cached `KeyPolicy` -> principal, model and max_tokens checks.

A warm lookup is a SHA-256 and a dict read; the store is read only on a miss or after the cache TTL, one
query per key however many requests miss at once. Revocation evicts entries at once (locally and, with
Redis, on every instance); without Redis the TTL bounds how long another instance may still admit a key.
While the store is away, cached keys are served from the cache without waiting for it (up to a maximum
staleness; the first requests after it went away wait `refresh_wait`, not the store's timeout) and keys it
has not seen fail fast; one background lookup at a time finds out when it is back.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Iterable, Mapping

from sluicegate.canonical import ChatRequest
from sluicegate.errors import GatewayError, unauthorized
from sluicegate.keys.clock import Clock, system_clock, utc
from sluicegate.keys.material import key_hash
from sluicegate.keys.policy import KeyPolicy, policy_of
from sluicegate.pipeline.admission import announce_clamp
from sluicegate.pipeline.auth import bearer_token
from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import MASTER, Principal
from sluicegate.store.directory import Directory

log = logging.getLogger("sluicegate.keys")

_MISSING_KEY = "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY'."


def model_not_allowed(model: str, allowed: Iterable[str]) -> GatewayError:
    return GatewayError(
        403,
        f"This API key is not allowed to use the model '{model}' (allowed: {', '.join(allowed)}).",
        type="permission_error",
        code="model_not_allowed",
        param="model",
    )


def region_conflict(conflict: str) -> GatewayError:
    """403: the key's standing configuration, not anything in the request, rules out every region."""
    return GatewayError(
        403,
        f"This API key's data-residency restrictions leave no region to serve from ({conflict}); "
        "an administrator must change them.",
        type="permission_error",
        code="region_conflict",
    )


def auth_unavailable() -> GatewayError:
    return GatewayError(
        503,
        "The gateway cannot check API keys right now (key store unavailable); retry shortly.",
        type="server_error",
        code="auth_unavailable",
        headers={"retry-after": "1"},
    )


class KeyCache:
    """Bounded map from key hash to (policy or None for an unknown key, time fetched)."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[KeyPolicy | None, float]] = {}

    def get(self, digest: str) -> tuple[KeyPolicy | None, float] | None:
        return self._entries.get(digest)

    def put(self, digest: str, policy: KeyPolicy | None, now: float) -> None:
        entries = self._entries
        entries.pop(digest, None)
        if len(entries) >= self.max_entries:
            del entries[next(iter(entries))]  # the oldest fetch goes first
        entries[digest] = (policy, now)

    def evict(self, digests: Iterable[str]) -> None:
        for digest in digests:
            self._entries.pop(digest, None)

    def clear(self) -> None:
        self._entries.clear()

    def expire_all(self, now: float) -> None:
        """Every entry is due for a fresh lookup at its next use, but stays what a store outage serves
        (stale, within the maximum staleness, counted from now at the latest)."""
        due = now - self.ttl
        entries = self._entries
        for digest, (policy, fetched) in entries.items():
            if fetched > due:
                entries[digest] = (policy, due)

    def __len__(self) -> int:
        return len(self._entries)


class VirtualKeyAuth:
    name = "auth"

    def __init__(
        self,
        master_key: str,
        directory: Directory,
        *,
        ttl: float = 4.0,
        max_entries: int = 100_000,
        max_stale: float = 300.0,
        retry_seconds: float = 1.0,
        refresh_wait: float = 0.1,
        clock: Clock = system_clock,
    ) -> None:
        self._master_key = master_key.encode()
        self._directory = directory
        self._clock = clock
        self.cache = KeyCache(ttl, max_entries)
        self.max_stale = max_stale  # how long past its TTL a cached key is served while the store is away
        self.refresh_wait = refresh_wait  # how long a known key's request waits for its refresh
        self._retry_seconds = retry_seconds  # how often to look again while the store is away
        self._inflight: dict[str, asyncio.Future[KeyPolicy | None]] = {}
        self.store_down_since: float | None = None
        self._next_probe = 0.0
        self._probes: set[asyncio.Task[KeyPolicy | None]] = set()

    async def on_request(self, ctx: RequestContext) -> None:
        principal, policy = await self._resolve(ctx.headers)
        ctx.principal = principal
        if policy is None:
            return
        if policy.region_conflict is not None:
            raise region_conflict(policy.region_conflict)
        request = ctx.request
        if request is None:
            return
        if not policy.allows_model(request.model):
            raise model_not_allowed(request.model, principal.allowed_models)
        cap = principal.max_tokens_cap
        if cap is not None and isinstance(request, ChatRequest):
            if request.max_tokens is not None and request.max_tokens > cap:
                announce_clamp(ctx, request.max_tokens, cap, "key_cap")
                request.max_tokens = cap
            elif request.max_tokens is None:
                request.max_tokens = cap

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        principal, _ = await self._resolve(headers)
        return principal

    def evict(self, digests: Iterable[str]) -> None:
        self.cache.evict(digests)

    def revalidate(self) -> None:
        """Revocations may have been missed (their channel was lost): each cached key is looked up again at
        its next use. Not forgotten: while the store is away too, known keys are still served from the
        cache (a Redis restart and a store outage together must not refuse every known key)."""
        self.cache.expire_all(self._clock())

    async def _resolve(self, headers: Mapping[str, str]) -> tuple[Principal, KeyPolicy | None]:
        token = bearer_token(headers)
        if token is None:
            raise unauthorized(_MISSING_KEY)
        encoded = token.encode()
        if hmac.compare_digest(encoded, self._master_key):
            return MASTER, None
        digest = key_hash(token)
        now = self._clock()
        cached = self.cache.get(digest)
        if cached is not None and now - cached[1] < self.cache.ttl:
            policy = cached[0]
        elif self.store_down_since is None:
            if cached is not None and cached[0] is not None and now - cached[1] < self.cache.ttl + self.max_stale:
                policy = await self._refresh(digest, now, cached)
            else:
                policy = await self._fetch(digest, now, cached)
        elif cached is not None and now - cached[1] < self.cache.ttl + self.max_stale:
            policy = cached[0]  # stale while the store is away: served at once, checked in the background
            self._probe(digest, now, cached)
        elif now >= self._next_probe:
            self._next_probe = now + self._retry_seconds
            policy = await self._fetch(digest, now, cached)
        else:
            raise auth_unavailable()  # a key not seen (or too stale) while the store is away: fail fast
        if policy is None or policy.revoked:
            raise unauthorized("Incorrect API key provided." if policy is None else "This API key has been revoked.")
        if not policy.enabled:
            raise unauthorized("This API key is disabled.")
        if policy.expires_at is not None and now >= policy.expires_at:
            raise unauthorized("This API key has expired.")
        return policy.principal, policy

    async def _fetch(self, digest: str, now: float, stale: tuple[KeyPolicy | None, float] | None) -> KeyPolicy | None:
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyPolicy | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            record = await self._directory.find_key(digest, utc(now))
            policy = policy_of(record) if record is not None else None
            self.cache.put(digest, policy, now)
            if self.store_down_since is not None:
                log.warning("key store is back after %.1fs", self._clock() - self.store_down_since)
                self.store_down_since = None
            future.set_result(policy)
            return policy
        except Exception as exc:
            if self.store_down_since is None:
                self.store_down_since = now
                log.error(
                    "key store unreachable (%s); cached keys are served up to %.0fs stale, unknown keys refused",
                    type(exc).__name__,
                    self.max_stale,
                )
            self._next_probe = self._clock() + self._retry_seconds
            if stale is not None and stale[0] is not None and now - stale[1] < self.cache.ttl + self.max_stale:
                future.set_result(stale[0])
                return stale[0]
            error = auth_unavailable()
            future.set_exception(error)
            future.exception()  # retrieved here, so waiters alone decide whether it is reported
            raise error from None
        finally:
            del self._inflight[digest]

    async def _refresh(self, digest: str, now: float, cached: tuple[KeyPolicy | None, float]) -> KeyPolicy | None:
        """A known key past its TTL: the store's answer if it comes within `refresh_wait` (the normal case, so
        a change to the key applies at once); otherwise the cached policy, while the lookup goes on in the
        background (a store that has just gone away costs its first requests this wait, not its timeout)."""
        if digest in self._inflight:  # already being looked up and slow: no second request waits for it
            return cached[0]
        task = asyncio.get_running_loop().create_task(self._fetch(digest, now, cached))
        self._probes.add(task)
        task.add_done_callback(_forget(self._probes))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.refresh_wait)
        except TimeoutError:
            return cached[0]

    def _probe(self, digest: str, now: float, cached: tuple[KeyPolicy | None, float]) -> None:
        """Looks the key up in the background, at most once per retry interval over all keys."""
        if now < self._next_probe or digest in self._inflight:
            return
        self._next_probe = now + self._retry_seconds
        task = asyncio.get_running_loop().create_task(self._fetch(digest, now, cached))
        self._probes.add(task)
        task.add_done_callback(_forget(self._probes))


def _forget(tasks: set[asyncio.Task[KeyPolicy | None]]) -> Callable[[asyncio.Task[KeyPolicy | None]], None]:
    def done(task: asyncio.Task[KeyPolicy | None]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()  # an unreachable store is already logged; the error is not reported again

    return done
