"""Alerts ↔ ``marketd.v1.Alert`` Protobuf, and market events → detector ticks (pure).

``alert_record`` makes the Kafka record of an alert (topic ``alerts``, key = symbol,
headers ``type: alert`` and ``market``). ``TickReader`` takes the price of each market
event the detector watches: the close of a ``24hrMiniTicker``, the last price of a
``24hrTicker``, the price of a ``trade`` / ``aggTrade``, the mark price of a
``markPriceUpdate``, the close of a ``kline``, the average price of an ``avgPrice`` (the
vocabulary table's price column), with the event's exchange time ``E``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import repeat

from google.protobuf.message import DecodeError

from marketd.alerts.model import Alert, Direction
from marketd.data.events import Tick
from marketd.data.records import Market, Record, events_of, record_headers
from marketd.exchanges import adapters
from marketd.v1 import alert_pb2
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent

# Per market: ``type: alert`` and the market, as on every market-data record.
ALERT_HEADERS = {m: record_headers(m, "alert") for m in Market}
_PB_MARKET = {"spot": MARKET_SPOT, "usdm": MARKET_USDM}
_MARKET_OF_PB = {v: k for k, v in _PB_MARKET.items()}
_PB_DIRECTION = {Direction.UP: alert_pb2.DIRECTION_UP, Direction.DOWN: alert_pb2.DIRECTION_DOWN}
_DIRECTION_OF_PB = {v: k for k, v in _PB_DIRECTION.items()}
_MARKETS = {m.value: m for m in Market}

# The oneof field of MarketEvent that carries each kind, and the price field in it.
PRICE_FIELDS: dict[str, tuple[str, str]] = {
    kind: fields for a in adapters() for kind, fields in a.vocabulary.price_fields().items()
}
_KIND_OF_FIELD = {field: kind for kind, (field, _) in PRICE_FIELDS.items()}


def alert_to_proto(alert: Alert) -> alert_pb2.Alert:
    return alert_pb2.Alert(
        id=alert.id,
        market=_PB_MARKET[alert.market],
        symbol=alert.symbol,
        rule=alert.rule,
        direction=_PB_DIRECTION[alert.direction],
        change_pct=alert.change_pct,
        price=alert.price,
        price_time_ms=alert.price_time_ms,
        base_price=alert.base_price,
        base_time_ms=alert.base_time_ms,
        detected_at_ms=alert.detected_at_ms,
        window_s=alert.window_s,
        threshold_pct=alert.threshold_pct,
        cooldown_s=alert.cooldown_s,
    )


def alert_from_proto(message: alert_pb2.Alert) -> Alert:
    return Alert(
        id=message.id,
        symbol=message.symbol,
        market=_MARKET_OF_PB[message.market],
        rule=message.rule,
        direction=_DIRECTION_OF_PB[message.direction],
        change_pct=message.change_pct,
        price=message.price,
        price_time_ms=message.price_time_ms,
        base_price=message.base_price,
        base_time_ms=message.base_time_ms,
        detected_at_ms=message.detected_at_ms,
        window_s=message.window_s,
        threshold_pct=message.threshold_pct,
        cooldown_s=message.cooldown_s,
    )


def decode_alert(value: bytes) -> Alert:
    return alert_from_proto(alert_pb2.Alert.FromString(value))


def alert_record(alert: Alert, topic: str) -> Record:
    """The Kafka record of ``alert``: keyed by symbol, so one symbol's alerts stay in order."""
    return Record(
        topic=topic,
        key=alert.symbol.encode(),
        value=alert_to_proto(alert).SerializeToString(),
        headers=ALERT_HEADERS[_MARKETS[alert.market]],
        received_ns=time.time_ns(),
        market=_MARKETS[alert.market],
        kind="alert",
        symbol=alert.symbol,
    )


class TickReader:
    """Turns serialized ``MarketEvent`` values into ticks, for the configured kinds and
    markets only; counts what it skips. One reused message: call from one thread."""

    def __init__(self, kinds: Iterable[str], markets: Iterable[str]) -> None:
        unknown = [k for k in kinds if k not in PRICE_FIELDS]
        if unknown:
            raise ValueError(f"no price in event kinds {unknown}")
        self.kinds = frozenset(kinds)
        self.markets = frozenset(markets)
        self._pb_markets = frozenset(_PB_MARKET[m] for m in self.markets)
        self._event = MarketEvent()
        self.malformed = 0

    def wanted(self, kind: str, market: str) -> bool:
        return kind in self.kinds and market in self.markets

    def tick(self, value: bytes) -> Tick | None:
        """The tick of one event value, or None (malformed, or a kind/market not watched)."""
        event = self._event
        try:
            event.ParseFromString(value)
        except DecodeError:
            self.malformed += 1
            return None
        field = event.WhichOneof("event")
        kind = _KIND_OF_FIELD.get(field) if field else None
        if kind is None or kind not in self.kinds or event.market not in self._pb_markets:
            return None
        body = getattr(event, field)
        price: str = getattr(body, PRICE_FIELDS[kind][1])
        # The 24 h quote volume, for rules with min_quote_volume_24h (not a 1h/4h/1d ticker).
        volume = ""
        if field == "mini_ticker" or (field == "ticker" and not body.window):
            volume = body.quote_volume
        market = _MARKET_OF_PB[event.market]
        return Tick(market, event.symbol, event.event_time_ms, price, volume)

    def ticks(self, records: list[Record]) -> list[Tick]:
        """Ticks of an in-process record batch (filtered on ``kind``/``market`` first):
        the ones the codec put beside the records (:class:`RecordBatch`), and for a record
        without one (a backfilled trade, a plain list) its Protobuf value parsed."""
        out = []
        kinds, markets = self.kinds, self.markets
        events = events_of(records)
        for record, event in zip(records, events or repeat(None, len(records)), strict=True):
            if record.kind in kinds and record.market.value in markets:
                t = event if type(event) is Tick else self.tick(record.value)
                if t is not None:
                    out.append(t)
        return out
