"""The run and the drain with fake stages: a clean drain, a drain cut by the grace period,
a stop before the pipeline is up, and a drain ended once everything is in the spool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from marketd.runtime.backoff import BackoffPolicy
from marketd.runtime.lifecycle import Lifecycle
from marketd.runtime.stage import Supervisor

GRACE_S = 30.0
FAST = BackoffPolicy(initial=0.01, cap=0.05, jitter=0)


@attrs.define
class FakeReports:
    statistics_logged: int = 0

    def healthy(self) -> bool:
        return True

    def status(self) -> str:
        return "ready"

    def log_statistics(self) -> None:
        self.statistics_logged += 1

    def summary(self) -> Mapping[str, Any]:
        return {"roles": ["collector"]}


@attrs.define
class FakeSpool:
    durable: trio.Event = attrs.field(factory=trio.Event)

    def pending(self) -> int:
        return 7


@attrs.define
class Run:
    """A sink stage fed by the intake, and how it behaves at the end of its input."""

    sink_ends: bool = True  # False: it never drains (a stuck sink)
    sink_starts: bool = True  # False: it never becomes ready (an unreachable broker)
    spool: FakeSpool | None = None
    connected_until: float = float("inf")  # the sink's connection, in seconds after the stop
    received: int = 0
    reports: FakeReports = attrs.field(factory=FakeReports)
    http_shutdown: trio.Event = attrs.field(factory=trio.Event)
    stopped_at: float = 0.0

    def lifecycle(self) -> Lifecycle:
        supervisor = Supervisor(FAST)
        send, recv = trio.open_memory_channel[int](10)

        async def sink(
            numbers: trio.MemoryReceiveChannel[int], *, task_status: trio.TaskStatus[None]
        ) -> None:
            if not self.sink_starts:
                await trio.sleep_forever()
            task_status.started()
            async with numbers:
                async for _ in numbers:
                    self.received += 1
            if not self.sink_ends:
                await trio.sleep_forever()

        async def intake() -> None:
            async with send:
                while True:
                    await send.send(1)
                    await trio.sleep(1)

        async def http(*, task_status: trio.TaskStatus[list[str]]) -> None:
            task_status.started(["127.0.0.1:1"])
            await self.http_shutdown.wait()

        return Lifecycle(
            supervisor=supervisor,
            pipeline=[supervisor.stage("sink", sink, recv)],
            services=[],
            serve_http=http,
            http_shutdown=self.http_shutdown,
            reports=self.reports,
            grace_s=GRACE_S,
            stats_interval_s=3600,
            intake=intake,
            spool=self.spool,
            connected=lambda: trio.current_time() - self.stopped_at < self.connected_until,
        )

    async def stop_after(self, seconds: float) -> tuple[bool, float, list[str]]:
        """Run, stop after ``seconds``; (drained, seconds from the stop to the end, binds)."""
        lifecycle, stop = self.lifecycle(), trio.Event()
        binds: list[str] = []
        drained = None

        async def run() -> None:
            nonlocal drained
            drained = await lifecycle.run(stop)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await trio.sleep(seconds)
            binds = lifecycle.http_binds
            self.stopped_at = trio.current_time()
            stop.set()
        assert drained is not None
        assert self.http_shutdown.is_set()
        assert self.reports.statistics_logged == 1  # once, after the drain
        return drained, trio.current_time() - self.stopped_at, binds


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


async def test_a_stop_cancels_intake_and_the_pipeline_drains_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = Run()
    drained, took, binds = await run.stop_after(5.5)
    assert (drained, took, binds) == (True, 0, ["127.0.0.1:1"])
    assert run.received == 6


async def test_a_pipeline_that_does_not_drain_is_cut_at_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    drained, took, _ = await Run(sink_ends=False).stop_after(5.5)
    assert (drained, took) == (False, GRACE_S)


async def test_a_stop_before_the_pipeline_is_up_waits_for_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = Run(sink_starts=False)
    drained, took, _ = await run.stop_after(5.5)
    assert (drained, took, run.received) == (True, 0, 0)


@pytest.mark.parametrize("connected_for", [0.0, 10.0])
async def test_once_everything_is_in_the_spool_the_drain_lasts_while_the_sink_is_connected(
    autojump_clock: trio.testing.MockClock, connected_for: float
) -> None:
    spool = FakeSpool()
    spool.durable.set()
    run = Run(sink_ends=False, spool=spool, connected_until=connected_for)
    drained, took, _ = await run.stop_after(5.5)
    assert drained is True  # the records wait in the spool for the next start
    assert connected_for <= took < connected_for + 0.5


async def test_a_spool_not_yet_durable_leaves_the_end_to_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    run = Run(sink_ends=False, spool=FakeSpool(), connected_until=0.0)
    drained, took, _ = await run.stop_after(5.5)
    assert (drained, took) == (False, GRACE_S)
