"""Candlesticks: ``kline``, every interval."""

from __future__ import annotations

import msgspec

from marketd.data.events import Tick
from marketd.data.records import Record, RecordBatch
from marketd.exchanges.binance import Kline
from marketd.exchanges.binance.handlers.common import EventHandler

_decode_kline = msgspec.json.Decoder(Kline).decode


class Klines(EventHandler):
    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_kline(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        b = e.bar
        k = ev.kline
        k.open_time_ms = b.open_time
        k.close_time_ms = b.close_time
        k.interval = b.interval
        k.first_trade_id = b.first_trade_id
        k.last_trade_id = b.last_trade_id
        k.open_price = b.open_price
        k.close_price = b.close_price
        k.high_price = b.high_price
        k.low_price = b.low_price
        k.base_volume = b.base_volume
        k.trade_count = b.trade_count
        k.closed = b.closed
        k.quote_volume = b.quote_volume
        k.taker_buy_base_volume = b.taker_buy_base_volume
        k.taker_buy_quote_volume = b.taker_buy_quote_volume
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, 0,
            )
        )  # fmt: skip
        if self.tick:
            out.attach(Tick(self.market.value, symbol, e.event_time, b.close_price))
