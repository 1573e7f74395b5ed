"""Status records (pure): one :class:`~marketd.v1.status_pb2.StatusEvent` per record,
keyed by its symbol, with the ``type`` and ``market`` headers the file comment of
``status.proto`` documents."""

from __future__ import annotations

from typing import Final

from google.protobuf.message import Message

from marketd.data.records import Market, Record
from marketd.v1 import status_pb2
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_UNSPECIFIED, MARKET_USDM

# The oneof field of each event → its ``type`` header.
EVENT_TYPES: Final = {
    "stream_up": "streamUp",
    "stream_down": "streamDown",
    "depth_gap": "depthGap",
    "trades_unfilled": "tradesUnfilled",
    "book_resync": "bookResync",
    "book_synced": "bookSynced",
    "book_mismatch": "bookMismatch",
    "intake_stopped": "intakeStopped",
    "intake_resumed": "intakeResumed",
    "collector_started": "collectorStarted",
}
_PB_MARKET: Final = {Market.SPOT: MARKET_SPOT, Market.USDM: MARKET_USDM, None: MARKET_UNSPECIFIED}
_HEADERS: Final = {
    (field, market): (("type", name.encode()),)
    + ((("market", market.value.encode()),) if market is not None else ())
    for field, name in EVENT_TYPES.items()
    for market in (Market.SPOT, Market.USDM, None)
}


def symbol_of_stream(stream: str) -> str:
    """The upper-case symbol a stream is about ("btcusdt@trade" → "BTCUSDT"); "" for an
    all-market stream ("!miniTicker@arr")."""
    if stream.startswith("!"):
        return ""
    return stream.partition("@")[0].upper()


def status_record(
    topic: str,
    collector: str,
    market: Market | None,
    symbol: str,
    time_ns: int,
    **event: Message,
) -> Record:
    """The record of one event: ``event`` is one ``oneof`` field of ``StatusEvent`` by
    name, with its message (e.g. ``depth_gap=status_pb2.DepthGap(...)``)."""
    ((field, message),) = event.items()
    pb = status_pb2.StatusEvent(
        market=_PB_MARKET[market],
        symbol=symbol,
        time_ms=time_ns // 1_000_000,
        collector=collector,
    )
    getattr(pb, field).CopyFrom(message)
    return Record(
        topic=topic,
        key=symbol.encode(),
        value=pb.SerializeToString(),
        headers=_HEADERS[(field, market)],
        received_ns=time_ns,
        # A collector event is about no market; the record needs one to travel (it is
        # not in its headers or value).
        market=market if market is not None else Market.SPOT,
        kind=EVENT_TYPES[field],
        symbol=symbol,
    )
