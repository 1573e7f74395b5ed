"""The fake exchange's seeded synthetic market: pure Python, no trio, no wall clock.

Each symbol owns a ``random.Random`` seeded from ``(seed, market, symbol)`` and nothing
else, so the contents of its events (ids, prices, quantities, sides) depend only on how
many steps it has taken: not on subscribers, timing or the other symbols. Times are passed
in by the caller. A step is one *event*: an aggregate trade (1 to 3 raw trades) that also
changes the book, or a depth diff of 1 to 3 level changes. Every book change carries update
ids: spot diffs are contiguous (``U == previous u + 1``); futures ids skip a little as on
Binance, where ids are shared across symbols, and ``pu`` is the previous ``u``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator

import attrs

from marketd.data.records import Market
from marketd.fakex.book import OrderBook, Side
from marketd.fakex.events import DepthEvent, TradeEvent
from marketd.fakex.history import TradeHistory
from marketd.fakex.journal import BookJournal

# (symbol, start price as printed, quantity decimals): the first symbols look real.
_REAL_SYMBOLS: tuple[tuple[str, str, int], ...] = (
    ("BTCUSDT", "27123.45", 3),
    ("ETHUSDT", "1650.12", 3),
    ("BNBUSDT", "215.30", 2),
    ("SOLUSDT", "21.450", 1),
    ("XRPUSDT", "0.5123", 1),
    ("DOGEUSDT", "0.06123", 0),
    ("ADAUSDT", "0.2512", 1),
    ("TRXUSDT", "0.08712", 0),
    ("LTCUSDT", "64.21", 3),
    ("DOTUSDT", "4.123", 1),
    ("AVAXUSDT", "9.876", 1),
    ("LINKUSDT", "6.543", 2),
    ("MATICUSDT", "0.5432", 0),
    ("BCHUSDT", "210.50", 3),
    ("ATOMUSDT", "7.123", 2),
    ("UNIUSDT", "4.321", 1),
)

TRADE_PROBABILITY = 0.4
MIN_LEVELS = 5
# How far behind the mark price the index lags (the time constant of its catch-up).
INDEX_LAG_MS = 10_000


@attrs.frozen
class SymbolSpec:
    """A symbol's static description: prices are ``ticks * 10**-price_decimals``."""

    symbol: str
    price_decimals: int
    qty_decimals: int
    start_price: int  # ticks

    @property
    def stream_symbol(self) -> str:
        return self.symbol.lower()


def symbol_specs(count: int, seed: int) -> list[SymbolSpec]:
    """The first ``count`` symbols: the real-looking ones, then ``SYM0042USDT`` style."""
    specs: list[SymbolSpec] = []
    for i in range(count):
        if i < len(_REAL_SYMBOLS):
            name, price, qd = _REAL_SYMBOLS[i]
            pd = len(price.partition(".")[2])
            specs.append(SymbolSpec(name, pd, qd, int(price.replace(".", ""))))
        else:
            rng = random.Random(f"{seed}:spec:{i}")
            magnitude = rng.randint(-2, 3)  # price around 10**magnitude
            pd = max(1, 4 - magnitude)
            start = rng.randint(10 ** (magnitude + pd), 9 * 10 ** (magnitude + pd))
            specs.append(SymbolSpec(f"SYM{i:04d}USDT", pd, rng.randint(0, 3), start))
    return specs


@attrs.define
class TickerStats:
    """Running statistics since the fake started (its stand-in for the 24 h window)."""

    open: int
    high: int
    low: int
    last: int
    last_qty: int = 0
    volume: int = 0  # lots
    quote_volume: int = 0  # ticks * lots
    count: int = 0
    first_id: int = -1
    last_id: int = -1
    changed: bool = False


class SymbolModel:
    """One symbol of one market: its book, trades, history and statistics."""

    def __init__(
        self,
        spec: SymbolSpec,
        market: Market,
        seed: int,
        *,
        book_levels: int = 100,
        history: int = 100_000,
        journal: int = 0,
    ) -> None:
        self.spec = spec
        self.market = market
        self._index: int | None = None  # the index price (ticks) and when it was last moved
        self._index_ms = 0
        self.rng = rng = random.Random(f"{seed}:{market.value}:{spec.symbol}")
        self.futures = market is Market.USDM
        self.book_levels = book_levels
        self.max_lot = max(10, 10 ** (spec.qty_decimals + 1))
        self._rand = rng.random
        self._min_levels = max(MIN_LEVELS, book_levels - 10)
        self._max_levels = book_levels + 10
        self.book = OrderBook(rng.randrange(10**9, 10**10))
        first_trade = rng.randrange(10**8, 10**9)
        self.history = TradeHistory(first_trade, rng.randrange(10**7, 10**8), history)
        self.stats = TickerStats(
            spec.start_price, spec.start_price, spec.start_price, spec.start_price
        )
        self.stats.first_id = first_trade
        self._fill(spec.start_price)
        # The last ``journal`` diffs, so tests can read the true book at an update id.
        self.journal = BookJournal(self.book, journal) if journal > 0 else None

    # -- construction -------------------------------------------------------------------

    def _fill(self, bid: int) -> None:
        """Build an initial book with the best bid at ``bid`` and a one-tick spread."""
        rng = self.rng
        p = bid
        for _ in range(self.book_levels):
            if p < 1:
                break
            self.book.bids.set(p, rng.randint(1, self.max_lot))
            p -= rng.randint(1, 3)
        p = bid + 1
        for _ in range(self.book_levels):
            self.book.asks.set(p, rng.randint(1, self.max_lot))
            p += rng.randint(1, 3)

    # -- stepping -----------------------------------------------------------------------

    def _int(self, lo: int, hi: int) -> int:
        """A uniform integer in ``[lo, hi]`` (cheaper than ``randint``; still seeded)."""
        return lo + int(self._rand() * (hi - lo + 1))

    def step(self, now_ms: int) -> tuple[TradeEvent | None, DepthEvent]:
        """Advance one event: maybe a trade, always the depth diff that goes with it."""
        if self.rng.random() < TRADE_PROBABILITY:
            return self._trade(now_ms)
        return None, self._diff(now_ms)

    def _trade(self, now_ms: int) -> tuple[TradeEvent, DepthEvent]:
        rng = self.rng
        before = self.top()
        buyer_maker = rng.random() < 0.5  # the taker sold: it hits the best bid
        side = self.book.bids if buyer_maker else self.book.asks
        price = side.best()
        level = side.qty[price]
        total = level if rng.random() < 0.25 else self._int(1, level)
        return self._record_trade(side, price, total, now_ms, buyer_maker, before)

    def _record_trade(
        self,
        side: Side,
        price: int,
        total: int,
        now_ms: int,
        buyer_maker: bool,
        before: tuple[int, int, int, int],
    ) -> tuple[TradeEvent, DepthEvent]:
        r = self._rand()
        n = min(total, 1 if r < 0.6 else 2 if r < 0.8 else 3)
        qtys: list[int] = []
        remaining = total
        for k in range(n - 1, 0, -1):  # each part >= 1 and room left for the k others
            take = self._int(1, remaining - k)
            qtys.append(take)
            remaining -= take
        qtys.append(remaining)
        agg_id, first_id = self.history.add(price, qtys, now_ms, buyer_maker)
        st = self.stats
        st.last, st.last_qty = price, total
        st.high, st.low = max(st.high, price), min(st.low, price)
        st.volume += total
        st.quote_volume += price * total
        st.count += len(qtys)
        st.last_id = first_id + len(qtys) - 1
        st.changed = True
        trade = TradeEvent(agg_id, first_id, price, qtys, now_ms, buyer_maker)
        changes: dict[int, int] = {price: side.qty[price] - total}
        side.set(price, side.qty[price] - total)
        no_changes: dict[int, int] = {}
        if side.is_bid:
            return trade, self._emit(changes, no_changes, now_ms, before)
        return trade, self._emit(no_changes, changes, now_ms, before)

    def _diff(self, now_ms: int) -> DepthEvent:
        before = self.top()
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        book = self.book
        rand, rint = self._rand, self._int
        for _ in range(rint(1, 3)):
            is_bid = rand() < 0.5
            side, other = (book.bids, book.asks) if is_bid else (book.asks, book.bids)
            changes = bids if is_bid else asks
            r = rand()
            n = len(side.prices)
            if n <= MIN_LEVELS or (r >= 0.4 and r < 0.75):
                # A new level: improving the best while the spread is wide, else behind it.
                price, qty = self._free_price(side, other), rint(1, self.max_lot)
            elif r < 0.4:
                price, qty = side.nth_from_best(rint(0, min(10, n) - 1)), rint(1, self.max_lot)
            else:
                # Cancel a level behind the best (only trades take the best away).
                price, qty = side.nth_from_best(rint(1, min(10, n) - 1)), 0
            changes[price] = qty
            side.set(price, qty)
        return self._emit(bids, asks, now_ms, before)

    def _free_price(self, side: Side, other: Side) -> int:
        """A price with no level yet: inside the spread if there is room, else behind the best."""
        best, opposite = side.best(), other.best()
        spread = abs(opposite - best)
        if spread > 1:
            step = self._int(1, min(3, spread - 1))
            return best + step if side.is_bid else best - step
        for _ in range(8):
            step = self._int(1, 20)
            price = best - step if side.is_bid else best + step
            if price >= 1 and price not in side.qty:
                return price
        return side.worst() - 1 if side.is_bid and side.worst() > 1 else side.worst() + 1

    @staticmethod
    def _apply(side: Side, changes: dict[int, int]) -> None:
        for price, qty in changes.items():
            side.set(price, qty)

    def top(self) -> tuple[int, int, int, int]:
        """Best bid price and quantity, best ask price and quantity."""
        bids, asks = self.book.bids, self.book.asks
        bb, ba = bids.best(), asks.best()
        return bb, bids.qty[bb], ba, asks.qty[ba]

    def _emit(
        self,
        bids: dict[int, int],
        asks: dict[int, int],
        now_ms: int,
        before: tuple[int, int, int, int],
    ) -> DepthEvent:
        """Refill the tails after the (already applied) changes and number the diff."""
        book = self.book
        self._refill(book.bids, bids)
        self._refill(book.asks, asks)
        count = len(bids) + len(asks)
        prev = book.last_update_id
        first = prev + 1 + (self._int(0, 3) if self.futures else 0)
        last = first + count - 1
        book.last_update_id = last
        best_changed = self.top() != before
        event = DepthEvent(
            first, last, prev, sorted(bids.items()), sorted(asks.items()), now_ms, best_changed
        )
        if self.journal is not None:
            self.journal.record(event)
        return event

    def _refill(self, side: Side, changes: dict[int, int]) -> None:
        """Keep each side between ``MIN_LEVELS`` and ``book_levels + 10`` levels."""
        prices = side.prices
        while len(prices) < self._min_levels:
            worst = side.worst()
            price = worst - self._int(1, 3) if side.is_bid else worst + self._int(1, 3)
            if price < 1:
                break
            qty = self._int(1, self.max_lot)
            side.set(price, qty)
            changes[price] = qty
        while len(prices) > self._max_levels:
            worst = side.worst()
            side.set(worst, 0)
            changes[worst] = 0

    # -- outside events -----------------------------------------------------------------

    def jump(self, percent: float, now_ms: int) -> tuple[DepthEvent, TradeEvent, DepthEvent]:
        """Shift the whole book by ``percent`` and trade at the new best price."""
        book = self.book
        before = self.top()
        delta = round(self.stats.last * percent / 100.0)
        delta = max(delta, 1 - book.bids.worst())  # every price stays >= 1 tick
        old_b, old_a = dict(book.bids.qty), dict(book.asks.qty)
        bids = dict.fromkeys(old_b, 0)
        asks = dict.fromkeys(old_a, 0)
        for p, q in old_b.items():
            book.bids.set(p, 0)
            bids[p + delta] = q
        for p, q in old_a.items():
            book.asks.set(p, 0)
            asks[p + delta] = q
        self._apply(book.bids, bids)
        self._apply(book.asks, asks)
        shift = self._emit(bids, asks, now_ms, before)
        buyer_maker = delta < 0
        side = book.bids if buyer_maker else book.asks
        price = side.best()
        total = max(1, side.qty[price] // 2)
        trade, diff = self._record_trade(side, price, total, now_ms, buyer_maker, self.top())
        return shift, trade, diff

    def mark_price(self) -> int:
        bid, ask = self.book.bids.best(), self.book.asks.best()
        return (bid + ask) // 2

    def index_price(self, now_ms: int) -> int:
        """The index (a basket of spot prices on Binance) follows the mark price with a lag
        of ``INDEX_LAG_MS`` (an exponential catch-up in time, however often it is asked),
        so a jump opens a premium that fades: what premium and funding rules watch."""
        mark = self.mark_price()
        if self._index is None:
            self._index, self._index_ms = mark, now_ms
            return mark
        dt = max(0, now_ms - self._index_ms)
        self._index_ms = max(self._index_ms, now_ms)
        self._index += round((mark - self._index) * (1 - math.exp(-dt / INDEX_LAG_MS)))
        return self._index

    def funding_rate(self, index: int) -> float:
        """0.01 % plus a third of the premium, within Binance's usual cap of ±0.75 %."""
        premium = (self.mark_price() - index) / index if index else 0.0
        return max(-0.0075, min(0.0075, 0.0001 + premium / 3))


class MarketModel:
    """All symbols of one market plus the seeded scheduler that picks who moves next."""

    def __init__(
        self,
        market: Market,
        specs: list[SymbolSpec],
        seed: int,
        *,
        book_levels: int = 100,
        history: int = 100_000,
        journal: int = 0,
    ) -> None:
        self.market = market
        self.seed = seed
        self.symbols = [
            SymbolModel(s, market, seed, book_levels=book_levels, history=history, journal=journal)
            for s in specs
        ]
        self.by_name = {m.spec.symbol: m for m in self.symbols}
        self._sched = random.Random(f"{seed}:{market.value}:schedule")
        # Busier symbols first: weight 1/sqrt(rank).
        self._cum_weights = list(
            itertools.accumulate(1.0 / (i + 1) ** 0.5 for i in range(len(specs)))
        )
        self._indices = range(len(specs))

    def schedule(self, n: int) -> list[int]:
        """The indices of the next ``n`` symbols to step."""
        return self._sched.choices(self._indices, cum_weights=self._cum_weights, k=n)

    def take_changed(self) -> Iterator[int]:
        """Indices of symbols that traded since the last call (clears the marks)."""
        for i, m in enumerate(self.symbols):
            if m.stats.changed:
                m.stats.changed = False
                yield i
