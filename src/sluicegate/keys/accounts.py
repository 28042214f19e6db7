"""Who pays: the store, the key lookup, revocation, the spend ledger and the admin service, as one component.

`Gateway` owns one `Accounts` and hands its auth stage and ledger stage to the pipeline.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from sluicegate.config.schema import GatewayConfig
from sluicegate.guard.config import GuardrailsConfig
from sluicegate.keys.auth import VirtualKeyAuth
from sluicegate.keys.clock import Clock, system_clock
from sluicegate.keys.revocation import RevocationBus
from sluicegate.keys.service import AdminService
from sluicegate.store.db import Store
from sluicegate.store.directory import Directory
from sluicegate.store.spend import SpendLedger
from sluicegate.telemetry.ledger import Ledger
from sluicegate.telemetry.spool import Spool

log = logging.getLogger("sluicegate.keys")

DATABASE_URL_ENV = "SLUICEGATE_DATABASE_URL"


def database_url(config: GatewayConfig, environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(DATABASE_URL_ENV) or config.store.database_url


def open_store(config: GatewayConfig, environ: Mapping[str, str] = os.environ) -> Store:
    settings = config.store
    return Store(database_url(config, environ), schema=settings.db_schema, timeout=settings.timeout_seconds)


class Accounts:
    def __init__(
        self,
        config: GatewayConfig,
        master_key: str,
        environ: Mapping[str, str] = os.environ,
        clock: Clock = system_clock,
    ) -> None:
        settings = config.store
        self.store = open_store(config, environ)
        self.directory = Directory(self.store)
        self.spend = SpendLedger(self.store, writer_nice=settings.ledger_writer_nice)
        self.auth = VirtualKeyAuth(
            master_key,
            self.directory,
            ttl=settings.key_cache_ttl_seconds,
            max_entries=settings.key_cache_max_entries,
            max_stale=settings.key_cache_max_stale_seconds,
            clock=clock,
        )
        self.revocations = RevocationBus(config.redis.url, self.auth.evict, self.auth.revalidate)
        self.spool = Spool(
            settings.spool_dir, fsync=settings.spool_fsync, fsync_interval=settings.spool_fsync_interval_seconds
        )
        self.ledger = Ledger(
            self.spool,
            self.spend,
            batch_size=settings.ledger_batch_size,
            timeout=settings.timeout_seconds,
            clock=clock,
            reserve_bytes=settings.spool_reserve_bytes,
            full_policy=settings.spool_full_policy,
        )
        levels: tuple[str, ...] = ("off",)
        if "firewall" in config.pipeline.stages:
            levels = (config.guardrails or GuardrailsConfig()).level_names
        self.admin = AdminService(self.directory, self.spend, self.revocations.publish, clock, levels)

    def health(self) -> dict[str, object] | None:
        """None while the store answers; otherwise what is in force until it is back."""
        if self.ledger.healthy and self.auth.store_down_since is None:
            return None
        return {
            "ledger": "writing" if self.ledger.healthy else "unreachable",
            "keys": "reading" if self.auth.store_down_since is None else "unreachable",
            "policy": {
                "ledger": "rows wait in the local spool and are written when the store is back",
                "keys": f"cached keys served up to {self.auth.max_stale:g}s past their TTL; unknown keys refused "
                "(503 auth_unavailable); revocations still apply over Redis",
            },
        }

    async def start(self) -> None:
        await self.store.migrate()
        self.spool.open()
        await self.ledger.start()
        self.spend.rollups.start()
        await self.revocations.start()

    async def stop(self, drain_seconds: float = 5.0) -> None:
        await self.revocations.stop()
        await self.ledger.stop(drain_seconds)
        await self.spend.rollups.stop()
        await self.spend.close()
        self.spool.close()
        await self.store.close()
