"""Per-market stream handlers: one Binance payload (raw JSON) → ``MarketEvent`` records.

Used by :class:`marketd.codec.Codec`; pure and synchronous. Each handler decodes ``data``
with its typed msgspec decoder and fills a ``MarketEvent`` that it keeps and reuses: every
field the handler owns is assigned on every call (repeated fields are cleared first), so
the serialized bytes are exactly those of a freshly built message, at a third less cost.
A handler is therefore not re-entrant; a codec serves one thread (the trio thread).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec

from marketd.config import TopicSettings
from marketd.exchanges.binance import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    FuturesBookTicker,
    FuturesDepthUpdate,
    FuturesTicker,
    MarkPriceUpdate,
    MiniTicker,
    SpotTicker,
    Trade,
    vocabulary,
)
from marketd.records import Market, Record, RecordBatch
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent
from marketd.v1.market_data_pb2 import Market as PbMarket

# Appends the records made from one frame's ``data`` (raw JSON) to the list; raises
# ValueError (msgspec.DecodeError, or a Protobuf range/UTF-8 error) for a bad payload.
Handler = Callable[[msgspec.Raw, int, list[Record]], None]

PB_MARKET: dict[Market, PbMarket] = {Market.SPOT: MARKET_SPOT, Market.USDM: MARKET_USDM}

# The Kafka record header ``type``: the Binance event type, so consumers can filter
# without decoding the value.
HEADERS: dict[str, tuple[tuple[str, bytes], ...]] = {
    row.kind: (("type", row.kind.encode()),) for row in vocabulary.ROWS if row.decoded
}
_H_TRADE = HEADERS["trade"]
_H_AGG_TRADE = HEADERS["aggTrade"]
_H_DEPTH = HEADERS["depthUpdate"]
_H_BOOK_TICKER = HEADERS["bookTicker"]
_H_MINI_TICKER = HEADERS["24hrMiniTicker"]
_H_TICKER = HEADERS["24hrTicker"]
_H_MARK_PRICE = HEADERS["markPriceUpdate"]

# Distinct stream names remembered per market; beyond this the cache starts over, so a
# peer sending endless made-up stream names cannot grow memory.
MAX_CACHED_STREAMS = 8192

_decode_trade = msgspec.json.Decoder(Trade).decode
_decode_agg_trade = msgspec.json.Decoder(AggTrade).decode
_decode_mini_ticker = msgspec.json.Decoder(MiniTicker).decode
_decode_mini_tickers = msgspec.json.Decoder(list[MiniTicker]).decode
_decode_mark_price = msgspec.json.Decoder(MarkPriceUpdate).decode
_decode_mark_prices = msgspec.json.Decoder(list[MarkPriceUpdate]).decode


class MarketHandlers:
    """The handlers of one market, and the stream name → handler cache.

    The streams are the decoded rows of the vocabulary table
    (:mod:`marketd.exchanges.binance.vocabulary`); anything else is unknown.
    """

    def __init__(self, market: Market, topics: TopicSettings) -> None:
        self.market = market
        self.raw_topic = topics.raw
        self.depth_topic = topics.depth
        self.handlers: dict[str, Handler | None] = {}
        spot = market is Market.SPOT
        self._decode_depth = msgspec.json.Decoder(
            DepthUpdate if spot else FuturesDepthUpdate
        ).decode
        self._decode_book_ticker = msgspec.json.Decoder(
            BookTicker if spot else FuturesBookTicker
        ).decode
        self._decode_ticker: Callable[[msgspec.Raw], FuturesTicker]
        self._decode_tickers: Callable[[msgspec.Raw], Sequence[FuturesTicker]]
        if spot:
            self._decode_ticker = msgspec.json.Decoder(SpotTicker).decode
            self._decode_tickers = msgspec.json.Decoder(list[SpotTicker]).decode
        else:
            self._decode_ticker = msgspec.json.Decoder(FuturesTicker).decode
            self._decode_tickers = msgspec.json.Decoder(list[FuturesTicker]).decode

        # The reused messages, one per event type, with their constant fields set.
        pb_market = PB_MARKET[market]
        self._trade = MarketEvent(market=pb_market)
        self._agg_trade = MarketEvent(market=pb_market)
        self._depth = MarketEvent(market=pb_market)
        self._book_ticker = MarketEvent(market=pb_market)
        self._mini_ticker = MarketEvent(market=pb_market)
        self._ticker = MarketEvent(market=pb_market)
        self._mark_price = MarketEvent(market=pb_market)

        # The vocabulary table says which streams carry which kind; this is what decodes a
        # kind, one event or (for the array streams) a list of them.
        one: dict[str, Handler] = {
            "trade": self.trade,
            "aggTrade": self.agg_trade,
            "depthUpdate": self.depth,
            "bookTicker": self.book_ticker,
            "24hrMiniTicker": self.mini_ticker,
            "24hrTicker": self.ticker,
            "markPriceUpdate": self.mark_price,
        }
        many: dict[str, Handler] = {
            "24hrMiniTicker": self.mini_tickers,
            "24hrTicker": self.tickers,
            "markPriceUpdate": self.mark_prices,
        }
        # ``<symbol>@<channel>`` streams, by channel.
        self.channels: dict[str, Handler] = {
            c: one[row.kind] for c, row in vocabulary.BY_CHANNEL[market].items() if row.decoded
        }
        # All-market streams (``!...``), by full name.
        self.all_market: dict[str, Handler] = {
            s: (many if s in row.arrays else one)[row.kind]
            for s, row in vocabulary.BY_ALL_MARKET[market].items()
            if row.decoded
        }

    def resolve(self, stream: str) -> Handler | None:
        """The handler for ``stream`` (None: not supported), remembered for next time."""
        if stream.startswith("!"):
            handler = self.all_market.get(stream)
        else:
            symbol, _, channel = stream.partition("@")
            handler = self.channels.get(channel) if symbol else None
        if len(self.handlers) >= MAX_CACHED_STREAMS:
            self.handlers.clear()
        self.handlers[stream] = handler
        return handler

    # -- one handler per event type; ``raw`` is the frame's ``data`` ---------------------

    def trade(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        e = _decode_trade(raw)
        symbol = e.symbol
        ev = self._trade
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
                self.raw_topic, symbol.encode(), value, _H_TRADE, received_ns, self.market,
                "trade", symbol, e.trade_id,
            )
        )  # fmt: skip

    def agg_trade(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        e = _decode_agg_trade(raw)
        symbol = e.symbol
        ev = self._agg_trade
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
                self.raw_topic, symbol.encode(), value, _H_AGG_TRADE, received_ns, self.market,
                "aggTrade", symbol, e.agg_trade_id,
            )
        )  # fmt: skip

    def depth(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        e = self._decode_depth(raw)
        symbol = e.symbol
        ev = self._depth
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        d = ev.depth_diff
        d.first_update_id = e.first_update_id
        d.final_update_id = e.final_update_id
        if isinstance(e, FuturesDepthUpdate):
            d.prev_final_update_id = e.prev_final_update_id
            d.transaction_time_ms = e.transaction_time
        # add() then two assignments is ~20% cheaper than add(price=..., quantity=...).
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
            self.depth_topic, symbol.encode(), value, _H_DEPTH, received_ns, self.market,
            "depthUpdate", symbol, e.final_update_id,
        )  # fmt: skip
        out.append(record)
        if type(out) is RecordBatch:  # the books stage takes the decoded diff from here
            out.depth[id(record)] = e

    def book_ticker(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        e = self._decode_book_ticker(raw)
        symbol = e.symbol
        ev = self._book_ticker
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
                self.raw_topic, symbol.encode(), value, _H_BOOK_TICKER, received_ns, self.market,
                "bookTicker", symbol, e.update_id,
            )
        )  # fmt: skip

    def mini_ticker(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        out.append(self._mini_ticker_record(_decode_mini_ticker(raw), received_ns))

    def mini_tickers(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        make = self._mini_ticker_record
        out.extend([make(e, received_ns) for e in _decode_mini_tickers(raw)])

    def _mini_ticker_record(self, e: MiniTicker, received_ns: int) -> Record:
        symbol = e.symbol
        ev = self._mini_ticker
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
            self.raw_topic, symbol.encode(), value, _H_MINI_TICKER, received_ns, self.market,
            "24hrMiniTicker", symbol, 0,
        )  # fmt: skip

    def ticker(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        out.append(self._ticker_record(self._decode_ticker(raw), received_ns))

    def tickers(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        make = self._ticker_record
        out.extend([make(e, received_ns) for e in self._decode_tickers(raw)])

    def _ticker_record(self, e: FuturesTicker, received_ns: int) -> Record:
        symbol = e.symbol
        ev = self._ticker
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
            self.raw_topic, symbol.encode(), value, _H_TICKER, received_ns, self.market,
            "24hrTicker", symbol, 0,
        )  # fmt: skip

    def mark_price(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        out.append(self._mark_price_record(_decode_mark_price(raw), received_ns))

    def mark_prices(self, raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
        make = self._mark_price_record
        out.extend([make(e, received_ns) for e in _decode_mark_prices(raw)])

    def _mark_price_record(self, e: MarkPriceUpdate, received_ns: int) -> Record:
        symbol = e.symbol
        ev = self._mark_price
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
            self.raw_topic, symbol.encode(), value, _H_MARK_PRICE, received_ns, self.market,
            "markPriceUpdate", symbol, 0,
        )  # fmt: skip
