"""Stages under the supervisor: fresh channel clones per run, the owned ends closed when
the stage ends, ordered start, restarts and channel fill shown as metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import pytest
import trio
import trio.testing
from prometheus_client.core import Metric

from marketd.errors import FeedError
from marketd.runtime.backoff import BackoffPolicy
from marketd.runtime.stage import Channels, Supervisor

FAST = BackoffPolicy(initial=0.01, cap=0.05, jitter=0)


def samples(metrics: Iterable[Metric]) -> dict[tuple[str, tuple[str, ...]], float]:
    out = {}
    for family in metrics:
        for sample in family.samples:
            out[(sample.name, tuple(sample.labels.values()))] = sample.value
    return out


async def test_a_failed_run_is_restarted_on_fresh_clones_and_the_ends_close_at_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(FAST)
    in_send, in_recv = trio.open_memory_channel[int](10)
    out_send, out_recv = trio.open_memory_channel[int](10)
    runs = 0

    async def double(
        numbers: trio.MemoryReceiveChannel[int],
        doubled: trio.MemorySendChannel[int],
        *,
        task_status: trio.TaskStatus[None],
    ) -> None:
        nonlocal runs
        runs += 1
        async with numbers, doubled:
            task_status.started()
            async for n in numbers:
                if n == 2 and runs == 1:
                    raise FeedError("a retryable failure")
                await doubled.send(2 * n)

    stage = supervisor.stage("double", double, in_recv, out_send)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.serve, stage)
        assert supervisor.running("double")
        async with in_send:
            for n in (1, 2, 3):
                await in_send.send(n)
        # The second run took what the first left; the output ends once the stage has.
        assert [n async for n in out_recv] == [2, 6]
    assert runs == 2
    assert not supervisor.running("double")
    metrics = samples(supervisor.metrics())
    assert metrics[("marketd_child_restarts_total", ("double",))] == 1


async def test_close_runs_after_the_stage_even_when_cancelled() -> None:
    supervisor = Supervisor(FAST)
    closed = trio.Event()

    async def forever(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await trio.sleep_forever()

    async def close() -> None:
        closed.set()

    stage = supervisor.stage("forever", forever, close=close)
    async with trio.open_nursery() as nursery:
        await nursery.start(supervisor.serve, stage)
        nursery.cancel_scope.cancel()
    assert closed.is_set()


async def test_start_waits_for_each_stage_unless_told_not_to(
    autojump_clock: trio.testing.MockClock,
) -> None:
    supervisor = Supervisor(FAST)
    order: list[str] = []

    def slow_start(name: str, delay: float) -> Callable[..., Awaitable[None]]:
        async def serve(*, task_status: trio.TaskStatus[None]) -> None:
            await trio.sleep(delay)
            order.append(name)
            task_status.started()
            await trio.sleep_forever()

        return serve

    stages = [
        supervisor.stage("behind", slow_start("behind", 10), waited=False),
        supervisor.stage("first", slow_start("first", 2)),
        supervisor.stage("second", slow_start("second", 1)),
    ]
    async with trio.open_nursery() as nursery:
        await supervisor.start(nursery, stages)
        assert order == ["first", "second"]
        await trio.sleep(10)
        assert order == ["first", "second", "behind"]
        nursery.cancel_scope.cancel()


def test_a_name_is_one_stage() -> None:
    supervisor = Supervisor(FAST)

    async def serve(*, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()

    supervisor.stage("sink", serve)
    with pytest.raises(ValueError, match="sink"):
        supervisor.stage("sink", serve)


def test_channels_show_fill_and_capacity_by_name() -> None:
    channels = Channels()
    send, recv = channels.open("records", trio.open_memory_channel[int](4))
    channels.show("sink", recv)
    send.send_nowait(1)
    send.send_nowait(2)
    metrics = samples(channels.metrics())
    assert metrics == {
        ("marketd_channel_queued_batches", ("records",)): 2.0,
        ("marketd_channel_queued_batches", ("sink",)): 2.0,
        ("marketd_channel_capacity_batches", ("records",)): 4.0,
        ("marketd_channel_capacity_batches", ("sink",)): 4.0,
    }
