"""The USD-M-only kinds: ``markPriceUpdate`` (single and array streams) and ``forceOrder``."""

from __future__ import annotations

import msgspec

from marketd.data.events import Tick
from marketd.data.records import Record, RecordBatch
from marketd.exchanges.binance import ForceOrder, MarkPriceUpdate
from marketd.exchanges.binance.handlers.common import ArrayHandler, EventHandler

_decode_mark_price = msgspec.json.Decoder(MarkPriceUpdate).decode
_decode_mark_prices = msgspec.json.Decoder(list[MarkPriceUpdate]).decode
_decode_force_order = msgspec.json.Decoder(ForceOrder).decode


def _mark_tick(market: str, e: MarkPriceUpdate) -> Tick:
    return Tick(market, e.symbol, e.event_time, e.mark_price, "", "", e.index_price, e.funding_rate)


class MarkPrices(ArrayHandler):
    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_mark_price(raw)
        out.append(self.record(e, received_ns))
        if self.tick:
            out.attach(_mark_tick(self.market.value, e))

    def handle_array(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        make = self.record
        items = _decode_mark_prices(raw)
        out.extend([make(e, received_ns) for e in items])
        if self.tick:
            m = self.market.value
            out.attach_last([_mark_tick(m, e) for e in items])

    def record(self, e: MarkPriceUpdate, received_ns: int) -> Record:
        symbol = e.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        m = ev.mark_price
        m.mark_price = e.mark_price
        m.index_price = e.index_price
        m.estimated_settle_price = e.estimated_settle_price
        m.funding_rate = e.funding_rate
        m.next_funding_time_ms = e.next_funding_time
        value = ev.SerializeToString()
        return Record(
            self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
            self.kind, symbol, 0,
        )  # fmt: skip


class ForceOrders(EventHandler):
    """Liquidations: one per payload, even on the all-market stream."""

    __slots__ = ()

    def handle(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_force_order(raw)
        o = e.order
        symbol = o.symbol
        ev = self.event
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        q = ev.liquidation
        q.side = o.side
        q.order_type = o.order_type
        q.time_in_force = o.time_in_force
        q.quantity = o.quantity
        q.price = o.price
        q.average_price = o.average_price
        q.status = o.status
        q.last_filled_quantity = o.last_filled_quantity
        q.filled_quantity = o.filled_quantity
        q.trade_time_ms = o.trade_time
        value = ev.SerializeToString()
        out.append(
            Record(
                self.topic, symbol.encode(), value, self.headers, received_ns, self.market,
                self.kind, symbol, 0,
            )
        )  # fmt: skip
        if self.tick:
            # The average fill price (the order's limit price until something filled).
            price = o.average_price if o.average_price.strip("0.") else o.price
            out.attach(Tick(self.market.value, symbol, e.event_time, price, "",
                            o.filled_quantity, "", "", o.side))  # fmt: skip
