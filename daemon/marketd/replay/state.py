"""One market as a replay has played it so far: books, trades, mark prices, tickers (pure).

The server feeds it the WebSocket frames it sends (:meth:`MarketState.sent`), the recorded
REST answers as they are read ahead of the clock (:meth:`MarketState.read_ahead`: trade
pages become known at once, served from each trade's own time) and as the clock passes
them (:meth:`MarketState.passed`: a depth snapshot starts a book that has none). The REST
handler (:mod:`.rest`) asks it questions at the replay's clock.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any

import msgspec
import orjson

from marketd.data.records import Market
from marketd.replay.book import Diff, ReplayBook
from marketd.replay.timeline import rest_target
from marketd.replay.trades import DEFAULT_CAPACITY, HeldTrades, Trade


# The frames the replay keeps state from, decoded into typed structs (fields not named are
# skipped unparsed): about half the cost of a dict from orjson.
class _AggData(msgspec.Struct):
    a: int
    p: str
    q: str
    f: int
    l: int  # noqa: E741 - Binance's name
    T: int
    m: bool


class _RawData(msgspec.Struct):
    t: int
    p: str
    q: str
    T: int
    m: bool


class _DiffData(msgspec.Struct):
    U: int
    u: int
    E: int
    b: list[list[str]]
    a: list[list[str]]
    pu: int | None = None
    T: int | None = None


_AGG = msgspec.json.Decoder(_AggData).decode
_RAW = msgspec.json.Decoder(_RawData).decode
_DIFF = msgspec.json.Decoder(_DiffData).decode


def _is_depth_diff(channel: str) -> bool:
    # depth, depth@100ms, depth@0ms, depth@500ms: diffs; depth5 / depth20@100ms: partial.
    return channel == "depth" or channel.startswith("depth@")


# Binance's depth ``limit`` when a request gives none.
DEFAULT_DEPTH_LIMIT = {Market.SPOT: 100, Market.USDM: 500}


class RecordedSnapshot:
    """A depth snapshot marketd received: served again, truncated to a client's limit.

    ``limit`` is the depth marketd asked for. A side with that many levels was cut there (the
    exchange may hold more), so the snapshot answers a deeper request only if neither side
    was cut: otherwise its shorter answer would read as a complete book.
    """

    __slots__ = ("body", "last_id", "limit", "received_ns")

    def __init__(self, received_ns: int, last_id: int, body: dict[str, Any], limit: int) -> None:
        self.received_ns = received_ns
        self.last_id = last_id
        self.body = body
        self.limit = limit

    def answers(self, limit: int) -> bool:
        """Whether this snapshot is the exchange's book to ``limit`` levels a side."""
        return limit <= self.limit or (
            len(self.body["bids"]) < self.limit and len(self.body["asks"]) < self.limit
        )


class SymbolState:
    __slots__ = ("aggs", "book", "book_ticker", "mark", "raws", "snapshot_times", "snapshots")

    def __init__(self, *, chained: bool, capacity: int) -> None:
        self.book = ReplayBook(chained=chained)
        self.aggs = HeldTrades(capacity)
        self.raws = HeldTrades(capacity)
        self.mark: dict[str, Any] | None = None  # the last markPriceUpdate's data
        self.book_ticker: dict[str, Any] | None = None  # the last bookTicker's data
        self.snapshots: list[RecordedSnapshot] = []  # in received order
        self.snapshot_times: list[int] = []  # their received_ns, for bisect

    def trades(self) -> HeldTrades:
        """The trades prices come from: aggregates when recorded, else raw trades."""
        return self.aggs if len(self.aggs) else self.raws


class MarketState:
    def __init__(self, market: Market, capacity: int = DEFAULT_CAPACITY) -> None:
        self.market = market
        self.capacity = capacity
        self.symbols: dict[str, SymbolState] = {}  # upper-case symbol →
        self.bad_frames = 0  # sent frames whose data could not be read (still sent)

    def symbol(self, name: str) -> SymbolState:
        name = name.upper()
        state = self.symbols.get(name)
        if state is None:
            state = self.symbols[name] = SymbolState(
                chained=self.market is Market.USDM, capacity=self.capacity
            )
        return state

    # -- what the replay sends and reads --------------------------------------------------

    def sent(self, stream: str, data: str) -> None:
        """Take in the data of one frame the replay sent on ``stream``."""
        symbol, _, channel = stream.partition("@")
        state = self.symbols.get(symbol.upper()) or self.symbol(symbol)
        try:
            if channel == "aggTrade":
                a = _AGG(data)
                state.aggs.add(Trade(a.a, a.T, a.p, a.q, a.m, a.f, a.l))
            elif channel == "trade":
                t = _RAW(data)
                state.raws.add(Trade(t.t, t.T, t.p, t.q, t.m, t.t, t.t))
            elif _is_depth_diff(channel):
                d = _DIFF(data)
                state.book.diff(Diff(d.U, d.u, d.pu, d.E, d.T or d.E, d.b, d.a))
            elif channel.startswith("markPrice"):
                d = orjson.loads(data)
                self.symbol(symbol).mark = d
            elif channel == "bookTicker":
                d = orjson.loads(data)
                self.symbol(symbol).book_ticker = d
            elif stream.startswith("!markPrice@arr"):
                for d in orjson.loads(data):
                    self.symbol(d["s"]).mark = d
            elif stream == "!bookTicker":
                d = orjson.loads(data)
                self.symbol(d["s"]).book_ticker = d
        except (orjson.JSONDecodeError, msgspec.DecodeError, KeyError, TypeError, ValueError):
            self.bad_frames += 1

    def read_ahead(self, target: str, body: bytes, received_ns: int) -> None:
        """Take in a recorded REST answer when it is read, before the clock reaches it."""
        path, params = rest_target(target)
        symbol = params.get("symbol")
        if not symbol:
            return
        try:
            rows = orjson.loads(body)
            if path.endswith("/depth"):
                state = self.symbol(symbol)
                at = bisect.bisect_right(state.snapshot_times, received_ns)
                state.snapshot_times.insert(at, received_ns)
                limit = int(params.get("limit") or DEFAULT_DEPTH_LIMIT[self.market])
                state.snapshots.insert(
                    at, RecordedSnapshot(received_ns, int(rows["lastUpdateId"]), rows, limit)
                )
            elif path.endswith("/aggTrades"):
                held = self.symbol(symbol).aggs
                for r in rows:
                    held.add(Trade(r["a"], r["T"], r["p"], r["q"], r["m"], r["f"], r["l"]))
            elif path.endswith("/historicalTrades") or path.endswith("/trades"):
                held = self.symbol(symbol).raws
                for r in rows:
                    t = r["id"]
                    held.add(Trade(t, r["time"], r["price"], r["qty"], r["isBuyerMaker"], t, t))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.bad_frames += 1

    def passed(self, target: str, received_ns: int) -> None:
        """The clock passed a recorded REST answer: a snapshot starts a book that has none."""
        path, params = rest_target(target)
        symbol = params.get("symbol")
        if not symbol or not path.endswith("/depth"):
            return
        state = self.symbol(symbol)
        at = bisect.bisect_left(state.snapshot_times, received_ns)
        if at < len(state.snapshots):
            snap = state.snapshots[at]
            state.book.snapshot(snap.last_id, snap.body["bids"], snap.body["asks"], snap.limit)

    def forget_before(self, received_ns: int) -> None:
        """Drop recorded snapshots the clock passed more than a moment ago (memory)."""
        for state in self.symbols.values():
            at = bisect.bisect_left(state.snapshot_times, received_ns)
            if at:
                del state.snapshots[:at]
                del state.snapshot_times[:at]

    # -- questions ------------------------------------------------------------------------

    def snapshot_ahead(self, symbol: str, clock_ns: int, limit: int = 0) -> RecordedSnapshot | None:
        """The first recorded snapshot of ``symbol`` received at or after ``clock_ns`` that
        holds the exchange's book ``limit`` levels deep (a shallower one is skipped)."""
        state = self.symbols.get(symbol.upper())
        if state is None:
            return None
        at = bisect.bisect_left(state.snapshot_times, clock_ns)
        for snap in itertools.islice(state.snapshots, at, None):
            if snap.answers(limit):
                return snap
        return None
