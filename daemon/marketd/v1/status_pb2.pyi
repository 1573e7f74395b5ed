from marketd.v1 import market_data_pb2 as _market_data_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatusEvent(_message.Message):
    __slots__ = ("market", "symbol", "time_ms", "collector", "stream_up", "stream_down", "depth_gap", "trades_unfilled", "book_resync", "book_synced", "book_mismatch", "intake_stopped", "intake_resumed", "collector_started")
    MARKET_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_FIELD_NUMBER: _ClassVar[int]
    STREAM_UP_FIELD_NUMBER: _ClassVar[int]
    STREAM_DOWN_FIELD_NUMBER: _ClassVar[int]
    DEPTH_GAP_FIELD_NUMBER: _ClassVar[int]
    TRADES_UNFILLED_FIELD_NUMBER: _ClassVar[int]
    BOOK_RESYNC_FIELD_NUMBER: _ClassVar[int]
    BOOK_SYNCED_FIELD_NUMBER: _ClassVar[int]
    BOOK_MISMATCH_FIELD_NUMBER: _ClassVar[int]
    INTAKE_STOPPED_FIELD_NUMBER: _ClassVar[int]
    INTAKE_RESUMED_FIELD_NUMBER: _ClassVar[int]
    COLLECTOR_STARTED_FIELD_NUMBER: _ClassVar[int]
    market: _market_data_pb2.Market
    symbol: str
    time_ms: int
    collector: str
    stream_up: StreamUp
    stream_down: StreamDown
    depth_gap: DepthGap
    trades_unfilled: TradesUnfilled
    book_resync: BookResync
    book_synced: BookSynced
    book_mismatch: BookMismatch
    intake_stopped: IntakeStopped
    intake_resumed: IntakeResumed
    collector_started: CollectorStarted
    def __init__(self, market: _Optional[_Union[_market_data_pb2.Market, str]] = ..., symbol: _Optional[str] = ..., time_ms: _Optional[int] = ..., collector: _Optional[str] = ..., stream_up: _Optional[_Union[StreamUp, _Mapping]] = ..., stream_down: _Optional[_Union[StreamDown, _Mapping]] = ..., depth_gap: _Optional[_Union[DepthGap, _Mapping]] = ..., trades_unfilled: _Optional[_Union[TradesUnfilled, _Mapping]] = ..., book_resync: _Optional[_Union[BookResync, _Mapping]] = ..., book_synced: _Optional[_Union[BookSynced, _Mapping]] = ..., book_mismatch: _Optional[_Union[BookMismatch, _Mapping]] = ..., intake_stopped: _Optional[_Union[IntakeStopped, _Mapping]] = ..., intake_resumed: _Optional[_Union[IntakeResumed, _Mapping]] = ..., collector_started: _Optional[_Union[CollectorStarted, _Mapping]] = ...) -> None: ...

class StreamUp(_message.Message):
    __slots__ = ("stream", "connection")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    stream: str
    connection: str
    def __init__(self, stream: _Optional[str] = ..., connection: _Optional[str] = ...) -> None: ...

class StreamDown(_message.Message):
    __slots__ = ("stream", "connection", "reason", "last_frame_ms")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_MS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    connection: str
    reason: str
    last_frame_ms: int
    def __init__(self, stream: _Optional[str] = ..., connection: _Optional[str] = ..., reason: _Optional[str] = ..., last_frame_ms: _Optional[int] = ...) -> None: ...

class DepthGap(_message.Message):
    __slots__ = ("last_update_id", "first_missing_below", "kind")
    LAST_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_MISSING_BELOW_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    last_update_id: int
    first_missing_below: int
    kind: str
    def __init__(self, last_update_id: _Optional[int] = ..., first_missing_below: _Optional[int] = ..., kind: _Optional[str] = ...) -> None: ...

class TradesUnfilled(_message.Message):
    __slots__ = ("kind", "first_id", "last_id", "reason")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FIRST_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    first_id: int
    last_id: int
    reason: str
    def __init__(self, kind: _Optional[str] = ..., first_id: _Optional[int] = ..., last_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class BookResync(_message.Message):
    __slots__ = ("reason", "last_update_id")
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    reason: str
    last_update_id: int
    def __init__(self, reason: _Optional[str] = ..., last_update_id: _Optional[int] = ...) -> None: ...

class BookSynced(_message.Message):
    __slots__ = ("snapshot_update_id",)
    SNAPSHOT_UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    snapshot_update_id: int
    def __init__(self, snapshot_update_id: _Optional[int] = ...) -> None: ...

class LevelDifference(_message.Message):
    __slots__ = ("side", "price", "ours", "theirs")
    SIDE_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    OURS_FIELD_NUMBER: _ClassVar[int]
    THEIRS_FIELD_NUMBER: _ClassVar[int]
    side: str
    price: str
    ours: str
    theirs: str
    def __init__(self, side: _Optional[str] = ..., price: _Optional[str] = ..., ours: _Optional[str] = ..., theirs: _Optional[str] = ...) -> None: ...

class BookMismatch(_message.Message):
    __slots__ = ("update_id", "differences")
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    update_id: int
    differences: _containers.RepeatedCompositeFieldContainer[LevelDifference]
    def __init__(self, update_id: _Optional[int] = ..., differences: _Optional[_Iterable[_Union[LevelDifference, _Mapping]]] = ...) -> None: ...

class IntakeStopped(_message.Message):
    __slots__ = ("reason", "pending_records")
    REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_RECORDS_FIELD_NUMBER: _ClassVar[int]
    reason: str
    pending_records: int
    def __init__(self, reason: _Optional[str] = ..., pending_records: _Optional[int] = ...) -> None: ...

class IntakeResumed(_message.Message):
    __slots__ = ("stopped_ms",)
    STOPPED_MS_FIELD_NUMBER: _ClassVar[int]
    stopped_ms: int
    def __init__(self, stopped_ms: _Optional[int] = ...) -> None: ...

class CollectorStarted(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...
