"""Trades: ``trade`` and ``aggTrade``."""

from __future__ import annotations

import msgspec

from marketd.data.events import Tick
from marketd.data.records import Record, RecordBatch
from marketd.exchanges.binance import AggTrade, Trade
from marketd.exchanges.binance.handlers.common import EventHandler

_decode_trade = msgspec.json.Decoder(Trade).decode
_decode_agg_trade = msgspec.json.Decoder(AggTrade).decode


class Trades(EventHandler):
    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_trade(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        t = ev.trade
        t.trade_id = e.trade_id
        t.price = e.price
        t.quantity = e.quantity
        t.trade_time_ms = e.trade_time
        t.buyer_is_maker = e.buyer_is_maker
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, e.trade_id,
            )
        )  # fmt: skip
        if self.tick:
            out.attach(Tick(self.market.value, symbol, e.event_time, e.price, "", e.quantity))


class AggTrades(EventHandler):
    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_agg_trade(raw)
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        a = ev.agg_trade
        a.agg_trade_id = e.agg_trade_id
        a.price = e.price
        a.quantity = e.quantity
        a.first_trade_id = e.first_trade_id
        a.last_trade_id = e.last_trade_id
        a.trade_time_ms = e.trade_time
        a.buyer_is_maker = e.buyer_is_maker
        a.normal_quantity = e.normal_quantity
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, e.agg_trade_id,
            )
        )  # fmt: skip
        if self.tick:
            out.attach(Tick(self.market.value, symbol, e.event_time, e.price, "", e.quantity))
