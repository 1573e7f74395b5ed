"""Binance frames → detector ticks without the Kafka records: the seam's tick decoder (pure).

For replaying recorded frames (``marketd backtest``), where only the ticks count. The hot
kinds (``trade``, ``aggTrade``, ``24hrMiniTicker``, ``markPriceUpdate``; their
``<symbol>@<channel>`` streams and their ``!...@arr`` array streams) each have a lane: a
run of frames of the lane's streams becomes ticks in a few calls instead of a handler call
per frame, and without the Protobuf record a handler also makes (most of its cost). The
ticks are the ones the handlers put beside their records
(:mod:`marketd.exchanges.binance.handlers`: ``trades.py``, ``tickers.py`` ``MiniTickers``,
``futures.py`` ``MarkPrices``), field for field; ``tests/backtest`` holds the two together.

A lane refuses the frames the codec would refuse, and those that name a stream of another
lane (the codec decodes a frame by the stream it names): each frame is decoded with a twin
of its kind's payload struct (:mod:`.streams`: the same fields, types, limits and tag)
that leaves out the per-payload value check (``__post_init__``); the run's values are
then checked at once with :func:`~marketd.exchanges.binance.values.columns_check`, and
when that check does not pass, frame by frame with the struct itself. Other kinds have no
lane: the codec decodes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, TypeVar

import msgspec

from marketd.data.events import Tick
from marketd.data.records import Market
from marketd.exchanges.binance import AggTrade, MarkPriceUpdate, MiniTicker, Trade
from marketd.exchanges.binance.handlers import MAX_CACHED_STREAMS
from marketd.exchanges.binance.values import columns_check
from marketd.exchanges.binance.vocabulary import BY_ALL_MARKET, BY_CHANNEL
from marketd.exchanges.seam import TickRun

T = TypeVar("T")
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError, ValueError)


class _Envelope(msgspec.Struct, Generic[T], frozen=True, gc=False):
    """A combined-stream frame with its ``data`` decoded as ``T`` in the same pass."""

    stream: str
    data: T


def unchecked(struct: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """A twin of a payload struct without its ``__post_init__``: the same fields (names,
    types with their limits, defaults), tag and options, so it refuses what ``struct``
    refuses except for the values its ``__post_init__`` checks."""
    config = struct.__struct_config__
    fields = []
    for f in msgspec.structs.fields(struct):
        if f.default is not msgspec.NODEFAULT:
            field = msgspec.field(name=f.encode_name, default=f.default)
        elif f.default_factory is not msgspec.NODEFAULT:
            field = msgspec.field(name=f.encode_name, default_factory=f.default_factory)
        else:
            field = msgspec.field(name=f.encode_name)
        fields.append((f.name, f.type, field))
    return msgspec.defstruct(
        f"Unchecked{struct.__name__}",
        fields,
        module=__name__,
        tag_field=config.tag_field,
        tag=config.tag,
        forbid_unknown_fields=config.forbid_unknown_fields,
        array_like=config.array_like,
        frozen=config.frozen,
        gc=config.gc,
    )


Events = list[Any]  # decoded payloads of one kind (unchecked twins), in frame order


# Per kind: its ticks, as the handlers put them beside their records (see the module doc);
# the values its struct's ``__post_init__`` checks, one column per letter of the kind's
# ``values_check`` signature (the fields of one letter in one column); its ids, for the
# kinds whose ids are sequenced. Comprehensions naming the fields: several times cheaper
# than ``operator.attrgetter`` on these structs.
def _trade_ticks(m: str, ev: Events) -> list[Tick]:
    return [Tick(m, e.symbol, e.event_time, e.price, "", e.quantity) for e in ev]


def _trade_values(ev: Events) -> list[list[str]]:
    return [[e.symbol for e in ev], [e.price for e in ev] + [e.quantity for e in ev]]


def _agg_trade_values(ev: Events) -> list[list[str]]:
    return [*_trade_values(ev), [e.normal_quantity for e in ev]]


def _trade_ids(ev: Events) -> list[int]:
    return [e.trade_id for e in ev]


def _agg_trade_ids(ev: Events) -> list[int]:
    return [e.agg_trade_id for e in ev]


def _mini_ticker_ticks(m: str, ev: Events) -> list[Tick]:
    return [Tick(m, e.symbol, e.event_time, e.close_price, e.quote_volume) for e in ev]


def _mini_ticker_values(ev: Events) -> list[list[str]]:
    return [
        [e.symbol for e in ev],
        [e.close_price for e in ev] + [e.open_price for e in ev] + [e.high_price for e in ev]
        + [e.low_price for e in ev] + [e.base_volume for e in ev] + [e.quote_volume for e in ev],
    ]  # fmt: skip


def _mark_ticks(m: str, ev: Events) -> list[Tick]:
    return [
        Tick(m, e.symbol, e.event_time, e.mark_price, "", "", e.index_price, e.funding_rate)
        for e in ev
    ]


def _mark_values(ev: Events) -> list[list[str]]:
    return [
        [e.symbol for e in ev],
        [e.mark_price for e in ev] + [e.index_price for e in ev],
        [e.estimated_settle_price for e in ev] + [e.funding_rate for e in ev],
    ]


class _Kind:
    """A kind with a lane: its payload struct, the ``values_check`` letters of the value
    columns (``tests/exchanges`` holds them to the struct's own check) and the functions
    above."""

    __slots__ = ("check", "ids", "struct", "ticks", "values")

    def __init__(
        self,
        struct: type[msgspec.Struct],
        signature: str,
        values: Callable[[Events], list[list[str]]],
        ticks: Callable[[str, Events], list[Tick]],
        ids: Callable[[Events], list[int]] | None = None,
    ) -> None:
        self.struct = struct
        self.check = columns_check(signature)
        self.values = values
        self.ticks = ticks
        self.ids = ids


KINDS: Final[dict[str, _Kind]] = {
    "trade": _Kind(Trade, "yu", _trade_values, _trade_ticks, _trade_ids),
    "aggTrade": _Kind(AggTrade, "yue", _agg_trade_values, _trade_ticks, _agg_trade_ids),
    "24hrMiniTicker": _Kind(MiniTicker, "yu", _mini_ticker_values, _mini_ticker_ticks),
    "markPriceUpdate": _Kind(MarkPriceUpdate, "yuo", _mark_values, _mark_ticks),
}
"""The kinds with a lane."""


class Lane:
    """The frames of one kind's streams of one market, single events or arrays (the
    seam's :class:`~marketd.exchanges.seam.TickLane`)."""

    __slots__ = (
        "_decode",
        "_decode_checked",
        "_known",
        "_lane_of",
        "array",
        "kind",
        "market",
        "spec",
    )

    def __init__(self, decoder: TickDecoder, kind: str, array: bool) -> None:
        self.market = decoder.market.value
        self.kind = kind
        self.array = array
        self.spec = spec = KINDS[kind]
        # Stream name → its lane, as the decoder has resolved them so far (the same dict).
        self._known = decoder.known
        self._lane_of = decoder.lane
        twin: Any = unchecked(spec.struct)
        struct: Any = spec.struct
        if array:
            twin, struct = list[twin], list[struct]
        self._decode: Callable[[bytes], _Envelope[Any]] = msgspec.json.Decoder(
            _Envelope[twin]
        ).decode
        self._decode_checked: Callable[[bytes], _Envelope[Any]] = msgspec.json.Decoder(
            _Envelope[struct]
        ).decode

    def __repr__(self) -> str:
        shape = "arrays" if self.array else "events"
        return f"<tick lane {self.market} {self.kind} {shape}>"

    def decode(self, frames: Sequence[bytes]) -> TickRun:
        decode = self._decode
        try:
            envelopes = list(map(decode, frames))
        except _DECODE_ERRORS:  # one is damaged: keep those before it
            envelopes = []
            for frame in frames:
                try:
                    envelopes.append(decode(frame))
                except _DECODE_ERRORS:
                    break
        n = len(envelopes)
        names = [e.stream for e in envelopes]
        if list(map(self._known.get, names)).count(self) != n:  # not all of this lane's
            n = self._same_lane(names)
            del envelopes[n:]
        spec = self.spec
        counts: list[int] = []
        if self.array:
            data = [e.data for e in envelopes]
            counts = list(map(len, data))
            events = [event for items in data for event in items]
        else:
            events = [e.data for e in envelopes]
        if not spec.check(spec.values(events)):
            n = self._checked(frames, n)
            if self.array:
                del counts[n:]
                events = events[: sum(counts)]
            else:
                del events[n:]
        ticks = spec.ticks(self.market, events)
        ids = [] if spec.ids is None else spec.ids(events)
        return TickRun(n, ticks, ids, counts)

    def _same_lane(self, names: list[str]) -> int:
        """How many of ``names`` name streams of this lane, from the first on (the live
        codec decodes a frame by the stream it names: the streams of one lane alike)."""
        lane_of = self._lane_of
        for i, name in enumerate(names):
            if lane_of(name) is not self:
                return i
        return len(names)

    def _checked(self, frames: Sequence[bytes], n: int) -> int:
        """How many of the first ``n`` frames the payload struct itself accepts, from the
        first on (all ``n`` when the column check was only unsure)."""
        decode = self._decode_checked
        for i in range(n):
            try:
                decode(frames[i])
            except _DECODE_ERRORS:
                return i
        return n


class TickDecoder:
    """One market's lanes (the seam's :class:`~marketd.exchanges.seam.TickDecoder`)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self._lanes: dict[tuple[str, bool], Lane] = {}
        # Stream name → its lane (None: no lane), bounded as the codec's handler cache.
        self.known: dict[str, Lane | None] = {}

    def lane(self, stream: str) -> Lane | None:
        try:
            return self.known[stream]
        except KeyError:
            pass
        found = self._resolve(stream)
        if len(self.known) >= MAX_CACHED_STREAMS:
            self.known.clear()
        self.known[stream] = found
        return found

    def _resolve(self, stream: str) -> Lane | None:
        if stream.startswith("!"):
            row = BY_ALL_MARKET[self.market].get(stream)
            # All-market streams of single events: none among the kinds with a lane.
            if row is None or stream not in row.arrays:
                return None
            array = True
        else:
            symbol, _, channel = stream.partition("@")
            row = BY_CHANNEL[self.market].get(channel) if symbol else None
            if row is None:
                return None
            array = False
        if row.kind not in KINDS:
            return None
        found = self._lanes.get((row.kind, array))
        if found is None:
            found = self._lanes[(row.kind, array)] = Lane(self, row.kind, array)
        return found
