"""One process's run: start in order, serve until stopped, drain within a grace period.

:class:`Lifecycle` is handed the stages and a few callables, and knows nothing of the
components behind them. :meth:`Lifecycle.run`:

1. starts HTTP first (probes and metrics answer while the rest starts), then the
   background services, then the pipeline stages in dependency order
   (:meth:`~marketd.runtime.stage.Supervisor.start`), then the intake, and tells systemd;
2. at ``stop`` cancels the intake: each stage then sees its input end, drains, and
   closes its output, all of it bounded by the grace period. A stop before the pipeline
   has started cancels it at once. With a spool, once everything received is durable in
   it, the drain goes on only while the sink is connected;
3. logs the verdict and the statistics, cancels the services, then stops HTTP.

The verdict is False only when the grace period cut a drain short with records neither
delivered nor durable in the spool (``marketd run`` then exits 1).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import structlog
import trio

from marketd.obs.systemd import notify_stopping, serve_systemd_notify
from marketd.runtime.stage import Stage, Supervisor

log = structlog.get_logger(__name__)

_SHUTDOWN_POLL_S = 0.1


class Spooled(Protocol):
    """The spool, as the drain sees it."""

    # Set once intake has ended and everything received is fsynced.
    durable: trio.Event

    def pending(self) -> int: ...


class Reports(Protocol):
    """What the process says about itself, to systemd and in its logs."""

    def healthy(self) -> bool: ...

    def status(self) -> str: ...

    def log_statistics(self) -> None: ...

    def summary(self) -> Mapping[str, Any]:
        """What runs here: the ``marketd running`` line's fields besides ``http``."""
        ...


@attrs.define(kw_only=True)
class Lifecycle:
    """The run of ``pipeline`` (in dependency order, drained at a stop) beside
    ``services`` (cancelled once the pipeline has drained); see the module doc."""

    supervisor: Supervisor
    pipeline: Sequence[Stage]
    services: Sequence[Stage]
    # ``serve_http(task_status=...)``: started first; ``started()`` gets the bound addresses.
    serve_http: Callable[..., Awaitable[None]]
    # Set once the pipeline has drained, for HTTP to end (WebSockets close with 1001).
    http_shutdown: trio.Event
    reports: Reports
    grace_s: float
    stats_interval_s: float
    # What feeds the pipeline, cancelled at a stop; None when this process has no intake.
    intake: Callable[[], Awaitable[None]] | None
    # The spool before the sink and whether the sink is connected (the end of the drain).
    spool: Spooled | None
    connected: Callable[[], bool]
    http_binds: list[str] = attrs.field(init=False, factory=list)
    _intake_scope: trio.CancelScope = attrs.field(init=False, factory=trio.CancelScope)

    async def run(
        self,
        stop: trio.Event,
        *,
        task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
    ) -> bool:
        """Run until ``stop`` is set, then drain; ``started()`` gets the HTTP addresses
        once the pipeline runs. Return True if everything was flushed."""
        drained = True
        async with trio.open_nursery() as root:
            self.http_binds = await root.start(self.serve_http)
            running = trio.Event()
            # Background services, cancelled once the pipeline has drained.
            async with trio.open_nursery() as services:
                services.start_soon(self._log_periodically)
                for stage in self.services:
                    services.start_soon(self.supervisor.serve, stage)
                with trio.CancelScope() as pipeline_scope:
                    # A stop before the sink is up (Kafka unreachable) must not wait for it.
                    services.start_soon(_cancel_if_stopped_early, stop, running, pipeline_scope)
                    async with trio.open_nursery() as pipeline:
                        await self._start_pipeline(pipeline)
                        running.set()
                        task_status.started(self.http_binds)
                        notify = functools.partial(
                            serve_systemd_notify, self.reports.healthy, status=self.reports.status
                        )
                        await services.start(notify)
                        await stop.wait()
                        notify_stopping()
                        log.info("stopping intake; draining", grace_s=self.grace_s)
                        self._intake_scope.cancel()
                        pipeline_scope.deadline = trio.current_time() + self.grace_s
                        if self.spool is not None:
                            services.start_soon(
                                self._end_drain_once_spooled, self.spool, pipeline_scope
                            )
                if pipeline_scope.cancelled_caught:
                    drained = self._verdict_when_cut_short(running.is_set())
                self.reports.log_statistics()
                services.cancel_scope.cancel()
            # WebSocket handlers see this and close with 1001; Hypercorn then returns.
            self.http_shutdown.set()
            root.cancel_scope.deadline = trio.current_time() + 5
        return drained

    def _verdict_when_cut_short(self, was_running: bool) -> bool:
        """Log why the drain was cut short; return whether nothing accepted was lost."""
        if not was_running:
            log.warning("stopped before the pipeline was ready; nothing was accepted")
            return True
        if self.spool is not None and self.spool.durable.is_set():
            log.warning(
                "stopped with records in the spool; the next start delivers them",
                pending=self.spool.pending(),
            )
            return True
        log.error("grace period expired before the pipeline drained")
        return False

    async def _start_pipeline(self, pipeline: trio.Nursery) -> None:
        """Start the stages in dependency order, then the intake."""
        await self.supervisor.start(pipeline, self.pipeline)
        if self.intake is not None:
            pipeline.start_soon(self._serve_intake, self.intake)
        log.info("marketd running", http=self.http_binds, **self.reports.summary())

    async def _serve_intake(self, intake: Callable[[], Awaitable[None]]) -> None:
        with self._intake_scope:
            await intake()

    async def _end_drain_once_spooled(
        self, spool: Spooled, pipeline_scope: trio.CancelScope
    ) -> None:
        """At shutdown, once everything received is fsynced in the spool, keep flushing to
        Kafka only while Kafka takes it: an unreachable broker ends the drain at once (the
        records wait in the spool) instead of holding the stop for the whole grace period.
        (Its log lines name Kafka, the one remote sink, as operators search for them.)"""
        await spool.durable.wait()
        log.info("intake drained into the spool; flushing to Kafka", pending=spool.pending())
        while self.connected():  # noqa: ASYNC110 - polled state, no event
            await trio.sleep(_SHUTDOWN_POLL_S)
        log.warning("Kafka unreachable while stopping; records stay in the spool")
        pipeline_scope.cancel()

    async def _log_periodically(self) -> None:
        while True:
            await trio.sleep(self.stats_interval_s)
            self.reports.log_statistics()


async def _cancel_if_stopped_early(
    stop: trio.Event, running: trio.Event, scope: trio.CancelScope
) -> None:
    await stop.wait()
    if not running.is_set():
        scope.cancel()
