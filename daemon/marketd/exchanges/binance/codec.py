"""The codec of one Binance market: JSON frames → ``marketd.v1.MarketEvent`` Protobuf
records (pure).

The hot path. Per frame: one msgspec decode of the combined-stream envelope (``data`` kept
raw), one dict lookup of the stream name to its cached handler
(:mod:`marketd.exchanges.binance.handlers`), one typed msgspec decode of ``data``, one
Protobuf fill + serialize. Nothing here blocks or imports trio.

Frames that cannot be used are counted, never raised: ``malformed`` (invalid JSON, not a
combined-stream envelope, wrong types, missing fields, a payload whose ``e`` contradicts its
stream, negative ids or ids beyond int64, prices that are not decimal strings, absurd
symbols, JSON nested deeper than the interpreter's recursion limit) and ``unknown`` (a valid
envelope on a stream this codec does not handle, e.g. ``btcusdt@markPrice@3s``, or a
payload with an unknown ``e``, or an array stream's item with one).
"""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from marketd.data.records import FrameBatch, Market, Record, RecordBatch
from marketd.errors import RestError
from marketd.exchanges.binance import HistoricalTrade, RestAggTrade, StreamFrame
from marketd.exchanges.binance.handlers import HEADERS, PB_MARKET, Handler, MarketHandlers
from marketd.exchanges.seam import DecodeResult, Topics
from marketd.v1.market_data_pb2 import MarketEvent

# Longest error text kept for the caller's rate-limited log line.
MAX_ERROR_CHARS = 300

_REST_KINDS = frozenset({"trade", "aggTrade"})

_decode_frame = msgspec.json.Decoder(StreamFrame).decode
_decode_historical_trades = msgspec.json.Decoder(list[HistoricalTrade]).decode
_decode_rest_agg_trades = msgspec.json.Decoder(list[RestAggTrade]).decode


def _unresolved(raw: msgspec.Raw, received_ns: int, out: list[Record]) -> None:
    raise AssertionError("a sentinel, never called")


# Marks a stream name not yet in the handler cache (None there means "unknown stream").
_UNRESOLVED: Handler = _unresolved


# Event types (``e``) the codec decodes. A payload with another ``e`` on a known stream is
# a new or unknown event (counted as unknown); a known ``e`` that fails to decode is malformed.
KNOWN_EVENT_TYPES = frozenset(kind for kinds in HEADERS.values() for kind in kinds)


class _EventType(msgspec.Struct):
    e: str | None = None


_decode_event_type = msgspec.json.Decoder(_EventType | list[_EventType]).decode


def _types(raw: msgspec.Raw) -> list[_EventType]:
    found: _EventType | list[_EventType] = _decode_event_type(raw)
    return found if isinstance(found, list) else [found]


def _unknown_event_type(raw: msgspec.Raw) -> str | None:
    """The ``e`` of a payload that failed to decode (slow path, errors only) when it is
    one the codec does not know: of the payload, or of an array stream's item. None when
    every ``e`` is known or missing (then the payload is malformed)."""
    try:
        found = _types(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    for item in found:
        if item.e is not None and item.e not in KNOWN_EVENT_TYPES:
            return item.e
    return None


# Frames between renewals of the handlers' reused messages (their upb arenas grow with
# every frame until renewed: about 3 KB a 20-level book frame). A renewal costs ~15
# message constructions, a few microseconds.
RENEW_MESSAGES_FRAMES = 1024


class Codec:
    """Turns one market's frame batches (and REST trade history) into Kafka records (the
    seam's :class:`~marketd.exchanges.seam.Codec`).

    Depth diffs go to ``topics.depth``, every other event to ``topics.raw``; each value is a
    serialized ``MarketEvent``, keyed by symbol. One instance serves every connection of
    its market; it holds only caches and reused messages, so it is not thread-safe: call
    it from one thread (the trio thread).
    """

    def __init__(self, market: Market, topics: Topics) -> None:
        self.market = market
        self.topics = topics
        self._handlers = MarketHandlers(market, topics)
        self._since_renewal = 0  # frames decoded since the reused messages were renewed

    def watch_prices(self, kinds: Collection[str]) -> None:
        """Put a :class:`~marketd.data.events.Tick` beside each record of ``kinds`` (what
        the detector watches), so it never parses those records back."""
        self._handlers.watch_prices(kinds)

    def newest_event_times(self) -> dict[str, int]:
        # Each kind's reused message still holds the newest event's time: free to read.
        return {kind: h.event.event_time_ms for kind, h in self._handlers.kinds.items()}

    def decode_batch(self, batch: FrameBatch) -> DecodeResult:
        """Decode every frame of ``batch`` (of this codec's market); never raises for bad
        input, counts it instead."""
        mc = self._handlers
        handlers = mc.handlers
        self._since_renewal += len(batch.frames)
        if self._since_renewal >= RENEW_MESSAGES_FRAMES:
            self._since_renewal = 0
            mc.renew_messages()
        records = RecordBatch()
        malformed = unknown = 0
        error = ""
        for frame, received_ns in zip(batch.frames, batch.received_ns, strict=True):
            try:
                envelope = _decode_frame(frame)
            except (msgspec.DecodeError, RecursionError) as exc:
                malformed += 1
                error = f"malformed frame: {exc}: {frame[:100]!r}"
                continue
            stream = envelope.stream
            handler = handlers.get(stream, _UNRESOLVED)
            if handler is _UNRESOLVED:
                handler = mc.resolve(stream)
            if handler is None:
                unknown += 1
                error = f"unknown stream {stream[:100]!r}"
                continue
            try:
                handler(envelope.data, received_ns, records)
            except (ValueError, RecursionError) as exc:  # msgspec.DecodeError, Protobuf errors
                event_type = _unknown_event_type(envelope.data)
                if event_type is not None:
                    unknown += 1
                    error = f"unknown event {event_type[:60]!r} on {stream[:100]!r}"
                else:
                    malformed += 1
                    error = f"malformed {stream[:100]!r} payload: {exc}"
        return DecodeResult(records.pad(), malformed, unknown, error[:MAX_ERROR_CHARS])

    def encode_rest_trades(
        self, symbol: str, kind: str, body: bytes, received_ns: int
    ) -> list[Record]:
        """Records for a REST trade-history response body, in row order, marked ``backfilled``.

        ``kind`` is ``"trade"`` for ``historicalTrades`` rows, ``"aggTrade"`` for
        ``aggTrades`` rows. The event time is the trade time (REST sends no event time).
        A body that is not a JSON array of such rows raises :class:`RestError` (nothing
        of it is used); any other ``kind`` is a programming error (:class:`ValueError`).
        """
        market = self.market
        if kind not in _REST_KINDS:
            raise ValueError(f"no REST trade history for kind {kind!r}: use 'trade' or 'aggTrade'")
        symbol = symbol.upper()
        try:
            if kind == "trade":
                return self._rest_trades(market, symbol, body, received_ns)
            return self._rest_agg_trades(market, symbol, body, received_ns)
        except ValueError as exc:  # msgspec.DecodeError, Protobuf range/UTF-8 errors
            raise RestError(
                f"malformed {kind} history for {market.value} {symbol} from Binance REST: "
                f"{exc}; body starts {body[:100]!r}"
            ) from exc

    def _rest_trades(
        self, market: Market, symbol: str, body: bytes, received_ns: int
    ) -> list[Record]:
        key = symbol.encode()
        pb_market = PB_MARKET[market]
        topic = self.topics.raw
        headers = HEADERS[market]["trade"]
        out: list[Record] = []
        for row in _decode_historical_trades(body):
            ev = MarketEvent(
                market=pb_market, symbol=symbol, event_time_ms=row.time, received_ns=received_ns
            )
            t = ev.trade
            t.trade_id = row.trade_id
            t.price = row.price
            t.quantity = row.quantity
            t.trade_time_ms = row.time
            t.buyer_is_maker = row.buyer_is_maker
            t.backfilled = True
            value = ev.SerializeToString()
            out.append(
                Record(
                    topic, key, value, headers, received_ns, market, "trade", symbol, row.trade_id
                )
            )
        return out

    def _rest_agg_trades(
        self, market: Market, symbol: str, body: bytes, received_ns: int
    ) -> list[Record]:
        key = symbol.encode()
        pb_market = PB_MARKET[market]
        topic = self.topics.raw
        headers = HEADERS[market]["aggTrade"]
        out: list[Record] = []
        for row in _decode_rest_agg_trades(body):
            ev = MarketEvent(
                market=pb_market,
                symbol=symbol,
                event_time_ms=row.trade_time,
                received_ns=received_ns,
            )
            a = ev.agg_trade
            a.agg_trade_id = row.agg_trade_id
            a.price = row.price
            a.quantity = row.quantity
            a.first_trade_id = row.first_trade_id
            a.last_trade_id = row.last_trade_id
            a.trade_time_ms = row.trade_time
            a.buyer_is_maker = row.buyer_is_maker
            a.normal_quantity = row.normal_quantity
            a.backfilled = True
            value = ev.SerializeToString()
            out.append(
                Record(
                    topic,
                    key,
                    value,
                    headers,
                    received_ns,
                    market,
                    "aggTrade",
                    symbol,
                    row.agg_trade_id,
                )
            )
        return out
