"""The store contract runs every case against SQLite and the real PostgreSQL, each in its own namespace."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sluicegate.store.db import Store

POSTGRES_URL = os.environ.get("SLUICEGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


async def postgres_reachable() -> bool:
    store = Store(POSTGRES_URL, timeout=2)
    try:
        async with store.engine.connect():
            return True
    except Exception:
        return False
    finally:
        await store.close()


async def drop_schema(schema: str) -> None:
    from sqlalchemy import text

    cleanup = Store(POSTGRES_URL, timeout=5)
    try:
        async with cleanup.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await cleanup.close()


def unique_schema() -> str:
    return f"sg_test_{os.getpid()}_{secrets.token_hex(4)}"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        store = Store(f"sqlite+aiosqlite:///{tmp_path}/store.db")
        await store.migrate()
        yield store
        await store.close()
        return
    if not await postgres_reachable():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is NOT reachable: the PostgreSQL half of the contract did not run")
    schema = unique_schema()
    store = Store(POSTGRES_URL, schema=schema)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
        await drop_schema(schema)
