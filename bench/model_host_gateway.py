"""A gateway whose model host is used the way a feature would use it: `bench/model_host.py` starts it.

    python bench/model_host_gateway.py CONFIG PORT LOAD

With LOAD > 0, LOAD tasks on the gateway's own event loop embed batches of 32 texts without pause: the
host's child is kept computing all the time while the loop's own share (a few calls per batch) stays small,
so what the client sees is how well the child keeps off the loop's core. With 0 the host is left idle.
"""

from __future__ import annotations

import asyncio
import gc
import sys

from sluicegate.config.loader import load_config
from sluicegate.server.app import GatewayApp
from sluicegate.server.gateway import Gateway
from sluicegate.server.run import _Server, _wait_started, uvicorn_config

TEXTS = [f"user question number {i} about invoices, refunds and the delivery of parcel {i * 7}" for i in range(256)]


async def main(config_path: str, port: int, load: int) -> None:
    config = load_config(config_path)
    gateway = Gateway(config)
    assert gateway.model_host is not None, "the config needs a model_host section"
    embedder = gateway.model_host.embedder(fail="open", deadline_ms=1000)  # what a feature does when built
    server = _Server(uvicorn_config(GatewayApp(gateway), "127.0.0.1", port, 1.0))
    task = asyncio.get_running_loop().create_task(server.serve())
    await _wait_started(server, task)
    gc.collect()
    gc.freeze()

    async def keep_busy(worker: int) -> None:
        i = worker * 32
        while True:
            await embedder.embed([TEXTS[(i + k) % len(TEXTS)] for k in range(32)])
            i += 32 * load

    busy = [asyncio.create_task(keep_busy(w)) for w in range(load)]
    print("ready", flush=True)
    await task
    for b in busy:
        b.cancel()


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
