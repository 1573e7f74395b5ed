"""``GET /api/status``: how this process and each part it runs are doing, as JSON.

Served in every role, like ``/readyz``; the UI's status panel and header badge poll it.
:meth:`marketd.health.Health.status_report` makes the body from the components'
statistics with the pure section builders here. ``ready`` and ``not_ready`` are those of
``/readyz``; a section is absent when this process does not run its component::

    {"ready": false, "not_ready": ["feed:usdm-market-0"], "roles": ["collector", ...],
     "connections": [{"id", "market", "route", "state", "ready", "streams",
                      "messages_per_s", "last_frame_age_s", "delay_ms", "reconnects",
                      "last_error"}],
     "books": {"synced", "resyncing", "waiting",
               "not_synced": [{"market", "symbol", "state", "resyncs", "out_of_sync_s"}]},
     "spool": {"backlog", "oldest_age_s", "bytes", "max_bytes", "full"},
     "kafka": {"connected", "in_flight", "pending_retry", "oldest_in_flight_s",
               "last_error", "last_error_age_s"},
     "detector": {"running", "source", "lag_s", "ticks", "alerts", "instruments"},
     "gateway": {"clients", "alerts_from"}}

A connection's ``state`` is ``subscribed``, ``connected`` (not subscribed yet),
``reconnecting``, or ``connecting`` (never connected yet); ``ready`` is its readiness
(subscribed, a frame within ``binance.stale_after_s``). ``messages_per_s`` counts frames
read (data and control) over the last few seconds, from samples taken when the status is
asked for (:class:`RateSampler`): null until a request a second or more after the first.
``delay_ms`` is the receipt time of the newest decoded event with an exchange time (a
depth diff, a price the detector watches) that ended a frame batch, minus that event
time: the exchange's own delay, the network and clock skew together; null while the
connection carried none (trades only, say).

``books`` is there when the process keeps order books (depth streams); ``waiting`` ones
have never synced; ``not_synced`` lists at most :data:`MAX_BOOKS_LISTED`,
worst first (longest without a synced book, then most resyncs). Times are seconds,
rounded; ``delay_ms`` is milliseconds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson
from quart import Response
from quart_trio import QuartTrio

if TYPE_CHECKING:
    from marketd.alerts.service import DetectorServiceStatistics
    from marketd.books.service import UnsyncedBook
    from marketd.feed.stats import FeedStatistics
    from marketd.kafka.delivery import PublisherStatistics
    from marketd.spool.model import SpoolStatistics

StatusReport = Callable[[], dict[str, Any]]

MAX_BOOKS_LISTED: Final = 20
RATE_WINDOW_S: Final = 5.0

# The book states as the status names them (books/sync.py's State values → these).
_BOOK_STATES: Final = {"synced": "synced", "resyncing": "resyncing", "syncing": "waiting"}


def install_status(app: QuartTrio, report: StatusReport) -> None:
    """Serve ``GET /api/status`` on ``app`` with the body ``report()`` makes (always 200:
    the body says whether the process is ready)."""

    async def status() -> Response:
        response = Response(orjson.dumps(report()), content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule("/api/status", "api_status", status, methods=["GET"])


class RateSampler:
    """Per-key rates of running counters over the last ``window_s`` seconds or a little
    more, from samples taken when a rate is asked for: nothing on the counters' hot path.

    The base of a rate is the newest sample at least ``window_s`` old (else the oldest);
    there is no rate over less than ``min_span_s`` (too few frames to say). Samples closer
    than ``min_gap_s`` to the previous one are not kept, so callers asking often (several
    browsers) keep the memory bounded by ``window_s / min_gap_s`` samples per key.
    """

    def __init__(
        self, window_s: float = RATE_WINDOW_S, min_span_s: float = 1.0, min_gap_s: float = 0.25
    ) -> None:
        self.window_s = window_s
        self.min_span_s = min_span_s
        self.min_gap_s = min_gap_s
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def rate(self, key: str, count: int, now: float) -> float | None:
        """Per second of ``key``'s counter, now at ``count`` (monotonic time ``now``);
        None until there is a sample ``min_span_s`` old, and when the counter went back
        (then it starts again)."""
        samples = self._samples.setdefault(key, deque())
        if samples and count < samples[-1][1]:
            samples.clear()
        while len(samples) > 1 and now - samples[1][0] >= self.window_s:
            samples.popleft()
        rate = None
        if samples and now - samples[0][0] >= self.min_span_s:
            then, before = samples[0]
            rate = (count - before) / (now - then)
        if not samples or now - samples[-1][0] >= self.min_gap_s:
            samples.append((now, count))
        return rate


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def connection_state(st: FeedStatistics) -> str:
    if st.subscribed:
        return "subscribed"
    if st.connected:
        return "connected"
    return "reconnecting" if st.connects else "connecting"


def connection_status(
    st: FeedStatistics, *, ready: bool, rate: float | None, event: tuple[int, int] | None
) -> dict[str, Any]:
    """One connection; ``event`` is (exchange event time ms, receipt time ns) of the newest
    decoded event that ended a batch of it, if any."""
    return {
        "id": st.connection_id,
        "market": st.market.value,
        "route": st.route,
        "state": connection_state(st),
        "ready": ready,
        "streams": st.streams,
        "messages_per_s": _round(rate, 1),
        "last_frame_age_s": _round(st.last_frame_age_s),
        "delay_ms": None if event is None else round(event[1] / 1e6 - event[0]),
        "reconnects": st.reconnects_total,
        "last_error": st.last_error or None,
    }


def books_status(
    states: Mapping[tuple[str, str], int], unsynced: list[UnsyncedBook], wall_ns: int
) -> dict[str, Any]:
    """Counts by state (``states``: (market, state) → books) and the books not synced."""
    counts = dict.fromkeys(_BOOK_STATES.values(), 0)
    for (_, state), n in states.items():
        counts[_BOOK_STATES[state]] += n
    listed = [
        {
            "market": b.market.value,
            "symbol": b.symbol,
            "state": _BOOK_STATES[b.state.value],
            "resyncs": b.resyncs,
            "out_of_sync_s": (
                round(max(0, wall_ns - b.synced_until_ns) / 1e9, 1) if b.synced_until_ns else None
            ),
        }
        for b in unsynced[:MAX_BOOKS_LISTED]
    ]
    return {**counts, "not_synced": listed}


def spool_status(st: SpoolStatistics | None, *, full: bool, max_bytes: int) -> dict[str, Any]:
    """``st`` is None until the spool is open."""
    if st is None:
        return {"backlog": 0, "oldest_age_s": None, "bytes": 0, "max_bytes": max_bytes,
                "full": full}  # fmt: skip
    return {
        "backlog": st.records_pending,
        "oldest_age_s": _round(st.oldest_pending_age_s) if st.records_pending else None,
        "bytes": st.bytes,
        "max_bytes": st.max_bytes,
        "full": full,
    }


def kafka_status(st: PublisherStatistics, wall_ns: int) -> dict[str, Any]:
    at = st.last_error_at  # wall clock, seconds
    return {
        "connected": st.connected,
        "in_flight": st.in_flight,
        "pending_retry": st.pending_retry,
        "oldest_in_flight_s": _round(st.oldest_in_flight_s),
        "last_error": st.last_error,
        "last_error_age_s": None if at is None else _round(max(0.0, wall_ns / 1e9 - at), 1),
    }


def detector_status(st: DetectorServiceStatistics, *, source: str, wall_ns: int) -> dict[str, Any]:
    """``lag_s``: now minus the newest exchange event time the detector has seen."""
    last = st.last_event_time_ms
    return {
        "running": st.running,
        "source": source,
        "lag_s": _round(max(0.0, wall_ns / 1e9 - last / 1e3)) if last else None,
        "ticks": st.ticks,
        "alerts": sum(st.alerts.values()),
        "instruments": st.instruments,
    }
