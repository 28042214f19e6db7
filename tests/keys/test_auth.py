"""The auth stage: warm-cache lookups, expiry, disabled and revoked keys, model globs, the max_tokens cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluicegate.canonical import ChatRequest
from sluicegate.errors import GatewayError
from sluicegate.keys.auth import VirtualKeyAuth
from sluicegate.keys.material import key_hash
from sluicegate.keys.service import AdminService, KeyBody, KeyUpdate
from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import MASTER
from sluicegate.store.db import Store
from sluicegate.store.directory import Directory
from sluicegate.store.spend import SpendLedger

MASTER_KEY = "sk-master-for-tests-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingDirectory(Directory):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.lookups = 0

    async def find_key(self, key_hash, now):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return await super().find_key(key_hash, now)


@pytest.fixture
async def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = Store(f"sqlite+aiosqlite:///{tmp_path}/keys.db")
    await store.migrate()
    clock = Clock()
    directory = CountingDirectory(store)
    auth = VirtualKeyAuth(MASTER_KEY, directory, ttl=4.0, clock=clock)

    async def invalidate(hashes: list[str]) -> None:
        auth.evict(hashes)

    admin = AdminService(Directory(store), SpendLedger(store), invalidate, clock=clock)
    yield auth, admin, clock, directory
    await store.close()


def ctx_for(key: str, model: str = "gpt-4o-mini", max_tokens: int | None = None) -> RequestContext:
    request = ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=max_tokens)
    return RequestContext("req_test", "chat", "openai", {"authorization": f"Bearer {key}"}, request)


async def refused(auth: VirtualKeyAuth, ctx: RequestContext) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await auth.on_request(ctx)
    return caught.value


async def test_master_key_is_the_master_principal(setup) -> None:  # type: ignore[no-untyped-def]
    auth, *_ = setup
    ctx = ctx_for(MASTER_KEY)
    await auth.on_request(ctx)
    assert ctx.principal is MASTER


async def test_warm_cache_does_not_touch_the_store_until_the_ttl(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, clock, directory = setup
    key = (await admin.create_key(MASTER, KeyBody(team="search")))["key"]
    for _ in range(50):
        await auth.on_request(ctx_for(key))
    assert directory.lookups == 1
    clock.now += 5
    await auth.on_request(ctx_for(key))
    assert directory.lookups == 2


async def test_unknown_and_missing_keys_are_401(setup) -> None:  # type: ignore[no-untyped-def]
    auth, *_ = setup
    assert (await refused(auth, ctx_for("sk-sluice-unknown"))).status == 401
    bare = ctx_for("x")
    bare.headers = {}
    assert (await refused(auth, bare)).status == 401


async def test_revoked_key_is_refused_at_once_on_this_instance(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, *_ = setup
    created = await admin.create_key(MASTER, KeyBody(team="search"))
    await auth.on_request(ctx_for(created["key"]))
    await admin.revoke_key(MASTER, created["key_id"])
    error = await refused(auth, ctx_for(created["key"]))
    assert error.status == 401 and "revoked" in error.message


async def test_disabled_and_expired_keys_are_401(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, clock, _ = setup
    disabled = await admin.create_key(MASTER, KeyBody(team="search"))
    await admin.update_key(MASTER, disabled["key_id"], KeyUpdate(enabled=False))
    assert "disabled" in (await refused(auth, ctx_for(disabled["key"]))).message
    expiring = await admin.create_key(MASTER, KeyBody(team="search", expires="1h"))
    await auth.on_request(ctx_for(expiring["key"]))
    clock.now += 3601
    assert "expired" in (await refused(auth, ctx_for(expiring["key"]))).message


async def test_model_globs_refuse_with_403_naming_the_model(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, *_ = setup
    key = (await admin.create_key(MASTER, KeyBody(team="search", models=["gpt-4o*", "text-embedding-3-small"])))["key"]
    await auth.on_request(ctx_for(key, "gpt-4o-mini"))
    error = await refused(auth, ctx_for(key, "claude-3-5-sonnet"))
    assert error.status == 403 and error.code == "model_not_allowed" and "claude-3-5-sonnet" in error.message


async def test_max_tokens_is_clamped_to_the_cap_and_said_so(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, *_ = setup
    key = (await admin.create_key(MASTER, KeyBody(team="search", max_tokens=100)))["key"]
    over = ctx_for(key, max_tokens=5000)
    await auth.on_request(over)
    assert over.chat.max_tokens == 100 and over.response_headers["x-sluice-max-tokens-clamped"] == "100"
    unset = ctx_for(key)
    await auth.on_request(unset)
    assert unset.chat.max_tokens == 100 and not unset.response_headers
    under = ctx_for(key, max_tokens=10)
    await auth.on_request(under)
    assert under.chat.max_tokens == 10


async def test_rotated_key_old_secret_works_only_for_the_grace(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, clock, _ = setup
    old = await admin.create_key(MASTER, KeyBody(team="search"))
    new = await admin.rotate_key(MASTER, old["key_id"], grace_seconds=60)
    await auth.on_request(ctx_for(old["key"]))
    await auth.on_request(ctx_for(new["key"]))
    clock.now += 61
    assert (await refused(auth, ctx_for(old["key"]))).status == 401
    await auth.on_request(ctx_for(new["key"]))


async def test_store_outage_keeps_known_keys_and_refuses_unknown_with_503(setup) -> None:  # type: ignore[no-untyped-def]
    auth, admin, clock, directory = setup
    key = (await admin.create_key(MASTER, KeyBody(team="search")))["key"]
    await auth.on_request(ctx_for(key))

    async def broken(*_args: object) -> None:
        raise ConnectionError("database down")

    directory.find_key = broken  # type: ignore[method-assign]
    clock.now += 10  # past the TTL: a refresh is due and fails
    await auth.on_request(ctx_for(key))
    error = await refused(auth, ctx_for("sk-sluice-never-seen"))
    assert error.status == 503 and error.code == "auth_unavailable"


async def test_store_outage_serves_cached_keys_without_waiting_and_unknown_keys_fail_fast(setup) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    auth, admin, clock, directory = setup
    keys = [(await admin.create_key(MASTER, KeyBody(team="search")))["key"] for _ in range(3)]
    for key in keys:
        await auth.on_request(ctx_for(key))
    calls = 0

    async def hanging(*_args: object) -> None:  # a store that answers only after its timeout
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        raise TimeoutError("store timeout")

    directory.find_key = hanging  # type: ignore[method-assign]
    clock.now += 10  # every entry is past its TTL
    started = time.monotonic()
    await auth.on_request(ctx_for(keys[0]))  # the first waits `refresh_wait` (0.1 s), not the store's timeout
    assert time.monotonic() - started < 0.25
    await asyncio.sleep(0.35)  # its lookup, still going in the background, finds the store away
    assert auth.store_down_since is not None
    started = time.monotonic()
    for _ in range(100):
        for key in keys:
            await auth.on_request(ctx_for(key))
    assert time.monotonic() - started < 0.25, "cached keys must not wait for the store while it is away"
    assert calls <= 2, "at most one background lookup per retry interval"
    started = time.monotonic()
    error = await refused(auth, ctx_for("sk-sluice-never-seen"))
    assert error.status == 503 and error.code == "auth_unavailable"
    assert time.monotonic() - started < 0.1, "an unknown key fails fast while the store is known to be away"

    # a revocation arriving over pub/sub still applies during the outage
    auth.evict([key_hash(keys[1])])
    assert (await refused(auth, ctx_for(keys[1]))).status == 503

    # past the maximum staleness, a cached key is refused too
    clock.now += auth.max_stale + 5
    assert (await refused(auth, ctx_for(keys[2]))).status == 503


async def test_store_back_ends_the_stale_mode(setup) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    auth, admin, clock, directory = setup
    key = (await admin.create_key(MASTER, KeyBody(team="search")))["key"]
    await auth.on_request(ctx_for(key))
    working = directory.find_key

    async def broken(*_args: object) -> None:
        raise ConnectionError("database down")

    directory.find_key = broken  # type: ignore[method-assign]
    clock.now += 10
    await auth.on_request(ctx_for(key))
    assert auth.store_down_since is not None
    directory.find_key = working  # type: ignore[method-assign]
    clock.now += 2  # the next background lookup is due
    await auth.on_request(ctx_for(key))
    for _ in range(20):
        await asyncio.sleep(0.01)
        if auth.store_down_since is None:
            break
    assert auth.store_down_since is None
    new = (await admin.create_key(MASTER, KeyBody(team="search")))["key"]
    await auth.on_request(ctx_for(new))  # keys never seen are looked up again


async def test_a_lost_revocation_channel_revalidates_cached_keys_without_forgetting_them(setup) -> None:  # type: ignore[no-untyped-def]
    """Redis restarted (revocations may have been missed), then the store is cut: the keys already known are
    looked up again when the store answers, and served from the cache while it does not."""
    auth, admin, clock, directory = setup
    keys = [(await admin.create_key(MASTER, KeyBody(team="search")))["key"] for _ in range(2)]
    for key in keys:
        await auth.on_request(ctx_for(key))
    lookups = directory.lookups
    auth.revalidate()  # the revocation channel came back after a loss
    await auth.on_request(ctx_for(keys[0]))
    assert directory.lookups == lookups + 1, "a key cached before the loss is looked up again at its next use"

    async def broken(*_args: object) -> None:
        raise ConnectionError("database down")

    directory.find_key = broken  # type: ignore[method-assign]
    auth.revalidate()
    clock.now += 1
    for key in keys:  # the store is away too: known keys are served from the cache, not refused
        await auth.on_request(ctx_for(key))
    assert auth.store_down_since is not None
    error = await refused(auth, ctx_for("sk-sluice-never-seen"))
    assert error.status == 503 and error.code == "auth_unavailable"
