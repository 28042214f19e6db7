"""The store's engine and sessions, for SQLite (embedded default) or PostgreSQL, and migrations at start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

_MIGRATION_LOCK = 740_310_447  # PostgreSQL advisory lock id: one instance migrates at a time
_MIGRATION_WAIT_SECONDS = 120.0  # how long an instance waits for another's migration before failing its start


def normalise_url(url: str) -> str:
    """Accepts plain `postgresql://` and `sqlite:///` URLs and picks the async drivers."""
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


class Store:
    """Owns the engine. `schema` (PostgreSQL only) is the search_path, so runs and tenants can be kept apart."""

    def __init__(self, url: str, *, schema: str | None = None, timeout: float = 5.0) -> None:
        self.url = normalise_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self.schema = schema
        self.timeout = timeout
        connect_args: dict[str, Any] = {}
        options: dict[str, Any] = {}
        if self.dialect == "sqlite":
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            connect_args["timeout"] = timeout
        else:
            connect_args["timeout"] = timeout
            connect_args["command_timeout"] = timeout
            if schema:
                connect_args["server_settings"] = {"search_path": schema}
            options.update(pool_size=5, max_overflow=5, pool_pre_ping=True, pool_timeout=timeout)
        self.engine: AsyncEngine = create_async_engine(self.url, connect_args=connect_args, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session, session.begin():
            yield session

    async def migrate(self) -> None:
        """Applies every Alembic migration not yet applied (safe to run from several instances at once)."""
        for attempt in range(5):
            try:
                async with self.engine.begin() as conn:
                    if not self.is_sqlite:
                        # the lock first: instances starting together would race to create the schema too
                        await _migration_lock(conn)
                        if self.schema:
                            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
                    await conn.run_sync(_upgrade)
                return
            except Exception:
                if not self.is_sqlite or attempt == 4:  # SQLite: another process may hold the write lock
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))

    async def close(self) -> None:
        await self.engine.dispose()


async def _migration_lock(conn: Any, wait_seconds: float = _MIGRATION_WAIT_SECONDS) -> None:
    """Takes the migration lock for this transaction, waiting while another instance migrates: polled, since
    a blocking wait would be cut at the store's query timeout (a few seconds, less than a migration takes)."""
    deadline = time.monotonic() + wait_seconds
    while not (await conn.execute(text(f"SELECT pg_try_advisory_xact_lock({_MIGRATION_LOCK})"))).scalar():
        if time.monotonic() > deadline:
            raise TimeoutError(f"another instance has been migrating the database for over {wait_seconds:.0f}s")
        await asyncio.sleep(0.1)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the ledger writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _upgrade(connection: Connection) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin at INFO is noise here
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
