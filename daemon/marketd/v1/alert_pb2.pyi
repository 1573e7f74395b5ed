from marketd.v1 import market_data_pb2 as _market_data_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_UP: _ClassVar[Direction]
    DIRECTION_DOWN: _ClassVar[Direction]
DIRECTION_UNSPECIFIED: Direction
DIRECTION_UP: Direction
DIRECTION_DOWN: Direction

class Alert(_message.Message):
    __slots__ = ("id", "market", "symbol", "rule", "direction", "change_pct", "price", "price_time_ms", "base_price", "base_time_ms", "detected_at_ms", "window_s", "threshold_pct", "cooldown_s")
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
    def __init__(self, id: _Optional[str] = ..., market: _Optional[_Union[_market_data_pb2.Market, str]] = ..., symbol: _Optional[str] = ..., rule: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., change_pct: _Optional[float] = ..., price: _Optional[str] = ..., price_time_ms: _Optional[int] = ..., base_price: _Optional[str] = ..., base_time_ms: _Optional[int] = ..., detected_at_ms: _Optional[int] = ..., window_s: _Optional[float] = ..., threshold_pct: _Optional[float] = ..., cooldown_s: _Optional[float] = ...) -> None: ...
