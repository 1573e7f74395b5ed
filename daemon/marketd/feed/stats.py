"""Per-connection statistics: a frozen snapshot for ``/readyz``, metrics and logs."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from marketd.data.records import Market

# Why a connection was replaced.
RECONNECT_REASONS = ("error", "stale", "rotation", "server_shutdown", "closed")


@attrs.frozen
class FeedStatistics:
    """One connection's state at one moment.

    Times are ``trio.current_time()`` (monotonic seconds). ``frames_received`` counts
    every frame read (data and control); ``frames_forwarded`` counts frames handed on
    in batches; ``frames_pending`` are read but not yet handed on.
    """

    connection_id: str
    market: Market
    route: str
    url: str
    streams: int
    connected: bool
    subscribed: bool
    connects: int
    reconnects: Mapping[str, int]
    frames_received: int
    control_frames: int
    frames_forwarded: int
    batches_sent: int
    frames_pending: int
    last_frame_at: float | None
    last_frame_age_s: float | None
    last_error: str

    @property
    def reconnects_total(self) -> int:
        return sum(self.reconnects.values())
