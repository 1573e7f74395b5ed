"""Depth: ``depthUpdate`` diffs (to the books) and partial depth (``depth<N>``), whose
spot and USD-M payloads differ in shape."""

from __future__ import annotations

import functools
from collections.abc import Callable

import msgspec

from marketd.data.events import DepthDiff
from marketd.data.records import Market, Record, RecordBatch
from marketd.exchanges.binance import DepthUpdate, FuturesDepthUpdate, PartialDepth
from marketd.exchanges.binance.handlers.common import EventHandler, Handler, KindHandler, fill
from marketd.exchanges.binance.values import MAX_SYMBOL_CHARS, values_check

_decode_partial_depth = msgspec.json.Decoder(PartialDepth).decode
_decode_futures_depth = msgspec.json.Decoder(FuturesDepthUpdate).decode
_is_symbol = values_check("y")


def _levels(channel: str) -> int:
    """The level count of a partial-depth channel: ``depth20@100ms`` → 20."""
    return int(channel.removeprefix("depth").partition("@")[0])


class DepthDiffs(EventHandler):
    """Diffs go to the depth topic, and to the books as a :class:`DepthDiff` beside."""

    __slots__ = ("decode",)

    def __init__(self, market: Market, kind: str, topic: str) -> None:
        super().__init__(market, kind, topic)
        self.decode: Callable[[msgspec.Raw], DepthUpdate] = msgspec.json.Decoder(
            DepthUpdate if market is Market.SPOT else FuturesDepthUpdate
        ).decode

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = self.decode(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        d = ev.depth_diff
        d.first_update_id = e.first_update_id
        d.final_update_id = e.final_update_id
        if isinstance(e, FuturesDepthUpdate):
            d.prev_final_update_id = e.prev_final_update_id
            d.transaction_time_ms = e.transaction_time
        # Inlined rather than fill(): the hottest loop, and add() then two assignments is
        # ~20% cheaper than add(price=..., quantity=...).
        bids = d.bids
        del bids[:]
        add = bids.add
        for price, quantity in e.bids:
            level = add()
            level.price = price
            level.quantity = quantity
        asks = d.asks
        del asks[:]
        add = asks.add
        for price, quantity in e.asks:
            level = add()
            level.price = price
            level.quantity = quantity
        value = ev.SerializeToString()
        record = Record(
            self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
            self.kind, symbol, e.final_update_id,
        )  # fmt: skip
        out.append(record)
        out.attach(
            DepthDiff(
                e.first_update_id, e.final_update_id,
                e.prev_final_update_id if type(e) is FuturesDepthUpdate else None,
                e.bids, e.asks, e.event_time, received_ns,
            )
        )  # fmt: skip


class SpotPartialDepth(KindHandler):
    """Spot ``{lastUpdateId,bids,asks}``: no event time, and the symbol only in the
    stream's name, so each stream gets its own handler with the symbol bound."""

    __slots__ = ()

    def for_channel(self, channel: str) -> Handler:
        """The channel's placeholder: it has no symbol yet, so it refuses every payload."""
        return functools.partial(self.handle, "", _levels(channel))

    def for_stream(self, symbol: str, channel: str) -> Handler | None:
        """The handler of one stream, its symbol bound (None when the stream name's symbol
        is not one Binance could list: an unknown stream)."""
        symbol = symbol.upper()  # stream names spell symbols in lower case
        if len(symbol) > MAX_SYMBOL_CHARS or _is_symbol(symbol) is None:
            return None
        return functools.partial(self.handle, symbol, _levels(channel))

    def handle(
        self, symbol: str, levels: int, raw: msgspec.Raw, received_ns: int, out: RecordBatch
    ) -> None:
        if not symbol:
            raise ValueError("spot partial depth without the stream name's symbol")
        e = _decode_partial_depth(raw)
        ev = self.event
        ev.symbol = symbol
        ev.received_ns = received_ns
        p = ev.partial_book
        p.last_update_id = e.last_update_id
        p.levels = levels
        fill(p.bids, e.bids)
        fill(p.asks, e.asks)
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, 0,
            )
        )  # fmt: skip


class UsdmPartialDepth(KindHandler):
    """USD-M: diff-shaped (``e`` depthUpdate, ``U``/``u``/``pu``), but the top levels as
    they are: the raw topic, and not handed to the books."""

    __slots__ = ()

    def for_channel(self, channel: str) -> Handler:
        """Every stream of the channel: the payload names the symbol."""
        return functools.partial(self.handle, _levels(channel))

    def handle(self, levels: int, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_futures_depth(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        p = ev.partial_book
        p.last_update_id = e.final_update_id
        p.levels = levels
        p.first_update_id = e.first_update_id
        p.prev_final_update_id = e.prev_final_update_id
        p.transaction_time_ms = e.transaction_time
        fill(p.bids, e.bids)
        fill(p.asks, e.asks)
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, 0,
            )
        )  # fmt: skip
