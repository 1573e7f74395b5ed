from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Market(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MARKET_UNSPECIFIED: _ClassVar[Market]
    MARKET_SPOT: _ClassVar[Market]
    MARKET_USDM: _ClassVar[Market]
MARKET_UNSPECIFIED: Market
MARKET_SPOT: Market
MARKET_USDM: Market

class PriceLevel(_message.Message):
    __slots__ = ("price", "quantity")
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    price: str
    quantity: str
    def __init__(self, price: _Optional[str] = ..., quantity: _Optional[str] = ...) -> None: ...

class MarketEvent(_message.Message):
    __slots__ = ("market", "symbol", "event_time_ms", "received_ns", "trade", "agg_trade", "book_ticker", "mini_ticker", "ticker", "mark_price", "depth_diff", "book_snapshot", "kline", "avg_price", "liquidation", "partial_book")
    MARKET_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_NS_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    AGG_TRADE_FIELD_NUMBER: _ClassVar[int]
    BOOK_TICKER_FIELD_NUMBER: _ClassVar[int]
    MINI_TICKER_FIELD_NUMBER: _ClassVar[int]
    TICKER_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    DEPTH_DIFF_FIELD_NUMBER: _ClassVar[int]
    BOOK_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    KLINE_FIELD_NUMBER: _ClassVar[int]
    AVG_PRICE_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATION_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_BOOK_FIELD_NUMBER: _ClassVar[int]
    market: Market
    symbol: str
    event_time_ms: int
    received_ns: int
    trade: Trade
    agg_trade: AggTrade
    book_ticker: BookTicker
    mini_ticker: MiniTicker
    ticker: Ticker
    mark_price: MarkPrice
    depth_diff: DepthDiff
    book_snapshot: BookSnapshot
    kline: Kline
    avg_price: AvgPrice
    liquidation: Liquidation
    partial_book: PartialBook
    def __init__(self, market: _Optional[_Union[Market, str]] = ..., symbol: _Optional[str] = ..., event_time_ms: _Optional[int] = ..., received_ns: _Optional[int] = ..., trade: _Optional[_Union[Trade, _Mapping]] = ..., agg_trade: _Optional[_Union[AggTrade, _Mapping]] = ..., book_ticker: _Optional[_Union[BookTicker, _Mapping]] = ..., mini_ticker: _Optional[_Union[MiniTicker, _Mapping]] = ..., ticker: _Optional[_Union[Ticker, _Mapping]] = ..., mark_price: _Optional[_Union[MarkPrice, _Mapping]] = ..., depth_diff: _Optional[_Union[DepthDiff, _Mapping]] = ..., book_snapshot: _Optional[_Union[BookSnapshot, _Mapping]] = ..., kline: _Optional[_Union[Kline, _Mapping]] = ..., avg_price: _Optional[_Union[AvgPrice, _Mapping]] = ..., liquidation: _Optional[_Union[Liquidation, _Mapping]] = ..., partial_book: _Optional[_Union[PartialBook, _Mapping]] = ...) -> None: ...

class Trade(_message.Message):
    __slots__ = ("trade_id", "price", "quantity", "trade_time_ms", "buyer_is_maker", "backfilled")
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TRADE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    BUYER_IS_MAKER_FIELD_NUMBER: _ClassVar[int]
    BACKFILLED_FIELD_NUMBER: _ClassVar[int]
    trade_id: int
    price: str
    quantity: str
    trade_time_ms: int
    buyer_is_maker: bool
    backfilled: bool
    def __init__(self, trade_id: _Optional[int] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., trade_time_ms: _Optional[int] = ..., buyer_is_maker: _Optional[bool] = ..., backfilled: _Optional[bool] = ...) -> None: ...

class AggTrade(_message.Message):
    __slots__ = ("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "trade_time_ms", "buyer_is_maker", "normal_quantity", "backfilled")
    AGG_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FIRST_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    TRADE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    BUYER_IS_MAKER_FIELD_NUMBER: _ClassVar[int]
    NORMAL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BACKFILLED_FIELD_NUMBER: _ClassVar[int]
    agg_trade_id: int
    price: str
    quantity: str
    first_trade_id: int
    last_trade_id: int
    trade_time_ms: int
    buyer_is_maker: bool
    normal_quantity: str
    backfilled: bool
    def __init__(self, agg_trade_id: _Optional[int] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ..., first_trade_id: _Optional[int] = ..., last_trade_id: _Optional[int] = ..., trade_time_ms: _Optional[int] = ..., buyer_is_maker: _Optional[bool] = ..., normal_quantity: _Optional[str] = ..., backfilled: _Optional[bool] = ...) -> None: ...

class BookTicker(_message.Message):
    __slots__ = ("update_id", "bid_price", "bid_quantity", "ask_price", "ask_quantity", "transaction_time_ms")
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    BID_PRICE_FIELD_NUMBER: _ClassVar[int]
    BID_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ASK_PRICE_FIELD_NUMBER: _ClassVar[int]
    ASK_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    update_id: int
    bid_price: str
    bid_quantity: str
    ask_price: str
    ask_quantity: str
    transaction_time_ms: int
    def __init__(self, update_id: _Optional[int] = ..., bid_price: _Optional[str] = ..., bid_quantity: _Optional[str] = ..., ask_price: _Optional[str] = ..., ask_quantity: _Optional[str] = ..., transaction_time_ms: _Optional[int] = ...) -> None: ...

class MiniTicker(_message.Message):
    __slots__ = ("close_price", "open_price", "high_price", "low_price", "base_volume", "quote_volume")
    CLOSE_PRICE_FIELD_NUMBER: _ClassVar[int]
    OPEN_PRICE_FIELD_NUMBER: _ClassVar[int]
    HIGH_PRICE_FIELD_NUMBER: _ClassVar[int]
    LOW_PRICE_FIELD_NUMBER: _ClassVar[int]
    BASE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    close_price: str
    open_price: str
    high_price: str
    low_price: str
    base_volume: str
    quote_volume: str
    def __init__(self, close_price: _Optional[str] = ..., open_price: _Optional[str] = ..., high_price: _Optional[str] = ..., low_price: _Optional[str] = ..., base_volume: _Optional[str] = ..., quote_volume: _Optional[str] = ...) -> None: ...

class Ticker(_message.Message):
    __slots__ = ("price_change", "price_change_percent", "weighted_avg_price", "first_trade_price", "last_price", "last_quantity", "best_bid_price", "best_bid_quantity", "best_ask_price", "best_ask_quantity", "open_price", "high_price", "low_price", "base_volume", "quote_volume", "open_time_ms", "close_time_ms", "first_trade_id", "last_trade_id", "trade_count", "window")
    PRICE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    PRICE_CHANGE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    WEIGHTED_AVG_PRICE_FIELD_NUMBER: _ClassVar[int]
    FIRST_TRADE_PRICE_FIELD_NUMBER: _ClassVar[int]
    LAST_PRICE_FIELD_NUMBER: _ClassVar[int]
    LAST_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BEST_BID_PRICE_FIELD_NUMBER: _ClassVar[int]
    BEST_BID_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BEST_ASK_PRICE_FIELD_NUMBER: _ClassVar[int]
    BEST_ASK_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    OPEN_PRICE_FIELD_NUMBER: _ClassVar[int]
    HIGH_PRICE_FIELD_NUMBER: _ClassVar[int]
    LOW_PRICE_FIELD_NUMBER: _ClassVar[int]
    BASE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    price_change: str
    price_change_percent: str
    weighted_avg_price: str
    first_trade_price: str
    last_price: str
    last_quantity: str
    best_bid_price: str
    best_bid_quantity: str
    best_ask_price: str
    best_ask_quantity: str
    open_price: str
    high_price: str
    low_price: str
    base_volume: str
    quote_volume: str
    open_time_ms: int
    close_time_ms: int
    first_trade_id: int
    last_trade_id: int
    trade_count: int
    window: str
    def __init__(self, price_change: _Optional[str] = ..., price_change_percent: _Optional[str] = ..., weighted_avg_price: _Optional[str] = ..., first_trade_price: _Optional[str] = ..., last_price: _Optional[str] = ..., last_quantity: _Optional[str] = ..., best_bid_price: _Optional[str] = ..., best_bid_quantity: _Optional[str] = ..., best_ask_price: _Optional[str] = ..., best_ask_quantity: _Optional[str] = ..., open_price: _Optional[str] = ..., high_price: _Optional[str] = ..., low_price: _Optional[str] = ..., base_volume: _Optional[str] = ..., quote_volume: _Optional[str] = ..., open_time_ms: _Optional[int] = ..., close_time_ms: _Optional[int] = ..., first_trade_id: _Optional[int] = ..., last_trade_id: _Optional[int] = ..., trade_count: _Optional[int] = ..., window: _Optional[str] = ...) -> None: ...

class MarkPrice(_message.Message):
    __slots__ = ("mark_price", "index_price", "estimated_settle_price", "funding_rate", "next_funding_time_ms")
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    INDEX_PRICE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SETTLE_PRICE_FIELD_NUMBER: _ClassVar[int]
    FUNDING_RATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FUNDING_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    mark_price: str
    index_price: str
    estimated_settle_price: str
    funding_rate: str
    next_funding_time_ms: int
    def __init__(self, mark_price: _Optional[str] = ..., index_price: _Optional[str] = ..., estimated_settle_price: _Optional[str] = ..., funding_rate: _Optional[str] = ..., next_funding_time_ms: _Optional[int] = ...) -> None: ...

class DepthDiff(_message.Message):
    __slots__ = ("first_update_id", "final_update_id", "prev_final_update_id", "transaction_time_ms", "bids", "asks")
    FIRST_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    FINAL_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_FINAL_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    first_update_id: int
    final_update_id: int
    prev_final_update_id: int
    transaction_time_ms: int
    bids: _containers.RepeatedCompositeFieldContainer[PriceLevel]
    asks: _containers.RepeatedCompositeFieldContainer[PriceLevel]
    def __init__(self, first_update_id: _Optional[int] = ..., final_update_id: _Optional[int] = ..., prev_final_update_id: _Optional[int] = ..., transaction_time_ms: _Optional[int] = ..., bids: _Optional[_Iterable[_Union[PriceLevel, _Mapping]]] = ..., asks: _Optional[_Iterable[_Union[PriceLevel, _Mapping]]] = ...) -> None: ...

class BookSnapshot(_message.Message):
    __slots__ = ("last_update_id", "bids", "asks", "depth")
    LAST_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    last_update_id: int
    bids: _containers.RepeatedCompositeFieldContainer[PriceLevel]
    asks: _containers.RepeatedCompositeFieldContainer[PriceLevel]
    depth: int
    def __init__(self, last_update_id: _Optional[int] = ..., bids: _Optional[_Iterable[_Union[PriceLevel, _Mapping]]] = ..., asks: _Optional[_Iterable[_Union[PriceLevel, _Mapping]]] = ..., depth: _Optional[int] = ...) -> None: ...

class Kline(_message.Message):
    __slots__ = ("open_time_ms", "close_time_ms", "interval", "first_trade_id", "last_trade_id", "open_price", "close_price", "high_price", "low_price", "base_volume", "trade_count", "closed", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume")
    OPEN_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    FIRST_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_PRICE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_PRICE_FIELD_NUMBER: _ClassVar[int]
    HIGH_PRICE_FIELD_NUMBER: _ClassVar[int]
    LOW_PRICE_FIELD_NUMBER: _ClassVar[int]
    BASE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    TAKER_BUY_BASE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    TAKER_BUY_QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    open_time_ms: int
    close_time_ms: int
    interval: str
    first_trade_id: int
    last_trade_id: int
    open_price: str
    close_price: str
    high_price: str
    low_price: str
    base_volume: str
    trade_count: int
    closed: bool
    quote_volume: str
    taker_buy_base_volume: str
    taker_buy_quote_volume: str
    def __init__(self, open_time_ms: _Optional[int] = ..., close_time_ms: _Optional[int] = ..., interval: _Optional[str] = ..., first_trade_id: _Optional[int] = ..., last_trade_id: _Optional[int] = ..., open_price: _Optional[str] = ..., close_price: _Optional[str] = ..., high_price: _Optional[str] = ..., low_price: _Optional[str] = ..., base_volume: _Optional[str] = ..., trade_count: _Optional[int] = ..., closed: _Optional[bool] = ..., quote_volume: _Optional[str] = ..., taker_buy_base_volume: _Optional[str] = ..., taker_buy_quote_volume: _Optional[str] = ...) -> None: ...

class AvgPrice(_message.Message):
    __slots__ = ("interval", "average_price", "last_trade_time_ms")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    LAST_TRADE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    interval: str
    average_price: str
    last_trade_time_ms: int
    def __init__(self, interval: _Optional[str] = ..., average_price: _Optional[str] = ..., last_trade_time_ms: _Optional[int] = ...) -> None: ...

class Liquidation(_message.Message):
    __slots__ = ("side", "order_type", "time_in_force", "quantity", "price", "average_price", "status", "last_filled_quantity", "filled_quantity", "trade_time_ms")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    ORDER_TYPE_FIELD_NUMBER: _ClassVar[int]
    TIME_IN_FORCE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TRADE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    side: str
    order_type: str
    time_in_force: str
    quantity: str
    price: str
    average_price: str
    status: str
    last_filled_quantity: str
    filled_quantity: str
    trade_time_ms: int
    def __init__(self, side: _Optional[str] = ..., order_type: _Optional[str] = ..., time_in_force: _Optional[str] = ..., quantity: _Optional[str] = ..., price: _Optional[str] = ..., average_price: _Optional[str] = ..., status: _Optional[str] = ..., last_filled_quantity: _Optional[str] = ..., filled_quantity: _Optional[str] = ..., trade_time_ms: _Optional[int] = ...) -> None: ...

class PartialBook(_message.Message):
    __slots__ = ("last_update_id", "bids", "asks", "levels", "first_update_id", "prev_final_update_id", "transaction_time_ms")
    LAST_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    FIRST_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    PREV_FINAL_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    last_update_id: int
    bids: _containers.RepeatedCompositeFieldContainer[PriceLevel]
    asks: _containers.RepeatedCompositeFieldContainer[PriceLevel]
    levels: int
    first_update_id: int
    prev_final_update_id: int
    transaction_time_ms: int
    def __init__(self, last_update_id: _Optional[int] = ..., bids: _Optional[_Iterable[_Union[PriceLevel, _Mapping]]] = ..., asks: _Optional[_Iterable[_Union[PriceLevel, _Mapping]]] = ..., levels: _Optional[int] = ..., first_update_id: _Optional[int] = ..., prev_final_update_id: _Optional[int] = ..., transaction_time_ms: _Optional[int] = ...) -> None: ...
