"""Recorded frames → detector ticks, as the live pipeline makes them (pure, no trio).

Live, with ``alerts.source: pipeline``, a frame goes through the market's codec (which
puts a :class:`~marketd.data.events.Tick` beside each record of a watched kind), the
normalizer's sequencer (which drops trades whose id is at or below the last one seen),
the detector's tap (the watched kinds and markets) and the :class:`TickReader`. Here the
same happens to each recorded WebSocket entry, in recording order, with two differences:

* **No Kafka records.** Frames of the streams the market's adapter has a tick lane for
  (:meth:`~marketd.exchanges.seam.Exchange.tick_decoder`; Binance: the trade, aggTrade,
  mini ticker and mark price streams, single and array) are decoded by that lane, a run
  of consecutive frames at a time, into the ticks its codec would put beside its records,
  without the Protobuf records (most of the codec's cost). A frame the lane refuses, and
  every frame of the other streams, goes through the real codec, which also counts it as
  malformed or unknown. ``tests/backtest`` holds the lanes to the codec's ticks.
* **No backfill.** Live, a trade id gap is filled from the exchange's REST history; a
  recording cannot ask, so the missing trades stay missing (the gap is counted). The
  recorded REST responses are not replayed.

Entries of kinds or markets the detector does not watch are skipped undecoded (live they
are decoded for Kafka, but no tick comes of them). An entry without a stream name is a
control frame or a connection marker, which the live connection keeps to itself
(skipped, counted), or garbage, which it hands on and the codec counts as malformed. The
market of an entry is the prefix of its connection's id (``usdm-market-0`` → usdm,
``spot-0`` → spot; :func:`marketd.feed.streams.plan_connections`).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Collection, Sequence
from typing import Final

import attrs

from marketd.alerts.encoding import TickReader
from marketd.config.settings import TopicSettings
from marketd.data.events import Tick
from marketd.data.records import FrameBatch, Market, RecordBatch
from marketd.exchanges import adapter
from marketd.exchanges.seam import Codec, TickDecoder, TickLane, Vocabulary
from marketd.pipeline.sequence import DEDUPLICATED_KINDS, SEQUENCED_KINDS
from marketd.recorder.format import Columns, Entry, payload_marker

RUN_SLICE = 256
"""Frames handed to a lane at a time: enough to share the per-call work, few enough that
what they decode to stays in the CPU's caches between the lane's passes over it."""

# Kinds whose ids the normalizer checks: an id at or below the last one seen is dropped.
_CHECKED_IDS: Final = SEQUENCED_KINDS | DEDUPLICATED_KINDS


class _Fast:
    """The frames of one stream of one connection go to a tick lane (one lane serves many
    streams: those of one kind and shape of one market)."""

    __slots__ = ("gaps", "lane", "last_ids", "market")

    def __init__(self, market: Market, kind: str, lane: TickLane, last_ids: dict[str, int]) -> None:
        self.market = market
        self.lane = lane
        self.last_ids = last_ids  # symbol → the last id seen, of this market and kind
        self.gaps = kind in SEQUENCED_KINDS  # consecutive ids: a jump is a gap


class _Run:
    """Consecutive entries for one lane, their frames and receive times."""

    __slots__ = ("entries", "frames", "lane", "route", "times")

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.frames: list[bytes] = []
        self.times: list[int] = []
        self.route: _Fast | None = None  # of the first entry
        self.lane: TickLane | None = None

    def start(self, route: _Fast | None) -> None:
        """Start again, empty (the lists are cleared in place)."""
        self.route = route
        self.lane = None if route is None else route.lane
        self.entries.clear()
        self.frames.clear()
        self.times.clear()


class _Slow:
    """What happens to the frames of a stream without a tick lane."""

    __slots__ = ("market", "what")

    def __init__(self, market: Market | None, what: str) -> None:
        self.market = market
        self.what = what


_SKIP: Final = "skip"  # not a watched kind or market: no tick can come of it
_CODEC: Final = "codec"  # through the market's codec
_UNNAMED: Final = "unnamed"  # no stream name: a control frame, a marker, or garbage
_NO_MARKET: Final = "no market"  # a connection whose id names no market


@attrs.frozen
class TickStatistics:
    frames: int  # WebSocket entries of a watched kind and market, decoded
    by_codec: int  # of them, through the codec (no tick lane, or refused by it)
    skipped: int  # WebSocket entries of other kinds or markets (not decoded)
    control: int  # control frames and connection markers (never data, live or here)
    rest: int  # recorded REST responses (not replayed)
    unknown_connections: int  # entries whose connection names no market
    malformed: int  # frames the codec refuses (the adapter's codec says which)
    unknown: int  # frames of a stream or event type the codec does not know
    duplicates: int  # trades at or below the last id seen (the normalizer drops them)
    gaps: int  # trade id jumps (live backfills them from REST; here they stay missing)
    ticks: int  # handed to the detector


class FrameTicks:
    """Turns recorded entries into the ticks the live detector would get (see the module
    documentation). Holds caches and the per-symbol last trade ids: one run, one thread."""

    def __init__(self, kinds: Collection[str], markets: Collection[Market]) -> None:
        self.kinds = frozenset(kinds)
        self.markets = frozenset(markets)
        # Validates the kinds (each must carry a price), as the live detector service does.
        self._reader = TickReader(self.kinds, [m.value for m in self.markets])
        self._codecs: dict[Market, Codec] = {}
        self._decoders: dict[Market, TickDecoder] = {}
        self._vocabularies: dict[Market, Vocabulary] = {}
        for market in self.markets:
            exchange = adapter(market)
            codec = exchange.codec(TopicSettings())
            codec.watch_prices(self.kinds)
            self._codecs[market] = codec
            self._decoders[market] = exchange.tick_decoder()
            self._vocabularies[market] = exchange.vocabulary
        self._parse_control = {m: adapter(m).parse_control for m in Market}
        # Connection → stream → route: a connection serves one market.
        self._routes: dict[str, dict[str, _Fast | _Slow]] = {}
        # (market, kind) → symbol → the last id seen (the normalizer's sequencer's table).
        self._last_ids: dict[tuple[Market, str], dict[str, int]] = {}
        self.frames = self.by_codec = self.skipped = self.control = self.rest = 0
        self.unknown_connections = self.malformed = self.unknown = 0
        self.duplicates = self.gaps = self.ticks = 0

    def statistics(self) -> TickStatistics:
        return TickStatistics(
            frames=self.frames,
            by_codec=self.by_codec,
            skipped=self.skipped,
            control=self.control,
            rest=self.rest,
            unknown_connections=self.unknown_connections,
            malformed=self.malformed,
            unknown=self.unknown,
            duplicates=self.duplicates,
            gaps=self.gaps,
            ticks=self.ticks,
        )

    def decode(self, entries: Sequence[Entry], ticks: list[Tick], received: list[int]) -> None:
        """Append the ticks of ``entries`` to ``ticks``, in order, and beside each the
        ``received_ns`` of its entry to ``received``."""
        # The hot path: per entry two dict lookups and a few appends. Consecutive entries
        # for one lane make a run, decoded when an entry for another lane or the codec
        # comes (or at the end); entries that make no tick (skipped, control, REST) do
        # not interrupt it.
        routes = self._routes
        before = len(ticks)
        run = _Run()
        add_entry, add_frame, add_time = run.entries.append, run.frames.append, run.times.append
        for entry in entries:
            if entry.kind != "ws":
                self.rest += 1
                continue
            connection, stream = entry.connection, entry.stream
            known = routes.get(connection)
            if known is None:
                known = routes[connection] = {}
            route = known.get(stream)
            if route is None:
                route = known[stream] = self._route(connection, stream)
            if isinstance(route, _Fast):
                if route.lane is not run.lane:
                    if run.entries:
                        self._run_of(run, ticks, received)
                    run.start(route)
                add_entry(entry)
                add_frame(entry.payload)
                add_time(entry.received_ns)
                continue
            what, market = route.what, route.market
            if what is _SKIP:
                self.skipped += 1
            elif what is _NO_MARKET or market is None:
                self.unknown_connections += 1
            elif what is _UNNAMED and self._control(market, entry):
                self.control += 1
            else:
                if run.entries:
                    self._run_of(run, ticks, received)
                    run.start(None)
                self.frames += 1
                self._through_codec(market, entry, ticks, received)
        if run.entries:
            self._run_of(run, ticks, received)
        self.ticks += len(ticks) - before

    def _run_of(self, run: _Run, ticks: list[Tick], received: list[int]) -> None:
        assert run.route is not None  # a run has a route
        entries = run.entries
        self._run(run.route, run.frames, run.times, lambda: entries, ticks, received)

    def decode_columns(
        self, block: Sequence[Columns], ticks: list[Tick], received: list[int]
    ) -> None:
        """What :meth:`decode` does with the entries of ``block``, in order, without an
        entry each where it can: a group's consecutive entries for one tick lane go to it
        as they are, the others through :meth:`decode`."""
        for columns in block:
            if columns.kind != "ws":
                self.rest += len(columns)
                continue
            by_stream = self._lanes_of(columns)
            keys = list(map(by_stream.__getitem__, columns.ids))
            at = 0
            for route, run in itertools.groupby(keys):
                end = at + len(list(run))
                if route is None:
                    self.decode(columns.entries(at, end), ticks, received)
                else:
                    refused = functools.partial(columns.entries, at, end)
                    payloads, ns = columns.payloads[at:end], columns.ns[at:end]
                    before = len(ticks)
                    self._run(route, payloads, ns, refused, ticks, received)
                    self.ticks += len(ticks) - before
                at = end

    def _lanes_of(self, columns: Columns) -> list[_Fast | None]:
        """Per stream of the group's table, the route of its lane (one per lane), or
        None for a stream without one."""
        known = self._routes.get(columns.connection)
        if known is None:
            known = self._routes[columns.connection] = {}
        by_lane: dict[TickLane, _Fast] = {}
        out: list[_Fast | None] = []
        for stream in columns.streams:  # the group's table: a few to hundreds
            route = known.get(stream)
            if route is None:
                route = known[stream] = self._route(columns.connection, stream)
            out.append(by_lane.setdefault(route.lane, route) if isinstance(route, _Fast) else None)
        return out

    def _run(
        self,
        route: _Fast,
        frames: list[bytes],
        times: list[int],
        entries: Callable[[], list[Entry]],
        ticks: list[Tick],
        received: list[int],
    ) -> None:
        """The ticks of a run of frames for one lane (``route``'s); a frame the lane
        refuses goes through the codec, in its place (``entries`` gives them)."""
        lane = route.lane
        total = len(frames)
        self.frames += total
        done = 0
        refused: list[Entry] | None = None
        while done < total:
            end = min(done + RUN_SLICE, total)
            result = lane.decode(frames[done:end])
            n = result.frames
            found = result.ticks
            if result.counts:  # array frames: each time once per tick of its frame
                when = list(
                    itertools.chain.from_iterable(
                        map(itertools.repeat, times[done : done + n], result.counts)
                    )
                )
            else:
                when = times[done : done + n]
            if result.ids:
                found, when = self._sequence(route, found, result.ids, when)
            ticks += found
            received += when
            done += n
            if done < end:  # refused
                if refused is None:
                    refused = entries()
                self._through_codec(route.market, refused[done], ticks, received)
                done += 1

    def _sequence(
        self, route: _Fast, found: list[Tick], ids: list[int], when: list[int]
    ) -> tuple[list[Tick], list[int]]:
        """The normalizer's id check (:class:`marketd.pipeline.sequence.TradeSequencer`)
        of a lane's ticks, as :meth:`_fresh` does for one: duplicates dropped, gaps
        counted. The usual case, every id the one after the last, in a tight loop."""
        last_ids = route.last_ids
        get = last_ids.get
        symbols = [t.symbol for t in found]
        pairs = zip(symbols, ids, strict=True)
        for symbol, seq in pairs:
            last = get(symbol)
            if last is not None and seq - last != 1:
                break
            last_ids[symbol] = seq
        else:
            return found, when
        start = len(found) - 1 - len(list(pairs))  # the first out of line
        kept = list(range(start))
        for i in range(start, len(found)):
            symbol, seq = symbols[i], ids[i]
            last = get(symbol)
            if last is not None and seq - last != 1:
                if seq <= last:
                    self.duplicates += 1
                    continue
                if route.gaps:
                    self.gaps += 1
            last_ids[symbol] = seq
            kept.append(i)
        if len(kept) == len(found):
            return found, when
        return [found[i] for i in kept], [when[i] for i in kept]

    def _ids(self, market: Market, kind: str) -> dict[str, int]:
        found = self._last_ids.get((market, kind))
        if found is None:
            found = self._last_ids[(market, kind)] = {}
        return found

    def _fresh(self, market: Market, kind: str, symbol: str, seq: int) -> bool:
        """The normalizer's id check (:class:`marketd.pipeline.sequence.TradeSequencer`):
        an id at or below the last one seen is a duplicate; a jump in consecutive ids is
        a gap, passed on as when backfill is off."""
        last_ids = self._ids(market, kind)
        last = last_ids.get(symbol)
        if last is not None:
            if seq <= last:
                self.duplicates += 1
                return False
            if kind in SEQUENCED_KINDS and seq != last + 1:
                self.gaps += 1
        last_ids[symbol] = seq
        return True

    def _control(self, market: Market, entry: Entry) -> bool:
        """Whether an entry without a stream name is one the live connection keeps to
        itself (a control frame, a connection marker) rather than hands on as data
        (garbage, which the codec then counts as malformed)."""
        payload = entry.payload
        if payload_marker(payload) is not None:
            return True
        return self._parse_control[market](payload.decode("utf-8", "replace")) is not None

    def _through_codec(
        self, market: Market, entry: Entry, ticks: list[Tick], received: list[int]
    ) -> None:
        """One frame through the market's codec, as the live pipeline decodes it."""
        self.by_codec += 1
        ns = entry.received_ns
        # Recorded frames are the text the feed received, so valid UTF-8; a damaged one
        # is malformed anyway.
        frame = entry.payload.decode("utf-8", "replace")
        result = self._codecs[market].decode_batch(
            FrameBatch(market, entry.connection, [frame], [ns])
        )
        self.malformed += result.malformed
        self.unknown += result.unknown
        records = result.records
        kept = RecordBatch()
        for record, event in zip(records, records.events, strict=True):
            if record.kind in _CHECKED_IDS and not self._fresh(
                record.market, record.kind, record.symbol, record.seq
            ):
                continue
            kept.add(record, event)
        for tick in self._reader.ticks(kept):
            ticks.append(tick)
            received.append(ns)

    def _route(self, connection: str, stream: str) -> _Fast | _Slow:
        market = _market(connection)
        if market is None:
            return _Slow(None, _NO_MARKET)
        if market not in self.markets:
            return _Slow(market, _SKIP)
        if not stream:
            return _Slow(market, _UNNAMED)
        kind = self._vocabularies[market].kind_of(stream)
        if kind is None or kind not in self.kinds:
            return _Slow(market, _SKIP)
        lane = self._decoders[market].lane(stream)
        if lane is None:
            return _Slow(market, _CODEC)
        return _Fast(market, kind, lane, self._ids(market, kind))


def _market(connection: str) -> Market | None:
    """The market of a connection id (``usdm-market-0``, ``spot-0``; see
    :func:`marketd.feed.streams.plan_connections`)."""
    prefix = connection.partition("-")[0]
    for market in Market:
        if market.value == prefix:
            return market
    return None
