"""CPU cost per request of the virtual-key auth stage (warm cache) and of the spend ledger.

    python bench/keys_ledger.py [--requests 20000] [--runs 3] [--database-url postgresql://...]

Measures, in process and in CPU time (all threads, so SQLite's own work counts): the auth stage on a warm
cache (SHA-256 + dict read + model and max_tokens checks), the ledger's finish stage (row + spool append),
and the background writer (spool read + batched insert into the store), per request. With SQLite the
store's own work runs in this process and is counted; with PostgreSQL it runs in the server and is not.
Prints medians of --runs runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from sqlalchemy import text

from sluicegate.canonical import ChatRequest, Usage
from sluicegate.config.schema import GatewayConfig, StoreConfig
from sluicegate.keys.accounts import Accounts
from sluicegate.keys.service import KeyBody
from sluicegate.pipeline.context import RequestContext
from sluicegate.principal import MASTER


async def one_run(requests: int, database_url: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="sluice-keys-bench-") as workdir:
        schema = f"sg_bench_{os.getpid()}" if database_url else None
        store = StoreConfig(
            database_url=database_url or f"sqlite+aiosqlite:///{workdir}/bench.db",
            db_schema=schema,
            spool_dir=f"{workdir}/spool",
        )
        accounts = Accounts(GatewayConfig(store=store), "sk-bench-master", environ={})
        await accounts.start()
        try:
            created = await accounts.admin.create_key(
                MASTER, KeyBody(team="bench", user="u", models=["gpt-4o*"], max_tokens=256)
            )
            headers = {"authorization": f"Bearer {created['key']}", "content-type": "application/json"}
            contexts = [
                RequestContext(
                    f"req_{i:08d}",
                    "chat",
                    "openai",
                    headers,
                    ChatRequest(model="gpt-4o-mini", messages=[], max_tokens=100),
                )
                for i in range(requests)
            ]
            await accounts.auth.on_request(contexts[0])  # warm the cache
            started = time.process_time()
            for ctx in contexts:
                await accounts.auth.on_request(ctx)
            auth = time.process_time() - started
            for ctx in contexts:
                ctx.usage = Usage(31, 10)
                ctx.cost_micros = 11
                ctx.finished_at = ctx.started
            started = time.process_time()
            for ctx in contexts:
                await accounts.ledger.on_finish(ctx)
            finish = time.process_time() - started
            started = time.process_time()
            while accounts.ledger.pending():
                await asyncio.sleep(0.005)
            writer = time.process_time() - started
            assert await accounts.spend.count() == requests
        finally:
            if schema:
                async with accounts.store.engine.begin() as conn:
                    await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await accounts.stop()
    return {k: v / requests * 1e6 for k, v in (("auth", auth), ("finish", finish), ("writer", writer))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database-url", help="e.g. postgresql://postgres@127.0.0.1:5432/test (default: SQLite)")
    args = parser.parse_args()
    runs = [asyncio.run(one_run(args.requests, args.database_url)) for _ in range(args.runs)]
    print(f"medians of {args.runs} run(s) of {args.requests} requests, CPU microseconds per request\n")
    print(f"{'stage':44} {'µs/request':>10}")
    for name, label in (
        ("auth", "auth, warm cache (virtual key)"),
        ("finish", "ledger finish stage (row + spool append)"),
        ("writer", "ledger writer (spool read + batched insert)"),
    ):
        print(f"{label:44} {statistics.median(r[name] for r in runs):10.2f}")
    total = statistics.median(r["auth"] + r["finish"] + r["writer"] for r in runs)
    print(f"{'total':44} {total:10.2f}")


if __name__ == "__main__":
    main()
