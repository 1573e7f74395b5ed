"""Feeds → normalizer → books against the fake exchange, in-process (what the Daemon wires)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import attrs
import trio
from kit.daemon import binance_settings

from marketd.books.service import Books
from marketd.config.books import BookSettings
from marketd.config.settings import BackoffSettings, Settings, Subscription
from marketd.data.records import FrameBatch, Market, Record
from marketd.fakex import FakeExchange
from marketd.feed.connection import Feed
from marketd.feed.streams import plan_connections
from marketd.pipeline.codecs import Codecs
from marketd.pipeline.normalizer import Normalizer
from marketd.status import StatusStream
from marketd.v1.market_data_pb2 import MarketEvent


def book_settings(
    fx: FakeExchange, markets: dict[Market, list[str]], books: BookSettings
) -> Settings:
    base = Settings()
    binance = binance_settings(
        fx, rest_timeout_s=5.0, reconnect=BackoffSettings(initial_s=0.05, max_s=0.2)
    )
    subs = tuple(
        Subscription(market=m, symbols=tuple(names), channels=("depth@100ms",))
        for m, names in markets.items()
    )
    pipeline = attrs.evolve(base.pipeline, backfill_trades=False)
    return attrs.evolve(base, binance=binance, subscriptions=subs, books=books, pipeline=pipeline)


@contextlib.asynccontextmanager
async def running_books(
    settings: Settings,
    on_batch: Callable[[list[Record]], None],
    status: StatusStream | None = None,
) -> AsyncIterator[Books]:
    """Run the pipeline; ``on_batch`` sees every batch the books stage hands on; the
    books report to ``status``."""
    books = Books(settings, status=status)
    frames_send, frames_recv = trio.open_memory_channel[FrameBatch](16)
    mid_send, mid_recv = trio.open_memory_channel[list[Record]](16)
    out_send, out_recv = trio.open_memory_channel[list[Record]](16)

    async def sink() -> None:
        async with out_recv:
            async for batch in out_recv:
                on_batch(batch)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink)
        await nursery.start(books.serve, mid_recv, out_send)
        await nursery.start(Normalizer(Codecs(settings.kafka.topics)).serve, frames_recv, mid_send)
        async with frames_send:
            for plan in plan_connections(settings.subscriptions, settings.binance):
                nursery.start_soon(Feed(plan, settings.binance).serve, frames_send.clone())
        try:
            yield books
        finally:
            nursery.cancel_scope.cancel()


def decode(record: Record) -> MarketEvent:
    return MarketEvent.FromString(record.value)
