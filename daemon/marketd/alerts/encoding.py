"""Alerts ↔ ``marketd.v1.Alert`` Protobuf, and market events → detector ticks (pure).

``alert_record`` makes the Kafka record of an alert (topic ``alerts``, key = symbol,
headers ``type: alert`` and ``market``); ``outcome_record`` that of what happened after it
(same topic and key, ``type: alert_outcome``, ``marketd.v1.AlertOutcome``).

``TickReader`` takes the price of each market event the detector watches (the vocabulary
table's price column) with the event's exchange time ``E``: the close of a
``24hrMiniTicker``, the last price of a ``24hrTicker``, the price of a ``trade`` /
``aggTrade`` (with its quantity), the mark price of a ``markPriceUpdate`` (with the index
price and funding rate), the close of a ``kline``, the average price of an ``avgPrice``,
and the average price of a ``forceOrder`` (with its side and filled quantity: a
liquidation) — the same ticks as the codec puts beside its records.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from itertools import repeat

from google.protobuf.message import DecodeError

from marketd.alerts.model import FIGURES, Alert, AlertKind, Direction, Outcome, number_text
from marketd.data.events import Tick
from marketd.data.records import Market, Record, events_of, record_headers
from marketd.exchanges import adapters
from marketd.v1 import alert_pb2
from marketd.v1.market_data_pb2 import MARKET_SPOT, MARKET_USDM, MarketEvent

# Per market: ``type: alert`` and the market, as on every market-data record.
ALERT_HEADERS = {m: record_headers(m, "alert") for m in Market}
OUTCOME_TYPE = "alert_outcome"
OUTCOME_HEADERS = {m: record_headers(m, OUTCOME_TYPE) for m in Market}
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


_PB_KIND = {
    AlertKind.PRICE: alert_pb2.ALERT_KIND_PRICE,
    AlertKind.VOLUME: alert_pb2.ALERT_KIND_VOLUME,
    AlertKind.LIQUIDATION: alert_pb2.ALERT_KIND_LIQUIDATION,
    AlertKind.PREMIUM: alert_pb2.ALERT_KIND_PREMIUM,
    AlertKind.FUNDING: alert_pb2.ALERT_KIND_FUNDING,
}
_KIND_OF_PB = {v: k for k, v in _PB_KIND.items()} | {
    alert_pb2.ALERT_KIND_UNSPECIFIED: AlertKind.PRICE  # from a marketd before kinds
}
# The oneof field of each kind's figures; the integer ones are counts.
_FIGURES_FIELD = {
    AlertKind.VOLUME: "volume",
    AlertKind.LIQUIDATION: "liquidation",
    AlertKind.PREMIUM: "premium",
    AlertKind.FUNDING: "funding",
}
_COUNTS = frozenset({"trades", "count"})
_FLOATS = frozenset({"baseline_s"})


def alert_to_proto(alert: Alert) -> alert_pb2.Alert:
    message = _base_proto(alert)
    message.kind = _PB_KIND[alert.kind]
    for t, price in alert.path:
        message.path.add(time_ms=t, price=price)
    field = _FIGURES_FIELD.get(alert.kind)
    if field is not None:
        figures = getattr(message, field)
        figures.SetInParent()
        for name in FIGURES[alert.kind]:
            text = alert.figures.get(name, "")
            if name in _COUNTS:
                setattr(figures, name, int(text or 0))
            elif name in _FLOATS:
                setattr(figures, name, float(text or 0))
            else:
                setattr(figures, name, text)
    return message


def _base_proto(alert: Alert) -> alert_pb2.Alert:
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
    kind = _KIND_OF_PB.get(message.kind, AlertKind.PRICE)
    figures: dict[str, str] = {}
    field = message.WhichOneof("figures")
    if field is not None:
        body = getattr(message, field)
        for name in FIGURES[kind]:
            value = getattr(body, name)
            figures[name] = number_text(value) if name in _FLOATS else str(value)
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
        kind=kind,
        figures=figures,
        path=tuple((point.time_ms, point.price) for point in message.path),
    )


def outcome_to_proto(outcome: Outcome) -> alert_pb2.AlertOutcome:
    return alert_pb2.AlertOutcome(
        alert_id=outcome.alert_id,
        market=_PB_MARKET[outcome.market],
        symbol=outcome.symbol,
        after_s=outcome.after_s,
        price=outcome.price,
        price_time_ms=outcome.price_time_ms,
        change_pct=outcome.change_pct,
    )


def decode_outcome(value: bytes) -> Outcome:
    m = alert_pb2.AlertOutcome.FromString(value)
    return Outcome(
        alert_id=m.alert_id,
        market=_MARKET_OF_PB[m.market],
        symbol=m.symbol,
        after_s=m.after_s,
        price=m.price,
        price_time_ms=m.price_time_ms,
        change_pct=m.change_pct,
    )


def outcome_record(outcome: Outcome, topic: str) -> Record:
    """The Kafka record of ``outcome``: keyed by symbol like its alert, so it follows it."""
    market = _MARKETS[outcome.market]
    return Record(
        topic=topic,
        key=outcome.symbol.encode(),
        value=outcome_to_proto(outcome).SerializeToString(),
        headers=OUTCOME_HEADERS[market],
        received_ns=time.time_ns(),
        market=market,
        kind=OUTCOME_TYPE,
        symbol=outcome.symbol,
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


# Parses between renewals of the reused message (see TickReader.tick).
RENEW_PARSES = 1024


class TickReader:
    """Turns serialized ``MarketEvent`` values into ticks, for the configured kinds and
    markets only; counts what it skips. One reused message, renewed every
    ``RENEW_PARSES`` parses (with upb a message's arena keeps everything ever parsed into it
    until the message is freed): call from one thread."""

    def __init__(self, kinds: Iterable[str], markets: Iterable[str]) -> None:
        unknown = [k for k in kinds if k not in PRICE_FIELDS]
        if unknown:
            raise ValueError(f"no price in event kinds {unknown}")
        self.kinds = frozenset(kinds)
        self.markets = frozenset(markets)
        self._pb_markets = frozenset(_PB_MARKET[m] for m in self.markets)
        self._event = MarketEvent()
        self._parses = 0  # since the message was renewed (upb's arena grows per parse)
        self.malformed = 0

    def wanted(self, kind: str, market: str) -> bool:
        return kind in self.kinds and market in self.markets

    def tick(self, value: bytes) -> Tick | None:
        """The tick of one event value, or None (malformed, or a kind/market not watched)."""
        event = self._event
        self._parses += 1
        if self._parses >= RENEW_PARSES:
            # A fresh message frees the old one's arena, which every parse grows.
            self._event = event = MarketEvent()
            self._parses = 0
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
        market = _MARKET_OF_PB[event.market]
        volume = ""
        if field == "mini_ticker" or (field == "ticker" and not body.window):
            volume = body.quote_volume
        elif field in ("trade", "agg_trade"):
            return Tick(market, event.symbol, event.event_time_ms, price, "", body.quantity)
        elif field == "mark_price":
            return Tick(market, event.symbol, event.event_time_ms, price, "", "",
                        body.index_price, body.funding_rate)  # fmt: skip
        elif field == "liquidation":
            if not price.strip("0."):
                price = body.price
            return Tick(market, event.symbol, event.event_time_ms, price, "",
                        body.filled_quantity, "", "", body.side)  # fmt: skip
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
