"""Stages under the supervisor: how each is started, restarted, stopped and shown.

A :class:`Stage` names a long-running ``serve`` function (trio's ``serve_*`` shape: it
calls ``task_status.started()`` once ready and returns when its input has ended) and
the channel ends it owns. :meth:`Supervisor.serve` runs it under
:func:`~marketd.runtime.supervisor.serve_restarting` with the process's restart policy:

* every (re)start calls ``serve(*clones, task_status=...)`` with fresh clones of the
  stage's channel ends, in their order, so a failed run's ends are closed and the next
  run's are open;
* when the stage ends (its input ended, or it was cancelled) the supervisor closes the
  original ends, so the next stage sees end-of-channel once every sender is done, and
  then awaits the stage's ``close`` (e.g. the spool's files);
* the stage's :class:`~marketd.runtime.supervisor.ChildState` says whether it is running
  (readiness) and counts its failures (``marketd_child_restarts_total``);
* the stage's component shows its own statistics: :meth:`Supervisor.metrics` yields the
  restarts, then each stage's ``metrics`` families.

:class:`Channels` holds the bounded memory channels between stages by name and shows
how full each is (``marketd_channel_queued_batches``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import attrs
import trio
from prometheus_client.core import Metric

from marketd.obs.metrics import MetricSource, counter, gauge
from marketd.runtime.backoff import BackoffPolicy
from marketd.runtime.supervisor import ChildState, serve_restarting


class ChannelEnd(Protocol):
    """A channel end a stage owns: cloned for each run, closed when the stage ends."""

    def clone(self) -> ChannelEnd: ...

    async def aclose(self) -> None: ...


@attrs.frozen
class Stage:
    """A long-running stage, as :meth:`Supervisor.stage` declares it (see the module doc)."""

    name: str
    serve: Callable[..., Awaitable[None]]
    channels: tuple[ChannelEnd, ...] = ()
    close: Callable[[], Awaitable[None]] | None = None
    metrics: MetricSource | None = None
    # Start the next stage only once this one has started (else at once: the sink behind
    # the spool may wait for Kafka while the spool takes everything).
    waited: bool = True


class Supervisor:
    """The stages of one process, under one restart policy."""

    def __init__(self, policy: BackoffPolicy) -> None:
        self.policy = policy
        self.children: dict[str, ChildState] = {}
        self._stages: list[Stage] = []

    def stage(
        self,
        name: str,
        serve: Callable[..., Awaitable[None]],
        *channels: ChannelEnd,
        close: Callable[[], Awaitable[None]] | None = None,
        metrics: MetricSource | None = None,
        waited: bool = True,
    ) -> Stage:
        """Declare a stage (its restarts and metrics are shown from now on); see the
        module doc."""
        if name in self.children:
            raise ValueError(f"stage {name!r} declared twice")
        self.children[name] = ChildState(name)
        stage = Stage(name, serve, channels, close, metrics, waited)
        self._stages.append(stage)
        return stage

    def running(self, name: str) -> bool:
        return name in self.children and self.children[name].running

    async def serve(
        self, stage: Stage, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``stage`` until its ``serve`` returns (its input ended) or until cancelled,
        restarting it on retryable failures; ``started()`` after its first start."""

        async def child(*, task_status: trio.TaskStatus[None]) -> None:
            async with contextlib.AsyncExitStack() as run:
                clones = [end.clone() for end in stage.channels]
                for clone in clones:  # closed by serve too; here if it fails before that
                    run.push_async_callback(clone.aclose)
                await stage.serve(*clones, task_status=task_status)

        try:
            async with contextlib.AsyncExitStack() as owned:
                for end in stage.channels:
                    owned.push_async_callback(end.aclose)
                await serve_restarting(
                    stage.name, child, self.policy, self.children[stage.name],
                    task_status=task_status,
                )  # fmt: skip
        finally:
            if stage.close is not None:
                await stage.close()

    async def start(self, nursery: trio.Nursery, stages: Sequence[Stage]) -> None:
        """Start ``stages`` in ``nursery`` in their order (dependency order: each after the
        one it feeds, unless that one is not ``waited`` for)."""
        for stage in stages:
            if stage.waited:
                await nursery.start(self.serve, stage)
            else:
                nursery.start_soon(self.serve, stage)

    def metrics(self) -> Iterable[Metric]:
        yield counter(
            "marketd_child_restarts_total",
            "Supervised children restarted after a failure.",
            ("child",),
            {(n,): s.failures for n, s in self.children.items()},
        )
        for stage in self._stages:
            if stage.metrics is not None:
                yield from stage.metrics()


SendT = TypeVar("SendT", bound=trio.MemorySendChannel[Any])
ReceiveT = TypeVar("ReceiveT", bound=trio.MemoryReceiveChannel[Any])


class Channels:
    """The bounded channels between stages, each shown under a name."""

    def __init__(self) -> None:
        self._shown: dict[str, trio.MemorySendChannel[Any] | trio.MemoryReceiveChannel[Any]] = {}

    def open(self, name: str, pair: tuple[SendT, ReceiveT]) -> tuple[SendT, ReceiveT]:
        """Show ``pair`` (from ``trio.open_memory_channel``) as ``name``; return it."""
        self.show(name, pair[0])
        return pair

    def show(self, name: str, end: ReceiveT | SendT) -> None:
        """Show a channel already shown under another name as ``name`` too."""
        self._shown[name] = end

    def metrics(self) -> Iterable[Metric]:
        stats = {(name,): end.statistics() for name, end in self._shown.items()}
        yield gauge(
            "marketd_channel_queued_batches",
            "Batches waiting in each bounded pipeline channel.",
            ("channel",),
            {key: float(st.current_buffer_used) for key, st in stats.items()},
        )
        yield gauge(
            "marketd_channel_capacity_batches",
            "Capacity of each bounded pipeline channel.",
            ("channel",),
            {key: float(st.max_buffer_size) for key, st in stats.items()},
        )
