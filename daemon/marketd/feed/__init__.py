"""Binance WebSocket feeds: plan connections, keep them alive, hand on frame batches."""

from __future__ import annotations

from marketd.feed.connection import Feed, StaleFeed
from marketd.feed.service import FeedGroup
from marketd.feed.stats import RECONNECT_REASONS, FeedStatistics
from marketd.feed.streams import (
    ConnectionPlan,
    SubscribeMessage,
    plan_connections,
    plan_subscribe_messages,
    stream_names,
)

__all__ = [
    "RECONNECT_REASONS",
    "ConnectionPlan",
    "Feed",
    "FeedGroup",
    "FeedStatistics",
    "StaleFeed",
    "SubscribeMessage",
    "plan_connections",
    "plan_subscribe_messages",
    "stream_names",
]
