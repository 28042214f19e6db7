"""Revocation reaches a second gateway instance within 5 s: through Redis pub/sub, and by the cache TTL alone."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MASTER_KEY, Proc, start_gateway

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.mark.parametrize("transport", ["redis", "ttl"])
def test_revoked_key_is_refused_on_a_second_instance_within_5s(simulator: Proc, tmp_path: Path, transport: str) -> None:
    if transport == "redis" and not redis_up():
        pytest.skip("Redis at 127.0.0.1:6379 is NOT reachable: the pub/sub revocation path did not run")
    database = tmp_path / "shared.db"
    extra = f"""
store:
  database_url: sqlite+aiosqlite:///{database}
  spool_dir: SPOOL
  key_cache_ttl_seconds: {60 if transport == "redis" else 4}
{"redis: {url: " + REDIS_URL + "}" if transport == "redis" else ""}
"""
    a = start_gateway(simulator, tmp_path, "a", extra.replace("SPOOL", str(tmp_path / "spool-a")))
    b = start_gateway(simulator, tmp_path, "b", extra.replace("SPOOL", str(tmp_path / "spool-b")))
    try:
        created = httpx.post(
            f"{a.url}/admin/keys", json={"team": "rev"}, headers={"authorization": f"Bearer {MASTER_KEY}"}
        ).json()
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"authorization": f"Bearer {created['key']}"}
        assert httpx.post(f"{b.url}/v1/chat/completions", json=body, headers=auth).status_code == 200  # b caches it
        revoked_at = time.monotonic()
        assert httpx.delete(
            f"{a.url}/admin/keys/{created['key_id']}", headers={"authorization": f"Bearer {MASTER_KEY}"}
        ).is_success
        while True:
            status = httpx.post(f"{b.url}/v1/chat/completions", json=body, headers=auth).status_code
            elapsed = time.monotonic() - revoked_at
            if status == 401:
                break
            assert status == 200 and elapsed < 5.0, f"still admitted after {elapsed:.2f}s"
            time.sleep(0.05)
        assert elapsed < 5.0  # with Redis the cache TTL is 60 s, so only pub/sub can have done it
    finally:
        a.stop()
        b.stop()
