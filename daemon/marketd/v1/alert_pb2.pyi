from marketd.v1 import market_data_pb2 as _market_data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_UP: _ClassVar[Direction]
    DIRECTION_DOWN: _ClassVar[Direction]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_PRICE: _ClassVar[AlertKind]
    ALERT_KIND_VOLUME: _ClassVar[AlertKind]
    ALERT_KIND_LIQUIDATION: _ClassVar[AlertKind]
    ALERT_KIND_PREMIUM: _ClassVar[AlertKind]
    ALERT_KIND_FUNDING: _ClassVar[AlertKind]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_UP: Direction
DIRECTION_DOWN: Direction
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_PRICE: AlertKind
ALERT_KIND_VOLUME: AlertKind
ALERT_KIND_LIQUIDATION: AlertKind
ALERT_KIND_PREMIUM: AlertKind
ALERT_KIND_FUNDING: AlertKind

class PricePoint(_message.Message):
    __slots__ = ("time_ms", "price")
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    price: str
    def __init__(self, time_ms: _Optional[int] = ..., price: _Optional[str] = ...) -> None: ...

class VolumeSpike(_message.Message):
    __slots__ = ("window_notional", "baseline_notional", "baseline_s", "ratio", "trades")
    WINDOW_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    BASELINE_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    BASELINE_S_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    TRADES_FIELD_NUMBER: _ClassVar[int]
    window_notional: str
    baseline_notional: str
    baseline_s: float
    ratio: str
    trades: int
    def __init__(self, window_notional: _Optional[str] = ..., baseline_notional: _Optional[str] = ..., baseline_s: _Optional[float] = ..., ratio: _Optional[str] = ..., trades: _Optional[int] = ...) -> None: ...

class LiquidationCluster(_message.Message):
    __slots__ = ("side", "notional", "count")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    side: str
    notional: str
    count: int
    def __init__(self, side: _Optional[str] = ..., notional: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class PremiumExtreme(_message.Message):
    __slots__ = ("mark_price", "index_price")
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    INDEX_PRICE_FIELD_NUMBER: _ClassVar[int]
    mark_price: str
    index_price: str
    def __init__(self, mark_price: _Optional[str] = ..., index_price: _Optional[str] = ...) -> None: ...

class FundingExtreme(_message.Message):
    __slots__ = ("funding_rate", "mark_price")
    FUNDING_RATE_FIELD_NUMBER: _ClassVar[int]
    MARK_PRICE_FIELD_NUMBER: _ClassVar[int]
    funding_rate: str
    mark_price: str
    def __init__(self, funding_rate: _Optional[str] = ..., mark_price: _Optional[str] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "market", "symbol", "rule", "direction", "change_pct", "price", "price_time_ms", "base_price", "base_time_ms", "detected_at_ms", "window_s", "threshold_pct", "cooldown_s", "kind", "path", "volume", "liquidation", "premium", "funding")
    ID_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PCT_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    BASE_PRICE_FIELD_NUMBER: _ClassVar[int]
    BASE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    DETECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_PCT_FIELD_NUMBER: _ClassVar[int]
    COOLDOWN_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    LIQUIDATION_FIELD_NUMBER: _ClassVar[int]
    PREMIUM_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    id: str
    market: _market_data_pb2.Market
    symbol: str
    rule: str
    direction: Direction
    change_pct: float
    price: str
    price_time_ms: int
    base_price: str
    base_time_ms: int
    detected_at_ms: int
    window_s: float
    threshold_pct: float
    cooldown_s: float
    kind: AlertKind
    path: _containers.RepeatedCompositeFieldContainer[PricePoint]
    volume: VolumeSpike
    liquidation: LiquidationCluster
    premium: PremiumExtreme
    funding: FundingExtreme
    def __init__(self, id: _Optional[str] = ..., market: _Optional[_Union[_market_data_pb2.Market, str]] = ..., symbol: _Optional[str] = ..., rule: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., change_pct: _Optional[float] = ..., price: _Optional[str] = ..., price_time_ms: _Optional[int] = ..., base_price: _Optional[str] = ..., base_time_ms: _Optional[int] = ..., detected_at_ms: _Optional[int] = ..., window_s: _Optional[float] = ..., threshold_pct: _Optional[float] = ..., cooldown_s: _Optional[float] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., path: _Optional[_Iterable[_Union[PricePoint, _Mapping]]] = ..., volume: _Optional[_Union[VolumeSpike, _Mapping]] = ..., liquidation: _Optional[_Union[LiquidationCluster, _Mapping]] = ..., premium: _Optional[_Union[PremiumExtreme, _Mapping]] = ..., funding: _Optional[_Union[FundingExtreme, _Mapping]] = ...) -> None: ...

class AlertOutcome(_message.Message):
    __slots__ = ("alert_id", "market", "symbol", "after_s", "price", "price_time_ms", "change_pct")
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    MARKET_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    AFTER_S_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    PRICE_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PCT_FIELD_NUMBER: _ClassVar[int]
    alert_id: str
    market: _market_data_pb2.Market
    symbol: str
    after_s: int
    price: str
    price_time_ms: int
    change_pct: float
    def __init__(self, alert_id: _Optional[str] = ..., market: _Optional[_Union[_market_data_pb2.Market, str]] = ..., symbol: _Optional[str] = ..., after_s: _Optional[int] = ..., price: _Optional[str] = ..., price_time_ms: _Optional[int] = ..., change_pct: _Optional[float] = ...) -> None: ...
