"""Per-market stream handlers: one Binance payload (raw JSON) → ``MarketEvent`` records.

Used by :class:`marketd.exchanges.binance.codec.Codec`; pure and synchronous. Each handler
decodes ``data`` with its typed msgspec decoder and fills a ``MarketEvent`` that it keeps
and reuses: every field the handler owns is assigned on every call (repeated fields are
cleared first), so the serialized bytes are exactly those of a freshly built message, at a
third less cost.
A handler is therefore not re-entrant; a codec serves one thread (the trio thread).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import msgspec
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from marketd.config.settings import TopicSettings
from marketd.data.events import DepthDiff, Tick
from marketd.data.records import Headers, Market, Record, RecordBatch, record_headers
from marketd.exchanges.binance import (
    AggTrade,
    AvgPrice,
    BookTicker,
    DayTicker,
    DepthUpdate,
    ForceOrder,
    FourHourTicker,
    FuturesBookTicker,
    FuturesDepthUpdate,
    FuturesTicker,
    HourTicker,
    Kline,
    MarkPriceUpdate,
    MiniTicker,
    PartialDepth,
    SpotTicker,
    Trade,
    WindowTicker,
    vocabulary,
)
from marketd.exchanges.binance.values import MAX_SYMBOL_CHARS, values_check
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent, PriceLevel
from marketd.v1.market_data_pb2 import Market as PbMarket

# Appends the records made from one frame's ``data`` (raw JSON) to the batch and attaches
# their events where they have one (the codec pads the rest with None); raises ValueError
# (msgspec.DecodeError, or a Protobuf range/UTF-8 error) for a bad payload.
Handler = Callable[[msgspec.Raw, int, RecordBatch], None]

PB_MARKET: dict[Market, PbMarket] = {Market.SPOT: MARKET_SPOT, Market.USDM: MARKET_USDM}

# Per market, per decoded kind: built once, shared by every record.
HEADERS: dict[Market, dict[str, Headers]] = {
    m: {row.kind: record_headers(m, row.kind) for row in vocabulary.ROWS if row.decoded}
    for m in Market
}

# Distinct stream names remembered per market; beyond this the cache starts over, so a
# peer sending endless made-up stream names cannot grow memory.
MAX_CACHED_STREAMS = 8192

_decode_trade = msgspec.json.Decoder(Trade).decode
_decode_agg_trade = msgspec.json.Decoder(AggTrade).decode
_decode_mini_ticker = msgspec.json.Decoder(MiniTicker).decode
_decode_mini_tickers = msgspec.json.Decoder(list[MiniTicker]).decode
_decode_mark_price = msgspec.json.Decoder(MarkPriceUpdate).decode
_decode_mark_prices = msgspec.json.Decoder(list[MarkPriceUpdate]).decode
_decode_kline = msgspec.json.Decoder(Kline).decode
_decode_avg_price = msgspec.json.Decoder(AvgPrice).decode
_decode_force_order = msgspec.json.Decoder(ForceOrder).decode
_decode_partial_depth = msgspec.json.Decoder(PartialDepth).decode
_decode_futures_depth = msgspec.json.Decoder(FuturesDepthUpdate).decode
# Spot rolling-window tickers: kind → (decoder, the ``Ticker.window`` value).
_WINDOW_TICKERS: dict[str, tuple[Callable[[msgspec.Raw], WindowTicker], str]] = {
    "1hTicker": (msgspec.json.Decoder(HourTicker).decode, "1h"),
    "4hTicker": (msgspec.json.Decoder(FourHourTicker).decode, "4h"),
    "1dTicker": (msgspec.json.Decoder(DayTicker).decode, "1d"),
}
_is_symbol = values_check("y")
# The kinds a detector can watch (the vocabulary's price column).
_PRICED = frozenset(vocabulary.price_fields())


def _levels(channel: str) -> int:
    """The level count of a partial-depth channel: ``depth20@100ms`` → 20."""
    return int(channel.removeprefix("depth").partition("@")[0])


def _fill(side: RepeatedCompositeFieldContainer[PriceLevel], levels: list[tuple[str, str]]) -> None:
    """Replace the levels of a repeated ``PriceLevel`` field (reused message) by ``levels``."""
    del side[:]
    add = side.add
    for price, quantity in levels:
        level = add()
        level.price = price
        level.quantity = quantity


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
        # Price kinds whose ticks the detector reads (watch_prices); empty: no ticks made.
        self.watched: frozenset[str] = frozenset()
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
        # Kafka headers of each kind on this market.
        headers = HEADERS[market]
        self._h_trade = headers["trade"]
        self._h_agg_trade = headers["aggTrade"]
        self._h_depth = headers["depthUpdate"]
        self._h_book_ticker = headers["bookTicker"]
        self._h_mini_ticker = headers["24hrMiniTicker"]
        self._h_ticker = headers["24hrTicker"]
        self._h_mark_price = headers["markPriceUpdate"]
        self._h_kline = headers["kline"]
        self._h_avg_price = headers["avgPrice"]
        self._h_force_order = headers["forceOrder"]
        self._h_partial_book = headers["depthPartial"]
        pb_market = PB_MARKET[market]
        self._trade = MarketEvent(market=pb_market)
        self._agg_trade = MarketEvent(market=pb_market)
        self._depth = MarketEvent(market=pb_market)
        self._book_ticker = MarketEvent(market=pb_market)
        self._mini_ticker = MarketEvent(market=pb_market)
        self._ticker = MarketEvent(market=pb_market)
        self._mark_price = MarketEvent(market=pb_market)
        self._kline = MarketEvent(market=pb_market)
        self._avg_price = MarketEvent(market=pb_market)
        self._window_ticker = MarketEvent(market=pb_market)
        self._liquidation = MarketEvent(market=pb_market)
        self._partial_book = MarketEvent(market=pb_market)

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
            "kline": self.kline,
            "avgPrice": self.avg_price,
            "forceOrder": self.force_order,
            **{kind: self._window_ticker_handler(kind) for kind in _WINDOW_TICKERS},
        }
        many: dict[str, Handler] = {
            "24hrMiniTicker": self.mini_tickers,
            "24hrTicker": self.tickers,
            "markPriceUpdate": self.mark_prices,
        }
        # ``<symbol>@<channel>`` streams, by channel.
        self.channels: dict[str, Handler] = {
            c: one[row.kind]
            for c, row in vocabulary.BY_CHANNEL[market].items()
            if row.decoded and row.kind != "depthPartial"
        }
        # Partial depth: the level count is in the channel's name, and on spot the symbol
        # only in the stream's (the payload has none). Their handlers are bound per channel
        # here; the spot ones have no symbol yet (they refuse every payload): resolve()
        # binds the stream's, once per stream.
        partial_levels = {
            c: _levels(c)
            for c, row in vocabulary.BY_CHANNEL[market].items()
            if row.decoded and row.kind == "depthPartial"
        }
        self._symbol_bound: dict[str, int] = partial_levels if spot else {}
        for c, levels in partial_levels.items():
            self.channels[c] = (
                functools.partial(self.spot_partial_book, "", levels)
                if spot
                else functools.partial(self.usdm_partial_book, levels)
            )
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
            levels = self._symbol_bound.get(channel)
            if handler is not None and levels is not None:
                handler = self._bind_symbol(symbol, levels)
        if len(self.handlers) >= MAX_CACHED_STREAMS:
            self.handlers.clear()
        self.handlers[stream] = handler
        return handler

    def watch_prices(self, kinds: Iterable[str]) -> None:
        """Make a :class:`Tick` beside every record of ``kinds`` (price kinds of the
        vocabulary table) from now on."""
        kinds = frozenset(kinds)
        if unpriced := sorted(k for k in kinds if k not in _PRICED):
            raise ValueError(f"no price in event kinds {unpriced}")
        self.watched = kinds

    # -- one handler per event type; ``raw`` is the frame's ``data`` ---------------------

    def trade(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
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
                self.raw_topic, symbol.encode(), value, self._h_trade, received_ns, self.market,
                "trade", symbol, e.trade_id,
            )
        )  # fmt: skip
        if "trade" in self.watched:
            out.attach(Tick(self.market.value, symbol, e.event_time, e.price))

    def agg_trade(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
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
                self.raw_topic, symbol.encode(), value, self._h_agg_trade, received_ns, self.market,
                "aggTrade", symbol, e.agg_trade_id,
            )
        )  # fmt: skip
        if "aggTrade" in self.watched:
            out.attach(Tick(self.market.value, symbol, e.event_time, e.price))

    def depth(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
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
            self.depth_topic, symbol.encode(), value, self._h_depth, received_ns, self.market,
            "depthUpdate", symbol, e.final_update_id,
        )  # fmt: skip
        out.append(record)
        out.attach(
            DepthDiff(
                e.first_update_id, e.final_update_id,
                e.prev_final_update_id if type(e) is FuturesDepthUpdate else None,
                e.bids, e.asks, e.event_time, received_ns,
            )
        )  # fmt: skip

    def book_ticker(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
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
                self.raw_topic, symbol.encode(), value, self._h_book_ticker, received_ns,
                self.market, "bookTicker", symbol, e.update_id,
            )
        )  # fmt: skip

    def mini_ticker(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_mini_ticker(raw)
        out.append(self._mini_ticker_record(e, received_ns))
        if "24hrMiniTicker" in self.watched:
            out.attach(Tick(self.market.value, e.symbol, e.event_time, e.close_price))

    def mini_tickers(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        make = self._mini_ticker_record
        items = _decode_mini_tickers(raw)
        out.extend([make(e, received_ns) for e in items])
        if "24hrMiniTicker" in self.watched:
            m = self.market.value
            out.attach_last([Tick(m, e.symbol, e.event_time, e.close_price) for e in items])

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
            self.raw_topic, symbol.encode(), value, self._h_mini_ticker, received_ns, self.market,
            "24hrMiniTicker", symbol, 0,
        )  # fmt: skip

    def ticker(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = self._decode_ticker(raw)
        out.append(self._ticker_record(e, received_ns))
        if "24hrTicker" in self.watched:
            out.attach(Tick(self.market.value, e.symbol, e.event_time, e.last_price))

    def tickers(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        make = self._ticker_record
        items = self._decode_tickers(raw)
        out.extend([make(e, received_ns) for e in items])
        if "24hrTicker" in self.watched:
            m = self.market.value
            out.attach_last([Tick(m, e.symbol, e.event_time, e.last_price) for e in items])

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
            self.raw_topic, symbol.encode(), value, self._h_ticker, received_ns, self.market,
            "24hrTicker", symbol, 0,
        )  # fmt: skip

    def mark_price(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_mark_price(raw)
        out.append(self._mark_price_record(e, received_ns))
        if "markPriceUpdate" in self.watched:
            out.attach(Tick(self.market.value, e.symbol, e.event_time, e.mark_price))

    def mark_prices(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        make = self._mark_price_record
        items = _decode_mark_prices(raw)
        out.extend([make(e, received_ns) for e in items])
        if "markPriceUpdate" in self.watched:
            m = self.market.value
            out.attach_last([Tick(m, e.symbol, e.event_time, e.mark_price) for e in items])

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
            self.raw_topic, symbol.encode(), value, self._h_mark_price, received_ns, self.market,
            "markPriceUpdate", symbol, 0,
        )  # fmt: skip

    # -- the kinds added with the rest of the vocabulary -------------------------------

    def kline(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_kline(raw)
        symbol = e.symbol
        ev = self._kline
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
                self.raw_topic, symbol.encode(), value, self._h_kline, received_ns, self.market,
                "kline", symbol, 0,
            )
        )  # fmt: skip
        if "kline" in self.watched:
            out.attach(Tick(self.market.value, symbol, e.event_time, b.close_price))

    def avg_price(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_avg_price(raw)
        symbol = e.symbol
        ev = self._avg_price
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
                self.raw_topic, symbol.encode(), value, self._h_avg_price, received_ns, self.market,
                "avgPrice", symbol, 0,
            )
        )  # fmt: skip
        if "avgPrice" in self.watched:
            out.attach(Tick(self.market.value, symbol, e.event_time, e.average_price))

    def _window_ticker_handler(self, kind: str) -> Handler:
        """The handler of one spot rolling-window ticker kind (``1hTicker`` ...): the
        ``Ticker`` message with ``window`` set; ``Q`` and the spot 24 h extras stay empty
        (this reused message never sets them)."""
        decode, window = _WINDOW_TICKERS[kind]
        headers = HEADERS[self.market][kind]

        def window_ticker(raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
            e = decode(raw)
            symbol = e.symbol
            ev = self._window_ticker
            ev.symbol = symbol
            ev.event_time_ms = e.event_time
            ev.received_ns = received_ns
            t = ev.ticker
            t.window = window
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
                    self.raw_topic, symbol.encode(), value, headers, received_ns, self.market,
                    kind, symbol, 0,
                )
            )  # fmt: skip

        return window_ticker

    def force_order(self, raw: msgspec.Raw, received_ns: int, out: RecordBatch) -> None:
        e = _decode_force_order(raw)
        o = e.order
        symbol = o.symbol
        ev = self._liquidation
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
                self.raw_topic, symbol.encode(), value, self._h_force_order, received_ns,
                self.market, "forceOrder", symbol, 0,
            )
        )  # fmt: skip

    def _bind_symbol(self, symbol: str, levels: int) -> Handler | None:
        """The spot partial-depth handler of one stream, its symbol bound (None when the
        stream name's symbol is not one Binance could list: an unknown stream)."""
        symbol = symbol.upper()  # stream names spell symbols in lower case
        if len(symbol) > MAX_SYMBOL_CHARS or _is_symbol(symbol) is None:
            return None
        return functools.partial(self.spot_partial_book, symbol, levels)

    def spot_partial_book(
        self, symbol: str, levels: int, raw: msgspec.Raw, received_ns: int, out: RecordBatch
    ) -> None:
        """Spot ``{lastUpdateId,bids,asks}``: no event time, the symbol bound by resolve()."""
        if not symbol:
            raise ValueError("spot partial depth without the stream name's symbol")
        e = _decode_partial_depth(raw)
        ev = self._partial_book
        ev.symbol = symbol
        ev.received_ns = received_ns
        p = ev.partial_book
        p.last_update_id = e.last_update_id
        p.levels = levels
        _fill(p.bids, e.bids)
        _fill(p.asks, e.asks)
        value = ev.SerializeToString()
        out.append(
            Record(
                self.raw_topic, symbol.encode(), value, self._h_partial_book, received_ns,
                self.market, "depthPartial", symbol, 0,
            )
        )  # fmt: skip

    def usdm_partial_book(
        self, levels: int, raw: msgspec.Raw, received_ns: int, out: RecordBatch
    ) -> None:
        """USD-M: diff-shaped (``e`` depthUpdate, ``U``/``u``/``pu``), but the top levels as
        they are: the raw topic, and not handed to the books."""
        e = _decode_futures_depth(raw)
        symbol = e.symbol
        ev = self._partial_book
        ev.symbol = symbol
        ev.event_time_ms = e.event_time
        ev.received_ns = received_ns
        p = ev.partial_book
        p.last_update_id = e.final_update_id
        p.levels = levels
        p.first_update_id = e.first_update_id
        p.prev_final_update_id = e.prev_final_update_id
        p.transaction_time_ms = e.transaction_time
        _fill(p.bids, e.bids)
        _fill(p.asks, e.asks)
        value = ev.SerializeToString()
        out.append(
            Record(
                self.raw_topic, symbol.encode(), value, self._h_partial_book, received_ns,
                self.market, "depthPartial", symbol, 0,
            )
        )  # fmt: skip
