"""The model host with its local backend: real child processes running the bundled static-embedding model."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence

import numpy as np
import pytest

from sluicegate.models.config import ModelHostConfig
from sluicegate.models.host import ModelHost, ModelUnavailable, build_host
from sluicegate.models.local import LocalBackend, Placement, place

TEXTS = ["the cat sat on the mat", "a cat is sitting on a mat", "quarterly revenue fell by ten percent"]


def local(host: ModelHost) -> LocalBackend:
    assert isinstance(host.backend, LocalBackend)
    return host.backend


def child_pid(host: ModelHost) -> int:
    [pid] = local(host).pids
    assert pid is not None
    return pid


@pytest.fixture
async def host() -> AsyncIterator[ModelHost]:
    host = build_host(ModelHostConfig(deadline_ms=5000))
    host.embedder(fail="closed")  # a feature asks for it: the host starts
    await host.start()
    assert await local(host).wait_ready(60), "the child did not load the bundled model"
    yield host
    await host.stop()


async def test_embeddings_have_the_model_shape_and_are_deterministic(host: ModelHost) -> None:
    embedder = host.embedder(fail="closed")
    first = await embedder.embed(TEXTS)
    assert isinstance(first, np.ndarray) and first.shape == (3, 256) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    again = await embedder.embed(list(reversed(TEXTS)))
    assert isinstance(again, np.ndarray)
    assert np.array_equal(again[::-1], first)  # the same text, the same vector, whatever its batch
    similar, unrelated = float(first[0] @ first[1]), float(first[0] @ first[2])
    assert similar > 0.6 and similar > unrelated + 0.3
    empty = await embedder.embed([])
    assert isinstance(empty, np.ndarray) and empty.shape[0] == 0


async def test_a_missed_deadline_gives_each_caller_its_fail_policy(host: ModelHost) -> None:
    def heuristic(texts: Sequence[str]) -> str:
        return f"heuristic for {len(texts)}"

    open_ = host.embedder(fail="open", deadline_ms=80, heuristic=heuristic)
    open_plain = host.embedder(fail="open", deadline_ms=80)
    closed = host.embedder(fail="closed", deadline_ms=80)
    pid = child_pid(host)
    os.kill(pid, signal.SIGSTOP)  # the model is busy (or stuck) for longer than any deadline
    try:
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await open_.embed(TEXTS) == "heuristic for 3"
        assert await open_plain.embed(TEXTS) is None
        with pytest.raises(ModelUnavailable) as refused:
            await closed.embed(TEXTS)
        assert refused.value.outcome == "deadline"
        assert loop.time() - began < 1.0  # three deadlines of 80 ms, not a wait for the model
    finally:
        os.kill(pid, signal.SIGCONT)
    assert host.outcomes["deadline"] == 3
    answered = await host.embedder(fail="closed", deadline_ms=5000).embed(TEXTS)
    assert isinstance(answered, np.ndarray) and answered.shape == (3, 256)


async def test_a_crashed_child_is_restarted_and_answers_the_same(host: ModelHost) -> None:
    embedder = host.embedder(fail="closed", deadline_ms=5000)
    before = await embedder.embed(TEXTS)
    pid = child_pid(host)
    os.kill(pid, signal.SIGKILL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while local(host).pids[0] in (None, pid):
        assert loop.time() < deadline, "the child was not restarted"
        await asyncio.sleep(0.05)
    assert local(host).restarts == 1
    after = await embedder.embed(TEXTS)
    assert isinstance(before, np.ndarray) and isinstance(after, np.ndarray) and np.array_equal(before, after)


async def test_concurrent_calls_are_merged_into_one_batch(host: ModelHost) -> None:
    embedder = host.embedder(fail="closed", deadline_ms=10_000)
    pid = child_pid(host)
    os.kill(pid, signal.SIGSTOP)  # the first call occupies the only child; the next ten queue behind it
    try:
        first = asyncio.create_task(embedder.embed(["first"]))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(embedder.embed([f"call {i}", f"second text {i}"])) for i in range(10)]
        await asyncio.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGCONT)
    results = await asyncio.gather(first, *rest)
    assert [r.shape for r in results] == [(1, 256)] + [(2, 256)] * 10  # type: ignore[union-attr]
    assert sum(host.batch_texts.counts) == 2  # two batches: the first call, then the other ten merged
    assert host.texts_embedded == 21
    alone = await embedder.embed(["call 3", "second text 3"])
    assert np.array_equal(alone, results[4])  # each caller got its own rows back


async def test_the_child_runs_off_the_event_loop_core_at_a_lower_priority(host: ModelHost) -> None:
    pid = child_pid(host)
    placement = local(host).placement
    if placement.child_cpus:
        assert os.sched_getaffinity(pid) == set(placement.child_cpus)
        if placement.loop_cpus is not None:
            assert not os.sched_getaffinity(0) & set(placement.child_cpus)  # the loop's thread keeps off them
    assert os.getpriority(os.PRIO_PROCESS, pid) >= 10
    rss = local(host).rss_bytes()
    assert 1_000_000 < rss[0] < 2_000_000_000


def test_placement_keeps_the_children_and_the_loop_apart() -> None:
    config = ModelHostConfig()
    assert place(config, {0, 1}, 2) == Placement((1,), (0,))
    assert place(config, {0, 1, 2, 3}, 4) == Placement((3,), (0, 1, 2))
    assert place(config, {0}, 2) == Placement((1,), None)  # a gateway pinned to core 0: the children elsewhere
    assert place(config, {0}, 1) == Placement((), None)  # one core: only the lower priority
    assert place(ModelHostConfig(cpus=[2, 3]), {0, 1, 2, 3}, 4) == Placement((2, 3), (0, 1))
    assert place(ModelHostConfig(keep_event_loop_off_model_cores=False), {0, 1}, 2) == Placement((1,), None)
    assert place(config, None, 2) == Placement((), None)


async def test_the_host_starts_nothing_until_a_feature_asks() -> None:
    host = build_host(ModelHostConfig())
    await host.start()
    try:
        assert not host.started and local(host).pids == [None]
        outcome, vectors, _ = await host.submit(TEXTS, 1.0)
        assert (outcome, vectors) == ("not_started", None)
        with pytest.raises(ModelUnavailable):
            await host.embedder(fail="closed").embed(TEXTS)  # asked for after start: still not running
    finally:
        await host.stop()


async def test_a_model_that_cannot_load_fails_callers_by_policy() -> None:
    config = ModelHostConfig.model_validate({"embeddings": {"model": "no_such_model"}, "deadline_ms": 200})
    host = build_host(config)
    embedder = host.embedder(fail="open", heuristic=lambda texts: "fallback")
    await host.start()
    try:
        assert await embedder.embed(TEXTS) == "fallback"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while local(host).restarts < 1:  # it said why it could not load, exited, and is tried again later
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        assert local(host).up == 0 and await embedder.embed(TEXTS) == "fallback"
    finally:
        await host.stop()


async def test_without_the_model_package_the_host_refuses_to_start_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sluicegate.models.local as local_module

    monkeypatch.setattr(local_module, "find_spec", lambda name: None)
    host = build_host(ModelHostConfig())
    host.embedder(fail="open")
    with pytest.raises(RuntimeError, match=r"pip install 'sluicegate\[local-models\]'"):
        await host.start()
    assert not host.started
