"""Every configured connection as one service, with one statistics view (trio)."""

from __future__ import annotations

from typing import NoReturn

import trio

from marketd.config.settings import BinanceSettings, Settings
from marketd.feed.connection import Feed
from marketd.feed.stats import FeedStatistics
from marketd.feed.streams import ConnectionPlan, plan_connections
from marketd.pipeline.records import FrameBatch


class FeedSet:
    """The feeds of a configuration: ``serve`` runs them all, ``statistics`` lists them."""

    def __init__(self, plans: tuple[ConnectionPlan, ...], settings: BinanceSettings) -> None:
        self.feeds = tuple(Feed(plan, settings) for plan in plans)

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedSet:
        return cls(plan_connections(settings.subscriptions, settings.binance), settings.binance)

    def statistics(self) -> tuple[FeedStatistics, ...]:
        return tuple(feed.statistics() for feed in self.feeds)

    async def serve(
        self,
        out: trio.MemorySendChannel[FrameBatch],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> NoReturn:
        """Start every feed in turn (each once subscribed), then report started.

        Each feed gets a clone of ``out``; this task closes its own end, so the receiver
        sees end-of-channel once every feed has stopped.
        """
        async with out, trio.open_nursery() as nursery:
            for feed in self.feeds:
                await nursery.start(feed.serve, out.clone())
            task_status.started()
            await trio.sleep_forever()
        raise AssertionError("unreachable: sleep_forever returned")
