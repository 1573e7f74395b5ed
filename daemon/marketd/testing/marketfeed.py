"""A lean Binance-format *market* feed: spot and USD-M, trades, book tickers and depth diffs
with REST snapshots consistent with them, for full-market benchmarks.

What it is for: ``bench/bench_fullmarket.py``, which measures ``marketd run`` (one process,
and ``collector.shards: 2``) on ~300 spot and ~500 USD-M symbols, each with its trades,
``depth@100ms`` and ``bookTicker``. The fake exchange (:mod:`marketd.fakex`: a market
model in Python) is far too slow for that; the lean feed (:mod:`marketd.testing.leanfeed`)
is fast but spot trades and tickers only. This module extends the lean feed (its server,
HTTP handling, frame building, symbol tables, ``historicalTrades``: imported, not copied)
with what a full market needs. It is not a market: no faults, no weights, no klines.

    python -m marketd.testing.marketfeed --spot 300 --usdm 500 --rate 20000 [--levels 1000]

prints one JSON line (``spot_ws_url``, ``spot_rest_url``, ``futures_ws_url``,
``futures_rest_url``, ``control_url``, ``spot_symbols``, ``usdm_symbols``) and serves on
loopback until SIGTERM/SIGINT. ``GET <control_url>/state`` gives its counters,
``POST <control_url>/rate?total=R`` changes ``--rate`` (connections open included).

Streams (combined streams only, Binance's key order):

* spot ``<sym>@trade``, ``@aggTrade``, ``@bookTicker``: the lean feed's renderers;
* USD-M ``<sym>@aggTrade`` (``{"e":"aggTrade","E","s","a","p","q","f","l","T","m"}``) and
  ``<sym>@bookTicker`` (``{"e":"bookTicker","u","E","T","s","b","B","a","A"}``);
* ``<sym>@depth@100ms`` on both: spot ``{"e":"depthUpdate","E","s","U","u","b","a"}``,
  USD-M adds ``T`` and ``pu`` (the previous message's ``u``).

URL layout as marketd's settings expect: ``<spot_ws_url>/stream``,
``<futures_ws_url>/public/stream`` (depth, book tickers) and ``<futures_ws_url>/market/stream``
(aggTrade) — a stream asked for on the wrong route is refused, as Binance does; REST under
``<spot_rest_url>/api/v3/`` and ``<futures_rest_url>/fapi/v1/``: ``ping``, ``time``,
``exchangeInfo``, ``depth?symbol=&limit=`` (``{"lastUpdateId","bids","asks"}``, USD-M adds
``E`` and ``T``), spot ``historicalTrades`` (the lean feed's) and ``aggTrades?fromId=`` on
both, each answering with the very trades the stream sent (only the time differs).
SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS, pings and Close: as the lean feed.

**Books** (:class:`Ladder`). Each symbol's book is a fixed ladder of ``--levels`` prices a
side, one step (about 1 bp) apart around a fixed mid: bids below, asks above, so it never
crosses. Update id ``k`` (local to the symbol, from 1) touches a few levels chosen from
``k`` by rules ``level = (a*k + b) % m`` (the top 10, the top 50, the whole ladder), and a
level's quantity is a function of the last id that touched it (now and then zero: the
level is gone until touched again). So the book at any id ``N`` is computable in
O(levels): for each level, the last ``k <= N`` of each rule is ``N - (N - c) % m`` with
``c = a⁻¹ (level - b) mod m``. Diff message ``n`` covers ids ``(n-1)*span+1 .. n*span``
(``span`` 1-4, larger for the busy symbols) and carries every level those ids touched,
at its quantity after the last; ``U``/``u``/``pu`` are those ids plus a per-symbol base.
A REST snapshot stands at the last message the stream has rendered: marketd's books sync
on it, and its audits, which compare a book with a fresh snapshot at the same update id,
find no difference.

**Rates** (:func:`stream_rates`). Relative rates follow a reference full market: ~10 depth
diffs per symbol per second, trades Zipf-skewed over the symbols (a few hot: the first
symbol of n gets 1/H(n) of its market's trades: 16 % of 300, 15 % of 500; 1,200 spot
trades/s and 1,800 USD-M aggTrades/s at the reference), a book ticker rate
``TICKERS_PER_TRADE`` times each symbol's trades: 23,000 msgs/s in all for 300 + 500
symbols, of which 8,000 depth diffs. ``--rate`` R is the total over the core streams
(spot trade, depth, bookTicker; USD-M aggTrade, depth, bookTicker): every stream gets its
reference share of R, depth streams at most ``DEPTH_HZ`` each (above the reference total
the rest goes to trades and tickers). Spot ``aggTrade`` is served at the spot trade rate, outside R.
``--rate 0``: depth streams at ``DEPTH_HZ``, trades and tickers as fast as each client
reads, in their reference proportions. Rates are per stream, whatever a client's split of
the streams over connections (several connections on one stream each see part of its ids,
as with the lean feed).

How it stays cheap: the lean feed's design (a writer thread per connection sending blocks,
frames rendered by one ``%`` per message from per-stream templates and id-indexed tables),
per-symbol tables built from 512 price points rather than 4096 (800 symbols start in about
a second), the ladder's price strings rendered once, lazily. Flat out to a reader that only
counts (:func:`read_market`, :class:`RawReader`: connected as marketd's planner connects)
it delivers some 330,000-390,000 msgs/s of the 300 + 500 symbol market at ~0.9 core.
Limits: one process, its GIL: ~1 core at most.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import math
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, cast

from marketd.data.records import Market

# The lean feed's pieces, reused as they are (several are private there: imported anyway,
# this module is their only other user).
from marketd.testing.leanfeed import (
    _HEADERS,
    BLOCK_S,
    FLAT_OUT_BLOCK,
    GUID,
    MAX_LAG_S,
    PRICE_PERIOD,
    LeanFeed,
    Render,
    Stream,
    SymbolTables,
    _Client,
    _fixed8,
    _header,
    _http_response,
    _renderer,
    _spec,
)
from marketd.testing.processes import Process, http_json

DEPTH_HZ = 10.0  # depth@100ms: at most 10 diffs a second per symbol
TRADES_PER_S = {Market.SPOT: 1200.0, Market.USDM: 1800.0}  # the reference market's
TICKERS_PER_TRADE = 4.0  # book tickers per trade, per symbol
ZIPF_S = 1.0  # trades of the i-th symbol (0-based) ∝ 1 / (i + 1) ** ZIPF_S
DEFAULT_LEVELS = 1000  # ladder levels a side (marketd's default snapshot limit)
MAX_LEVELS = 5000
WALK_POINTS = 512  # distinct prices of a symbol's walk (each held for PRICE_PERIOD / 512 ids)
QTY_PERIOD = 1021  # SymbolTables.qty's period
DEPTH = "depth@100ms"
CHANNELS: dict[Market, tuple[str, ...]] = {
    Market.SPOT: ("trade", "aggTrade", "bookTicker", DEPTH),
    Market.USDM: ("aggTrade", "bookTicker", DEPTH),
}
# The streams ``--rate`` is the total of (spot aggTrade is served beside them).
CORE_CHANNELS: dict[Market, tuple[str, ...]] = {
    Market.SPOT: ("trade", "bookTicker", DEPTH),
    Market.USDM: ("aggTrade", "bookTicker", DEPTH),
}
# The WebSocket routes: (market, route path) → the channels served there.
ROUTES: dict[str, tuple[Market, tuple[str, ...]]] = {
    "/spot/stream": (Market.SPOT, CHANNELS[Market.SPOT]),
    "/usdm/public/stream": (Market.USDM, ("bookTicker", DEPTH)),
    "/usdm/market/stream": (Market.USDM, ("aggTrade",)),
}
BASE_UPDATE_ID = 1_000_000_000  # symbol i's depth ids start above (i + 1) * this
# Ladder rules per side: (a, b, m) — update id k touches level (a*k + b) % m (m capped at
# the ladder's size; a made coprime with m).
BID_RULES = ((1, 0, 10), (3, 1, 50), (7, 3, 0))
ASK_RULES = ((1, 5, 10), (3, 26, 50), (7, 503, 0))
ZERO_EVERY = 29  # a level's quantity is zero for one last-touch id in this many


# -- symbols ------------------------------------------------------------------------------------


_QTY_TABLES: dict[tuple[Market, float], list[str]] = {}


def _qty_table(market: Market, typical: float) -> list[str]:
    """``QTY_PERIOD`` positive quantities around ``typical``, shared by the symbols that
    have the same typical quantity (spot: 8 decimals, USD-M: 3)."""
    key = (market, typical)
    table = _QTY_TABLES.get(key)
    if table is None:
        rng = random.Random(int(typical * 1e5) * 2 + (market is Market.USDM))
        values = [typical * rng.lognormvariate(0, 0.8) for _ in range(QTY_PERIOD)]
        if market is Market.SPOT:
            table = [_fixed8(max(v, 1e-5), 5) for v in values]
        else:
            table = [f"{max(v, 0.001):.3f}" for v in values]
        _QTY_TABLES[key] = table
    return table


def _price_text(market: Market, ticks: int, decimals: int) -> str:
    """``ticks`` of ``10**-decimals`` as the market prints a price (spot: 8 decimals)."""
    whole, frac = divmod(ticks, 10**decimals)
    text = f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)
    return text + "0" * (8 - decimals) if market is Market.SPOT else text


class MarketTables(SymbolTables):
    """:class:`~marketd.testing.leanfeed.SymbolTables` (what its renderers and
    ``historicalTrades`` read: ``symbol``, ``prices``, ``asks``, ``qtys``, ``sides`` and
    ``price``/``qty``/``side`` of an id) for one market, cheaper to build: the walk has
    ``WALK_POINTS`` distinct prices, each string shared by the ids that print it, and the
    quantities are shared by symbols alike. The same id gives the same values every time."""

    def __init__(self, index: int, market: Market) -> None:  # no super(): built otherwise
        self.index = index
        self.market = market
        self.symbol, self.start, self.decimals, self.typical_qty = _spec(index)
        unit = 10**self.decimals  # ticks per 1
        hold = PRICE_PERIOD // WALK_POINTS
        bids, asks = [], []
        for n in range(WALK_POINTS):
            phase = 2 * math.pi * n * hold / PRICE_PERIOD
            walk = 0.003 * math.sin(phase) + 0.001 * math.sin(7 * phase + index)
            ticks = max(1, round(self.start * (1 + walk) * unit))
            bids.append(_price_text(market, ticks, self.decimals))
            asks.append(_price_text(market, ticks + 1, self.decimals))
        self.prices = [bids[i // hold] for i in range(PRICE_PERIOD)]
        self.asks = [asks[i // hold] for i in range(PRICE_PERIOD)]
        self.qtys = _qty_table(market, self.typical_qty)
        rng = random.Random(7919 * (index + 1))
        self.sides = ["true" if rng.random() < 0.5 else "false" for _ in range(13)]


# -- books --------------------------------------------------------------------------------------


def _coprime(a: int, m: int) -> int:
    while math.gcd(a, m) != 1:
        a += 1
    return a


Level = list[str]  # [price, quantity], as Binance's JSON has it


class Ladder:
    """One symbol's deterministic book on one market (see the module doc, "Books").

    Pure: ``diff(n)`` is message ``n``'s ids and levels, ``book(n)`` the book after message
    ``n`` (``n = 0``: before any), and ``book(n)`` equals ``book(k)`` with the diffs
    ``k+1 .. n`` applied, for any ``k < n``.
    """

    def __init__(self, tables: MarketTables, levels: int = DEFAULT_LEVELS) -> None:
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"levels must be 1..{MAX_LEVELS}")
        market, index = tables.market, tables.index
        self.market = market
        self.symbol = tables.symbol
        self.levels = levels
        self.decimals = tables.decimals
        unit = 10**self.decimals
        self.mid = round(tables.start * unit)
        step = max(1, round(tables.start * 1e-4 * unit))  # about 1 bp
        if self.mid - levels * step < 1:
            step = (self.mid - 1) // levels
            if step < 1:
                raise ValueError(f"{self.symbol}: {levels} levels do not fit below its price")
        self.step = step
        self.base = (index + 1) * BASE_UPDATE_ID
        self.span = max(1, 4 - index // 25)  # update ids per message: more on busy symbols
        self.qtys = tables.qtys
        self.zero = "0.00000000" if market is Market.SPOT else "0.000"
        # Per side (0 bids, 1 asks): the rules (a, b, m) and their inverses (a⁻¹ mod m).
        self.rules: list[list[tuple[int, int, int]]] = []
        self.inverse: list[list[tuple[int, int, int]]] = []
        for rules in (BID_RULES, ASK_RULES):
            side = []
            for a, b, m in rules:
                m = min(m or levels, levels)
                a = _coprime(a, m) if m > 1 else 1
                side.append((a, b % m, m))
            self.rules.append(side)
            self.inverse.append([(pow(a, -1, m) if m > 1 else 0, b, m) for a, b, m in side])
        self._prices: list[list[str | None]] = [[None] * levels, [None] * levels]

    # -- values --------------------------------------------------------------------------------

    def price(self, side: int, level: int) -> str:
        """Level ``level``'s price (0 = best) on ``side`` (0 bids, 1 asks)."""
        text = self._prices[side][level]
        if text is None:
            offset = (level + 1) * self.step
            ticks = self.mid - offset if side == 0 else self.mid + offset
            text = self._prices[side][level] = _price_text(self.market, ticks, self.decimals)
        return text

    def qty(self, side: int, level: int, touched: int) -> str:
        """The quantity of a level last touched by local id ``touched`` (0: never)."""
        if touched and (touched + 3 * level + side) % ZERO_EVERY == 0:
            return self.zero
        return self.qtys[(touched * 31 + level * 7 + side * 3) % QTY_PERIOD]

    def last_touch(self, side: int, level: int, upto: int) -> int:
        """The last local id ``<= upto`` that touched ``level`` (0: none)."""
        last = 0
        for inverse, b, m in self.inverse[side]:
            if level >= m or upto < 1:
                continue
            c = inverse * (level - b) % m
            k = upto - (upto - c) % m
            if k >= 1 and k > last:
                last = k
        return last

    def ids(self, message: int) -> tuple[int, int]:
        """Message ``message``'s first and last local update ids."""
        return (message - 1) * self.span + 1, message * self.span

    def update_id(self, messages: int) -> int:
        """The exchange's update id after ``messages`` messages (a snapshot's lastUpdateId)."""
        return self.base + messages * self.span

    # -- diffs and snapshots ---------------------------------------------------------------------

    def touched(self, first: int, last: int) -> tuple[dict[int, int], dict[int, int]]:
        """Per side: level → the last local id in ``first..last`` that touched it."""
        (b0, b1, b2), (a0, a1, a2) = self.rules
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for k in range(first, last + 1):
            bids[(b0[0] * k + b0[1]) % b0[2]] = k
            bids[(b1[0] * k + b1[1]) % b1[2]] = k
            bids[(b2[0] * k + b2[1]) % b2[2]] = k
            asks[(a0[0] * k + a0[1]) % a0[2]] = k
            asks[(a1[0] * k + a1[1]) % a1[2]] = k
            asks[(a2[0] * k + a2[1]) % a2[2]] = k
        return bids, asks

    def diff(self, message: int) -> tuple[int, int, int, list[Level], list[Level]]:
        """Message ``message`` (from 1): ``U``, ``u``, ``pu`` and its bid and ask levels."""
        first, last = self.ids(message)
        bids, asks = self.touched(first, last)
        price, qty = self.price, self.qty
        return (
            self.base + first,
            self.base + last,
            self.base + first - 1,
            [[price(0, j), qty(0, j, t)] for j, t in bids.items()],
            [[price(1, j), qty(1, j, t)] for j, t in asks.items()],
        )

    def book(self, messages: int, limit: int = MAX_LEVELS) -> tuple[list[Level], list[Level]]:
        """The book after ``messages`` messages: up to ``limit`` levels a side, best first
        (levels at a zero quantity are not in it)."""
        upto = messages * self.span
        sides: list[list[Level]] = []
        for side in (0, 1):
            out: list[Level] = []
            for level in range(self.levels):
                q = self.qty(side, level, self.last_touch(side, level, upto))
                if q != self.zero:
                    out.append([self.price(side, level), q])
                    if len(out) >= limit:
                        break
            sides.append(out)
        return sides[0], sides[1]

    def renderer(self) -> Render:
        """``render(out, first_message, count, now_ms)`` for ``<symbol>@depth@100ms``."""
        s, sl, base, span = self.symbol, self.symbol.lower(), self.base, self.span
        if self.market is Market.SPOT:
            tpl = (
                f'{{"stream":"{sl}@{DEPTH}","data":{{"e":"depthUpdate","E":%d,"s":"{s}",'
                '"U":%d,"u":%d,"b":[%s],"a":[%s]}}'
            )
        else:
            tpl = (
                f'{{"stream":"{sl}@{DEPTH}","data":{{"e":"depthUpdate","E":%d,"T":%d,'
                f'"s":"{s}","U":%d,"u":%d,"pu":%d,"b":[%s],"a":[%s]}}}}'
            )
        spot = self.market is Market.SPOT
        touched, price, qty, headers = self.touched, self.price, self.qty, _HEADERS

        def render(out: list[bytes], first: int, count: int, now: int) -> None:
            for m in range(first, first + count):
                lo, hi = (m - 1) * span + 1, m * span
                bt, at = touched(lo, hi)
                b = ",".join([f'["{price(0, j)}","{qty(0, j, t)}"]' for j, t in bt.items()])
                a = ",".join([f'["{price(1, j)}","{qty(1, j, t)}"]' for j, t in at.items()])
                if spot:
                    payload = (tpl % (now, base + lo, base + hi, b, a)).encode()
                else:
                    payload = (tpl % (now, now, base + lo, base + hi, base + lo - 1, b, a)).encode()
                n = len(payload)
                out.append(headers[n] if n < 4096 else _header(n))
                out.append(payload)

        return render


# -- USD-M frames ---------------------------------------------------------------------------------


def _futures_renderer(channel: str, tables: MarketTables) -> Render:
    """USD-M ``aggTrade`` and ``bookTicker`` (prices at the symbol's precision)."""
    s, sl = tables.symbol, tables.symbol.lower()
    price, qty, side = tables.price, tables.qty, tables.side
    prices, asks = tables.prices, tables.asks
    headers = _HEADERS
    if channel == "aggTrade":
        tpl = (
            f'{{"stream":"{sl}@aggTrade","data":{{"e":"aggTrade","E":%d,"s":"{s}","a":%d,'
            '"p":"%s","q":"%s","f":%d,"l":%d,"T":%d,"m":%s}}'
        )

        def render(out: list[bytes], first: int, count: int, now: int) -> None:
            for i in range(first, first + count):
                b = (tpl % (now, i, price(i), qty(i), i, i, now, side(i))).encode()
                out.append(headers[len(b)])
                out.append(b)

        return render
    if channel == "bookTicker":
        tpl = (
            f'{{"stream":"{sl}@bookTicker","data":{{"e":"bookTicker","u":%d,"E":%d,"T":%d,'
            f'"s":"{s}","b":"%s","B":"%s","a":"%s","A":"%s"}}}}'
        )

        def render(out: list[bytes], first: int, count: int, now: int) -> None:
            for i in range(first, first + count):
                p = i % PRICE_PERIOD
                b = (tpl % (i, now, now, prices[p], qty(i), asks[p], qty(i + 17))).encode()
                out.append(headers[len(b)])
                out.append(b)

        return render
    raise ValueError(f"unknown USD-M channel {channel!r}")


# -- rates ----------------------------------------------------------------------------------------

StreamKey = tuple[Market, str, int]  # (market, channel, symbol index)


def reference_rates(spot: int, usdm: int) -> dict[StreamKey, float]:
    """Each stream's msgs/s in the reference market (see the module doc, "Rates")."""
    out: dict[StreamKey, float] = {}
    for market, count in ((Market.SPOT, spot), (Market.USDM, usdm)):
        zipf = [1.0 / (i + 1) ** ZIPF_S for i in range(count)]
        total = sum(zipf)
        for i, z in enumerate(zipf):
            trades = TRADES_PER_S[market] * z / total
            for channel in CHANNELS[market]:
                if channel == DEPTH:
                    out[(market, channel, i)] = DEPTH_HZ
                elif channel == "bookTicker":
                    out[(market, channel, i)] = TICKERS_PER_TRADE * trades
                else:  # the trade channel (and spot aggTrade beside it)
                    out[(market, channel, i)] = trades
    return out


def is_core(key: StreamKey) -> bool:
    return key[1] in CORE_CHANNELS[key[0]]


def stream_rates(spot: int, usdm: int, rate: float) -> dict[StreamKey, tuple[float, float]]:
    """Each stream's (paced msgs/s, flat-out share) for a total ``rate`` over the core
    streams (0: flat out). Paced streams send on a clock; shared ones (flat out: trades and
    tickers) split each block of a connection in proportion to their shares."""
    reference = reference_rates(spot, usdm)
    if rate < 0:
        raise ValueError("rate must be >= 0")
    out: dict[StreamKey, tuple[float, float]] = {}
    if rate == 0:
        for key, r in reference.items():
            out[key] = (DEPTH_HZ, 0.0) if key[1] == DEPTH else (0.0, r)
        return out
    core_total = sum(r for k, r in reference.items() if is_core(k))
    depth_rate = DEPTH_HZ * min(1.0, rate / core_total)
    depth_total = depth_rate * sum(1 for k in reference if k[1] == DEPTH)
    free_total = sum(r for k, r in reference.items() if is_core(k) and k[1] != DEPTH)
    scale = (rate - depth_total) / free_total
    for key, r in reference.items():
        out[key] = (depth_rate, 0.0) if key[1] == DEPTH else (r * scale, 0.0)
    return out


class RatedStream(Stream):
    """A lean-feed stream with its pace: ``rate`` msgs/s on a clock, or ``share`` of each
    flat-out block (one of the two is 0)."""

    def __init__(self, name: str, render: Render, rate: float = 0.0, share: float = 0.0) -> None:
        super().__init__(name, render)
        self.rate = rate
        self.share = share


# -- serving --------------------------------------------------------------------------------------


class _Route:
    """One WebSocket route's streams: what :class:`~marketd.testing.leanfeed._Client` reads
    of its feed (``streams`` by name, a ``pings`` counter)."""

    def __init__(self, name: str, market: Market, streams: dict[str, Stream]) -> None:
        self.name = name
        self.market = market
        self.streams = streams
        self.pings = 0
        self.generation = 0  # bumped when the streams' paces change: writers re-plan


class _MarketClient(_Client):
    """The lean feed's connection (reader, SUBSCRIBE handling, pings, Close) on one route,
    with a writer that paces each stream on its own rate."""

    def __init__(self, route: _Route, conn: socket.socket, names: list[str]) -> None:
        # The route stands in for the feed: _Client reads only its streams and pings.
        super().__init__(cast(LeanFeed, route), conn, names)
        self.route = route

    def write(self) -> None:
        stop = self.stop
        planned: list[Stream] | None = None
        generation = -1
        paced: list[Stream] = []
        rates: list[float] = []
        owed: list[float] = []
        shared: list[Stream] = []
        fractions: list[float] = []
        carry: list[float] = []
        block = 0
        last = time.monotonic()
        try:
            while not stop.is_set():
                streams = self.streams
                if streams is not planned or generation != self.route.generation:
                    # (Re)subscribed or a new rate: a new plan, debts forgotten.
                    planned, generation = streams, self.route.generation
                    rated = cast(list[RatedStream], streams)
                    paced = [s for s in rated if s.rate > 0]
                    rates = [cast(RatedStream, s).rate for s in paced]
                    owed = [0.0] * len(paced)
                    shared = [s for s in rated if s.share > 0]
                    total = sum(cast(RatedStream, s).share for s in shared)
                    fractions = [cast(RatedStream, s).share / total for s in shared]
                    carry = [0.0] * len(shared)
                    block = max(FLAT_OUT_BLOCK, len(shared))
                now = time.monotonic()
                elapsed = min(now - last, MAX_LAG_S)  # a client further behind loses the debt
                last = now
                out: list[bytes] = []
                now_ms = time.time_ns() // 1_000_000
                for i, stream in enumerate(paced):
                    o = owed[i] + rates[i] * elapsed
                    n = int(o)
                    if n:
                        stream.take(out, n, now_ms)
                        o -= n
                    owed[i] = o
                for i, stream in enumerate(shared):
                    o = carry[i] + block * fractions[i]
                    n = int(o)
                    if n:
                        stream.take(out, n, now_ms)
                        o -= n
                    carry[i] = o
                if out:
                    self.send(b"".join(out))
                if not shared:
                    sleep = BLOCK_S - (time.monotonic() - now)
                    if sleep > 0:
                        stop.wait(sleep)
        except OSError:
            pass
        finally:
            stop.set()


class MarketFeed(LeanFeed):
    """The server: the lean feed's (accept loop, a thread per client direction, REST
    dispatch) with spot and USD-M streams, books and their REST answers."""

    def __init__(
        self,
        spot: int,
        usdm: int,
        rate: float,
        levels: int = DEFAULT_LEVELS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if spot < 1 or usdm < 1:
            raise ValueError("spot and usdm symbols must be at least 1 each")
        # The lean feed's server with one symbol (its socket, counters and lock); its
        # tables and streams are replaced below.
        super().__init__(1, 0.0, ("trade",), host, port)
        self.rate = rate
        self.levels = levels
        self.counts = {Market.SPOT: spot, Market.USDM: usdm}
        self.market_tables = {
            m: [MarketTables(i, m) for i in range(n)] for m, n in self.counts.items()
        }
        self.tables_by_symbol = {
            m: {t.symbol: t for t in tables} for m, tables in self.market_tables.items()
        }
        self.ladders = {
            m: {t.symbol: Ladder(t, levels) for t in tables}
            for m, tables in self.market_tables.items()
        }
        paces = stream_rates(spot, usdm, rate)
        self.by_key: dict[StreamKey, RatedStream] = {}
        self.market_streams: dict[Market, dict[str, RatedStream]] = {}
        for market, tables in self.market_tables.items():
            streams: dict[str, RatedStream] = {}
            for t in tables:
                for channel in CHANNELS[market]:
                    if channel == DEPTH:
                        render = self.ladders[market][t.symbol].renderer()
                    elif market is Market.SPOT:
                        render = _renderer(channel, t)
                    else:
                        render = _futures_renderer(channel, t)
                    pace, share = paces[(market, channel, t.index)]
                    name = f"{t.symbol.lower()}@{channel}"
                    streams[name] = RatedStream(name, render, pace, share)
                    self.by_key[(market, channel, t.index)] = streams[name]
            self.market_streams[market] = streams
        # What the lean feed's own handlers read (spot historicalTrades, exchangeInfo).
        spot_tables = self.market_tables[Market.SPOT]
        self.tables = list(spot_tables)
        self.by_symbol = {t.symbol: t for t in spot_tables}
        self.streams = dict(self.market_streams[Market.SPOT])
        self.routes = {
            path: _Route(
                path, market, {n: s for n, s in self.market_streams[market].items()
                               if n.partition("@")[2] in channels}
            )
            for path, (market, channels) in ROUTES.items()
        }  # fmt: skip
        self.snapshots = {m.value: 0 for m in Market}
        self.rest_requests = 0

    def set_rate(self, rate: float) -> None:
        """Change the total rate (0: flat out) of every stream, connections open included."""
        paces = stream_rates(self.counts[Market.SPOT], self.counts[Market.USDM], rate)
        for key, (pace, share) in paces.items():
            stream = self.by_key[key]
            stream.rate, stream.share = pace, share
        self.rate = rate
        for route in self.routes.values():
            route.generation += 1

    # -- URLs and counters -------------------------------------------------------------------

    def urls(self) -> dict[str, Any]:
        base = f"{self.host}:{self.port}"
        return {
            "spot_ws_url": f"ws://{base}/spot",
            "spot_rest_url": f"http://{base}/spot",
            "futures_ws_url": f"ws://{base}/usdm",
            "futures_rest_url": f"http://{base}/usdm",
            "control_url": f"http://{base}/_market",
            "spot_symbols": [t.symbol for t in self.market_tables[Market.SPOT]],
            "usdm_symbols": [t.symbol for t in self.market_tables[Market.USDM]],
        }

    def state(self) -> dict[str, Any]:
        sent: dict[str, int] = {}
        for market, streams in self.market_streams.items():
            for name, stream in streams.items():
                key = f"{market.value}:{name.partition('@')[2]}"
                sent[key] = sent.get(key, 0) + stream.sent
        return {
            "rate": self.rate,
            "levels": self.levels,
            "connections_open": self.connections_open,
            "connections_total": self.connections_total,
            "pings": sum(r.pings for r in self.routes.values()),
            "uptime_s": round(time.monotonic() - self.started, 3),
            "cpu_s": round(time.process_time(), 3),
            "frames_sent": sum(sent.values()),
            "frames_sent_by_stream": sent,
            "snapshots": dict(self.snapshots),
            "rest_requests": self.rest_requests,
        }

    # -- REST ----------------------------------------------------------------------------------

    def _rest(self, method: str, url: urllib.parse.SplitResult) -> tuple[int, Any]:
        self.rest_requests += 1
        path = url.path
        query = dict(urllib.parse.parse_qsl(url.query))
        if method == "POST" and path == "/_market/rate":  # the benchmark's control
            try:
                self.set_rate(float(query["total"]))
            except (KeyError, ValueError) as exc:
                return 400, {"code": -1100, "msg": f"POST /_market/rate?total=R: {exc}"}
            return 200, self.state()
        if method != "GET":
            return 405, {"code": -1000, "msg": "GET only"}
        if path == "/_market/state":
            return 200, self.state()
        if path.startswith("/spot/api/v3/"):
            endpoint, market = path.removeprefix("/spot/api/v3/"), Market.SPOT
            if endpoint not in ("depth", "aggTrades"):
                return super()._rest(method, url)  # ping, time, exchangeInfo, historicalTrades
        elif path.startswith("/usdm/fapi/v1/"):
            endpoint, market = path.removeprefix("/usdm/fapi/v1/"), Market.USDM
        else:
            return 404, {"code": -1000, "msg": f"not served by the market feed: {path}"}
        now = time.time_ns() // 1_000_000
        if endpoint == "ping":
            return 200, {}
        if endpoint == "time":
            return 200, {"serverTime": now}
        if endpoint == "exchangeInfo":
            symbols = [
                {"symbol": t.symbol, "status": "TRADING", "contractType": "PERPETUAL",
                 "quoteAsset": "USDT", "pricePrecision": t.decimals}
                for t in self.market_tables[market]
            ]  # fmt: skip
            return 200, {"timezone": "UTC", "serverTime": now, "symbols": symbols}
        if endpoint == "depth":
            return self.depth(market, query)
        if endpoint == "aggTrades":
            return self.agg_trades(market, query)
        return 404, {"code": -1000, "msg": f"not served by the market feed: {path}"}

    def depth(self, market: Market, query: Mapping[str, str]) -> tuple[int, Any]:
        """``GET depth?symbol=&limit=``: the book at the last message the stream rendered."""
        ladder = self.ladders[market].get(query.get("symbol", ""))
        if ladder is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        most = 5000 if market is Market.SPOT else 1000
        try:
            limit = max(1, min(most, int(query.get("limit", "100"))))
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}
        stream = self.market_streams[market][f"{ladder.symbol.lower()}@{DEPTH}"]
        with stream.lock:
            messages = stream.next_id - 1
        bids, asks = ladder.book(messages, limit)
        self.snapshots[market.value] += 1
        body: dict[str, Any] = {"lastUpdateId": ladder.update_id(messages)}
        if market is Market.USDM:
            now = time.time_ns() // 1_000_000
            body |= {"E": now, "T": now}
        return 200, body | {"bids": bids, "asks": asks}

    def agg_trades(self, market: Market, query: Mapping[str, str]) -> tuple[int, Any]:
        """``GET aggTrades?symbol=&fromId=&limit=``: the aggregates the stream sent (or the
        latest ``limit`` without ``fromId``)."""
        tables = self.tables_by_symbol[market].get(query.get("symbol", ""))
        if tables is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        stream = self.market_streams[market][f"{tables.symbol.lower()}@aggTrade"]
        limit = max(1, min(1000, int(query.get("limit", "500"))))
        last = stream.next_id - 1
        first = int(query["fromId"]) if "fromId" in query else max(1, last - limit + 1)
        now = time.time_ns() // 1_000_000
        rows = []
        for i in range(max(1, first), min(last, first + limit - 1) + 1):
            row: dict[str, Any] = {
                "a": i, "p": tables.price(i), "q": tables.qty(i), "f": i, "l": i, "T": now,
                "m": tables.side(i) == "true",
            }  # fmt: skip
            if market is Market.SPOT:
                row["M"] = True
            rows.append(row)
        return 200, rows

    # -- WebSocket ---------------------------------------------------------------------------

    def _websocket(
        self,
        conn: socket.socket,
        url: urllib.parse.SplitResult,
        headers: dict[str, str],
        rest: bytes,
    ) -> None:
        key = headers.get("sec-websocket-key", "")
        route = self.routes.get(url.path)
        if url.path == "/usdm/stream":  # unrouted: Binance serves /public there
            route = self.routes["/usdm/public/stream"]
        if route is None or not key:
            known = ", ".join(ROUTES)
            conn.sendall(_http_response(404, {"code": -1000, "msg": f"combined streams: {known}"}))
            return
        query = urllib.parse.parse_qs(url.query).get("streams", [""])[0]
        names = [n for n in query.split("/") if n]
        unknown = [n for n in names if n not in route.streams]
        if unknown:
            msg = f"not on {route.name}: {unknown[:5]}"
            conn.sendall(_http_response(400, {"code": -1121, "msg": msg}))
            return
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept.encode() + b"\r\n\r\n"
        )
        client = _MarketClient(route, conn, names)
        with self._lock:
            self.connections_open += 1
            self.connections_total += 1
        writer = threading.Thread(target=client.write, daemon=True)
        writer.start()
        try:
            client.read(rest)
        finally:
            client.stop.set()
            writer.join(timeout=5)
            with self._lock:
                self.connections_open -= 1


# -- a raw reader: what the feed delivers to a client that only counts ---------------------------


class FrameCounter:
    """Counts the WebSocket frames in a byte stream fed piecewise (headers parsed, payloads
    skipped, never copied)."""

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0
        self._buf = b""
        self._skip = 0  # payload bytes still to skip

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        view = memoryview(data)
        pos = 0
        end = len(data)
        if self._skip:
            if self._skip >= end:
                self._skip -= end
                return
            pos, self._skip = self._skip, 0
        if self._buf:  # a header split over two reads
            data = self._buf + bytes(view[pos:])
            view, pos, end, self._buf = memoryview(data), 0, len(data), b""
        frames = 0
        while pos + 2 <= end:
            n = view[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if pos + 4 > end:
                    break
                n = (view[pos + 2] << 8) | view[pos + 3]
                head = 4
            elif n == 127:
                if pos + 10 > end:
                    break
                n = int.from_bytes(view[pos + 2 : pos + 10], "big")
                head = 10
            frames += 1
            pos += head + n
        self.frames += frames
        if pos > end:
            self._skip = pos - end
        elif pos < end:
            self._buf = bytes(view[pos:end])


def _client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One masked client frame."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", n)
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
    return head + mask + masked


class RawReader:
    """One WebSocket connection to ``url`` (``ws://host:port/path``) that SUBSCRIBEs
    ``streams`` and counts what arrives, in a thread, until :meth:`close`."""

    def __init__(self, url: str, streams: Sequence[str], chunk: int = 200) -> None:
        parts = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError(f"{url}: closed during the handshake")
            head += data
        status, _, rest = head.partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"{url}: {status.decode(errors='replace')} {rest[:200]!r}")
        for i in range(0, len(streams), chunk):
            request = {"method": "SUBSCRIBE", "params": list(streams[i : i + chunk]), "id": i + 1}
            self.sock.sendall(_client_frame(json.dumps(request).encode()))
        self.counter = FrameCounter()
        self.counter.feed(rest)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        recv, feed = self.sock.recv, self.counter.feed
        with contextlib.suppress(OSError):
            while not self._stop.is_set():
                data = recv(1 << 18)
                if not data:
                    return
                feed(data)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)


def read_market(
    urls: Mapping[str, Any],
    subscriptions: Sequence[tuple[str, Sequence[str], Sequence[str]]],
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """Connect as marketd would (its own connection planner: ``max_streams_per_connection``
    streams per connection, USD-M split by route), SUBSCRIBE, read and count for ``warmup``
    then ``duration`` seconds. ``subscriptions``: (market, symbols, channels). Returns the
    frames and bytes per second over ``duration`` and this process's CPU use."""
    from marketd.config.settings import ExchangeSettings, Subscription
    from marketd.feed.streams import plan_connections

    exchange = ExchangeSettings(
        spot_ws_url=urls["spot_ws_url"], spot_rest_url=urls["spot_rest_url"],
        futures_ws_url=urls["futures_ws_url"], futures_rest_url=urls["futures_rest_url"],
    )  # fmt: skip
    subs = [Subscription(market=Market(m), symbols=tuple(s), channels=tuple(c))
            for m, s, c in subscriptions]  # fmt: skip
    plans = plan_connections(subs, exchange)
    readers = [RawReader(p.stream_path_url, p.streams) for p in plans]
    try:
        time.sleep(warmup)
        f0 = [r.counter.frames for r in readers]
        b0 = sum(r.counter.bytes for r in readers)
        c0, t0 = time.process_time(), time.monotonic()
        time.sleep(duration)
        f1 = [r.counter.frames for r in readers]
        b1 = sum(r.counter.bytes for r in readers)
        c1, t1 = time.process_time(), time.monotonic()
    finally:
        for r in readers:
            r.close()
    wall = t1 - t0
    return {
        "connections": {p.connection_id: len(p.streams) for p in plans},
        "frames_per_s": round((sum(f1) - sum(f0)) / wall),
        "frames_per_s_by_connection": {
            p.connection_id: round((b - a) / wall) for p, a, b in zip(plans, f0, f1, strict=True)
        },
        "mib_per_s": round((b1 - b0) / wall / 2**20, 1),
        "reader_cpu_cores": round((c1 - c0) / wall, 2),
        "duration_s": round(wall, 2),
    }


# -- the process --------------------------------------------------------------------------------


class MarketFeedProcess(Process):
    """``python -m marketd.testing.marketfeed ARGS`` on a free port; ``urls`` from its
    first stdout line (as :class:`~marketd.testing.leanfeed.LeanFeedProcess`)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "marketd.testing.marketfeed", *args], tmp / "market-feed.log"
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise AssertionError("market feed did not start:\n" + self.log_tail())
        self.urls: dict[str, Any] = json.loads(line)

    def state(self) -> Any:
        status, payload = http_json(f"{self.urls['control_url']}/state")
        assert status == 200, (status, payload)
        return payload

    def set_rate(self, rate: float) -> Any:
        """The total rate from now on (0: flat out); the feed's state."""
        url = f"{self.urls['control_url']}/rate?total={rate:g}"
        request = urllib.request.Request(url, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def __enter__(self) -> MarketFeedProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.signal(signal.SIGTERM)
        with contextlib.suppress(Exception):
            self.wait(10)
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--spot", type=int, default=300, help="spot symbols")
    parser.add_argument("--usdm", type=int, default=500, help="USD-M symbols")
    parser.add_argument(
        "--rate", type=float, default=0.0,
        help="total msgs/s over the core streams (spot trade, depth@100ms, bookTicker; USD-M "
        "aggTrade, depth@100ms, bookTicker); 0 = depth at 10/s, the rest flat out",
    )  # fmt: skip
    parser.add_argument(
        "--levels", type=int, default=DEFAULT_LEVELS, help=f"book levels a side (<= {MAX_LEVELS})"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    feed = MarketFeed(args.spot, args.usdm, args.rate, args.levels, args.host, args.port)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps(feed.urls()), flush=True)
    try:
        feed.serve_forever()
    finally:
        feed.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
