"""Restartable children and the shutdown signal (the supervisor's building blocks).

``serve_restarting`` runs a child, restarts it with capped jittered backoff when it
fails with an error on the allow-list, and returns when the child returns (for a
pipeline stage: its input was closed). Anything not on the allow-list propagates and
stops the daemon with a clear message.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import attrs
import structlog
import trio

from marketd.errors import RetryableError
from marketd.runtime.backoff import Backoff, BackoffPolicy

log = structlog.get_logger(__name__)

RETRYABLE: tuple[type[Exception], ...] = (RetryableError, OSError, trio.BrokenResourceError)

Child = Callable[..., Awaitable[None]]


@attrs.define
class ChildState:
    name: str
    starts: int = 0
    failures: int = 0
    running: bool = False
    last_error: str = ""


async def serve_restarting(
    name: str,
    child: Child,
    policy: BackoffPolicy,
    state: ChildState | None = None,
    *,
    retryable: tuple[type[Exception], ...] = RETRYABLE,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``await nursery.start(child)`` forever; restart on retryable failures.

    ``child`` is called afresh on each start, so it must take fresh resources (channel
    clones) each time. ``task_status.started()`` is called once, after the first start.
    """
    state = state or ChildState(name)
    backoff = Backoff(policy)
    reported = False
    while True:
        began = trio.current_time()
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                state.starts += 1
                await nursery.start(child)
                state.running = True
                if not reported:
                    reported = True
                    task_status.started()
        except* retryable as group:
            failure = group.exceptions[0] if len(group.exceptions) == 1 else group
        state.running = False
        if failure is None:
            return
        state.failures += 1
        state.last_error = repr(failure)
        backoff.ran_for(trio.current_time() - began)
        delay = backoff.next_delay()
        log.warning("child failed; restarting", child=name, error=repr(failure), delay_s=delay)
        await trio.sleep(delay)


async def wait_for_signal(stop: trio.Event, signals: tuple[int, ...] | None = None) -> None:
    """Set ``stop`` on the first SIGINT/SIGTERM; a second one is left to the default."""
    wanted = signals or (signal.SIGINT, signal.SIGTERM)
    with trio.open_signal_receiver(*wanted) as received:
        async for signum in received:
            log.info("signal received; shutting down", signal=signal.Signals(signum).name)
            stop.set()
            return
