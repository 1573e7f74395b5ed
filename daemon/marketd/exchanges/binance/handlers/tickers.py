"""Tickers: ``bookTicker``, the 24 h mini and full tickers (single and array streams), the
spot rolling-window tickers and ``avgPrice``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from marketd.data.events import Tick
from marketd.data.records import Market, Record, RecordBatch
from marketd.exchanges.binance import (
    AvgPrice,
    BookTicker,
    DayTicker,
    FourHourTicker,
    FuturesBookTicker,
    FuturesTicker,
    HourTicker,
    MiniTicker,
    SpotTicker,
    WindowTicker,
)
from marketd.exchanges.binance.handlers.common import ArrayHandler, EventHandler

_decode_mini_ticker = msgspec.json.Decoder(MiniTicker).decode
_decode_mini_tickers = msgspec.json.Decoder(list[MiniTicker]).decode
_decode_avg_price = msgspec.json.Decoder(AvgPrice).decode
# Spot rolling-window tickers: kind → (decoder, the ``Ticker.window`` value).
_WINDOW_TICKERS: dict[str, tuple[Callable[[msgspec.Raw], WindowTicker], str]] = {
    "1hTicker": (msgspec.json.Decoder(HourTicker).decode, "1h"),
    "4hTicker": (msgspec.json.Decoder(FourHourTicker).decode, "4h"),
    "1dTicker": (msgspec.json.Decoder(DayTicker).decode, "1d"),
}


class BookTickers(EventHandler):
    __slots__ = ("decode",)

    def __init__(self, market: Market, kind: str, topic: str) -> None:
        super().__init__(market, kind, topic)
        self.decode: Callable[[msgspec.Raw], BookTicker] = msgspec.json.Decoder(
            BookTicker if market is Market.SPOT else FuturesBookTicker
        ).decode

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = self.decode(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.received_ns = received_ns
        b = ev.book_ticker
        b.update_id = e.update_id
        b.bid_price = e.bid_price
        b.bid_quantity = e.bid_quantity
        b.ask_price = e.ask_price
        b.ask_quantity = e.ask_quantity
        if isinstance(e, FuturesBookTicker):
            ev.event_time_ms = e.event_time
            b.transaction_time_ms = e.transaction_time
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, e.update_id,
            )
        )  # fmt: skip


class MiniTickers(ArrayHandler):
    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_mini_ticker(raw)
        out.append(self.record(e, received_ns))
        if self.tick:
            out.attach(
                Tick(self.market.value, e.symbol, e.event_time, e.close_price, e.quote_volume)
            )

    def handle_array(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        make = self.record
        items = _decode_mini_tickers(raw)
        out.extend([make(e, received_ns) for e in items])
        if self.tick:
            m = self.market.value
            out.attach_last(
                [Tick(m, e.symbol, e.event_time, e.close_price, e.quote_volume) for e in items]
            )

    def record(self, e: MiniTicker, received_ns: int) -> Record:
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        m = ev.mini_ticker
        m.close_price = e.close_price
        m.open_price = e.open_price
        m.high_price = e.high_price
        m.low_price = e.low_price
        m.base_volume = e.base_volume
        m.quote_volume = e.quote_volume
        value = ev.SerializeToString()
        return Record(
            self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
            self.kind, symbol, 0,
        )  # fmt: skip


class Tickers(ArrayHandler):
    """The 24 h ticker; spot's carries five more fields."""

    __slots__ = ("decode", "decode_array")

    def __init__(self, market: Market, kind: str, topic: str) -> None:
        super().__init__(market, kind, topic)
        self.decode: Callable[[msgspec.Raw], FuturesTicker]
        self.decode_array: Callable[[msgspec.Raw], Sequence[FuturesTicker]]
        if market is Market.SPOT:
            self.decode = msgspec.json.Decoder(SpotTicker).decode
            self.decode_array = msgspec.json.Decoder(list[SpotTicker]).decode
        else:
            self.decode = msgspec.json.Decoder(FuturesTicker).decode
            self.decode_array = msgspec.json.Decoder(list[FuturesTicker]).decode

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = self.decode(raw)
        out.append(self.record(e, received_ns))
        if self.tick:
            out.attach(
                Tick(self.market.value, e.symbol, e.event_time, e.last_price, e.quote_volume)
            )

    def handle_array(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        make = self.record
        items = self.decode_array(raw)
        out.extend([make(e, received_ns) for e in items])
        if self.tick:
            m = self.market.value
            out.attach_last(
                [Tick(m, e.symbol, e.event_time, e.last_price, e.quote_volume) for e in items]
            )

    def record(self, e: FuturesTicker, received_ns: int) -> Record:
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        t = ev.ticker
        t.price_change = e.price_change
        t.price_change_percent = e.price_change_percent
        t.weighted_avg_price = e.weighted_avg_price
        t.last_price = e.last_price
        t.last_quantity = e.last_quantity
        t.open_price = e.open_price
        t.high_price = e.high_price
        t.low_price = e.low_price
        t.base_volume = e.base_volume
        t.quote_volume = e.quote_volume
        t.open_time_ms = e.open_time
        t.close_time_ms = e.close_time
        t.first_trade_id = e.first_trade_id
        t.last_trade_id = e.last_trade_id
        t.trade_count = e.trade_count
        if isinstance(e, SpotTicker):
            t.first_trade_price = e.first_trade_price
            t.best_bid_price = e.best_bid_price
            t.best_bid_quantity = e.best_bid_quantity
            t.best_ask_price = e.best_ask_price
            t.best_ask_quantity = e.best_ask_quantity
        value = ev.SerializeToString()
        return Record(
            self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
            self.kind, symbol, 0,
        )  # fmt: skip


class WindowTickers(EventHandler):
    """One spot rolling-window ticker kind (``1hTicker`` ...): the ``Ticker`` message with
    ``window`` set; ``Q`` and the spot 24 h extras stay empty (this reused message never
    sets them)."""

    __slots__ = ("decode", "window")

    def __init__(self, market: Market, kind: str, topic: str) -> None:
        super().__init__(market, kind, topic)
        self.decode, self.window = _WINDOW_TICKERS[kind]

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = self.decode(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        t = ev.ticker
        t.window = self.window
        t.price_change = e.price_change
        t.price_change_percent = e.price_change_percent
        t.weighted_avg_price = e.weighted_avg_price
        t.last_price = e.last_price
        t.open_price = e.open_price
        t.high_price = e.high_price
        t.low_price = e.low_price
        t.base_volume = e.base_volume
        t.quote_volume = e.quote_volume
        t.open_time_ms = e.open_time
        t.close_time_ms = e.close_time
        t.first_trade_id = e.first_trade_id
        t.last_trade_id = e.last_trade_id
        t.trade_count = e.trade_count
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, 0,
            )
        )  # fmt: skip


class AvgPrices(EventHandler):
    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_avg_price(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        a = ev.avg_price
        a.interval = e.interval
        a.average_price = e.average_price
        a.last_trade_time_ms = e.last_trade_time
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, 0,
            )
        )  # fmt: skip
        if self.tick:
            out.attach(Tick(self.market.value, symbol, e.event_time, e.average_price))
