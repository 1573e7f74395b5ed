"""The daemon's intake: every configured connection served together, observed as one (trio)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import trio
from prometheus_client.core import Metric

from marketd.config.settings import ExchangeSettings, Settings
from marketd.data.records import FrameBatch
from marketd.feed.connection import Feed
from marketd.feed.stats import FeedStatistics
from marketd.feed.streams import ConnectionPlan, plan_connections
from marketd.obs.metrics import counter, gauge
from marketd.status import StatusStream


def fresh(st: FeedStatistics, stale_after_s: float) -> bool:
    """A connection's readiness: subscribed, and a frame came within ``stale_after_s``."""
    age = st.last_frame_age_s
    return st.subscribed and age is not None and age <= stale_after_s


class FeedGroup:
    """The feeds of a configuration: ``serve`` runs them all; statistics, readiness and
    metrics per connection. Iterating gives the :class:`Feed` objects."""

    def __init__(
        self,
        plans: Iterable[ConnectionPlan],
        settings: ExchangeSettings,
        *,
        record_control: bool = False,
        status: StatusStream | None = None,
    ) -> None:
        self.feeds = tuple(
            Feed(plan, settings, record_control=record_control, status=status) for plan in plans
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        enabled: bool = True,
        *,
        record_control: bool = False,
        status: StatusStream | None = None,
    ) -> FeedGroup:
        """Every connection the subscriptions need (none unless ``enabled``);
        ``record_control``: their control frames and markers go downstream too (for the
        recorder); ``status``: their streams' ups and downs are reported there (see
        :class:`~marketd.feed.connection.Feed`)."""
        plans = plan_connections(settings.subscriptions, settings.binance) if enabled else ()
        return cls(plans, settings.binance, record_control=record_control, status=status)

    def __iter__(self) -> Iterator[Feed]:
        return iter(self.feeds)

    def __len__(self) -> int:
        return len(self.feeds)

    async def serve(
        self,
        out: trio.MemorySendChannel[FrameBatch],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run every feed until cancelled (that stops intake). ``started()`` at once: each
        feed connects on its own, and its statistics say when it is subscribed.

        Each feed gets a clone of ``out``; this task closes its own end, so the receiver
        sees end-of-channel once every feed has stopped.
        """
        async with out, trio.open_nursery() as nursery:
            for feed in self.feeds:
                nursery.start_soon(feed.serve, out.clone())
            task_status.started()

    def statistics(self) -> tuple[FeedStatistics, ...]:
        return tuple(feed.statistics() for feed in self.feeds)

    def readiness(self, stale_after_s: float) -> list[tuple[str, bool]]:
        """``(feed:<connection>, ready)`` per connection: subscribed, and a frame came
        within ``stale_after_s``."""
        return [(f"feed:{st.connection_id}", fresh(st, stale_after_s)) for st in self.statistics()]

    def metrics(self) -> Iterable[Metric]:
        stats = self.statistics()
        yield counter(
            "marketd_feed_handovers_total",
            "Make-before-break handovers (rotation, serverShutdown) per connection.",
            ("connection",),
            {(f.connection_id,): f.handovers for f in self.feeds},
        )
        yield counter(
            "marketd_feed_overlap_frames_dropped_total",
            "Frames of a new connection dropped at handover because the old one sent them.",
            ("connection",),
            {(f.connection_id,): f.overlap_frames_dropped for f in self.feeds},
        )
        yield gauge(
            "marketd_feed_connected",
            "1 when the feed connection is subscribed and reading.",
            ("connection",),
            {(s.connection_id,): float(s.subscribed) for s in stats},
        )
        yield counter(
            "marketd_feed_frames_total",
            "Frames received on each feed connection.",
            ("connection",),
            {(s.connection_id,): s.frames_received for s in stats},
        )
        yield counter(
            "marketd_feed_reconnects_total",
            "Feed reconnects by reason.",
            ("connection", "reason"),
            {(s.connection_id, r): n for s in stats for r, n in s.reconnects.items()},
        )
        yield gauge(
            "marketd_feed_last_frame_age_seconds",
            "Seconds since the last frame on each feed connection.",
            ("connection",),
            {
                (s.connection_id,): s.last_frame_age_s
                for s in stats
                if s.last_frame_age_s is not None
            },
        )
