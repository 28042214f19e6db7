"""One setup for the end-to-end budget tests: a simulator of their own (its output lengths and speeds are
part of what each test proves) and a gateway in front of it with the test's budgets and models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import Proc, free_port, start_gateway, start_process


def own_simulator(workdir: Path, simulator_yaml: str) -> Proc:
    (workdir / "sim.yaml").write_text(simulator_yaml)
    port = free_port()
    return start_process(
        ["simulator", "--port", str(port), "--config", str(workdir / "sim.yaml")],
        port,
        workdir,
        "simulator",
        ready_path="/_sim/stats",
    )


@contextlib.contextmanager
def budgeted_gateway(workdir: Path, simulator_yaml: str, extra: str) -> Iterator[Proc]:
    """A gateway (`extra` appended to the shared test config) in front of a simulator started from
    `simulator_yaml`; both stopped afterwards."""
    simulator = own_simulator(workdir, simulator_yaml)
    try:
        gateway = start_gateway(simulator, workdir, "gateway", extra)
        try:
            yield gateway
        finally:
            gateway.stop()
    finally:
        simulator.stop()
