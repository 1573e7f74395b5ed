"""Poll a condition until it holds: for state that other tasks, threads or processes change
and that offers no event to wait on (statistics counters, /metrics, a page's DOM).

Both pollers are deadline-based: they wait as long as the condition needs, up to a
generous ``timeout``, and never for a fixed time whose sufficiency depends on the
machine's speed. On timeout they raise ``AssertionError`` naming ``what`` was awaited, so
a failure reads as "timed out after 30 s waiting for the spool drained" rather than as
a bare ``TooSlowError`` from an enclosing ``fail_after``. Choose ``timeout`` below any
enclosing ``trio.fail_after`` so that this message is the one reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import trio


def _timed_out(timeout: float, what: str) -> AssertionError:
    return AssertionError(f"timed out after {timeout} s waiting for {what}")


# ASYNC109 prefers a caller's ``fail_after`` to a ``timeout`` parameter; here the deadline
# is the point: on expiry the poller itself fails, naming what it waited for.
async def poll_until(
    predicate: Callable[[], object],
    *,
    timeout: float,  # noqa: ASYNC109
    what: str,
    interval: float = 0.05,
) -> float:
    """In trio: call ``predicate`` every ``interval`` s until it returns a truthy value;
    return the seconds that took. ``AssertionError`` naming ``what`` after ``timeout`` s.

    An exception from ``predicate`` (e.g. "the daemon exited") propagates at once. The
    clock is trio's, so a test running under a mock clock polls in mock time.
    """
    began = trio.current_time()
    deadline = began + timeout
    while True:
        if predicate():
            return trio.current_time() - began
        now = trio.current_time()
        if now >= deadline:
            # Checked once more at (or after) the deadline above, so a condition that
            # became true during the last sleep is not reported as a timeout.
            raise _timed_out(timeout, what)
        await trio.sleep(min(interval, deadline - now))


def poll_until_blocking(
    predicate: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1
) -> float:
    """The blocking twin of :func:`poll_until`, for synchronous tests and worker threads
    (a Playwright script, a scenario run with ``trio.to_thread.run_sync``)."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        if predicate():
            return time.monotonic() - began
        now = time.monotonic()
        if now >= deadline:
            raise _timed_out(timeout, what)
        time.sleep(min(interval, deadline - now))
