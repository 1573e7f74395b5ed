"""The rule kinds beyond the price jump: volume spikes, liquidation clusters, premium and
funding thresholds (pure state machines: no I/O, no trio, no clock).

One state object serves one rule on one instrument. The detector owns everything around
it (duplicates, out-of-order ticks, filters, alert ids, the alerts themselves) and feeds a
state only ticks whose event time never decreases; several ticks may share a millisecond
and are taken in arrival order. Times are exchange event times in integer milliseconds.
The window at a tick of time ``t`` holds the ticks with time ``>= t - window`` (the
boundary is inside), and after a signal at ``t_a`` a state is quiet while
``t < t_a + cooldown``, exactly as for the price rule. Prices and quantities are the
exchange's decimal strings as :class:`~decimal.Decimal`; sums and comparisons are exact
(an 80-digit context, never float). Each tick costs O(1) amortised: it is appended to a
window once and evicted once, and sums are kept running, never recomputed.

Volume spike (:class:`VolumeState`, one call per trade with its quote notional)
    The *window* holds the trades of the last ``window_ms``; the *baseline* the trades of
    the ``baseline_ms`` before it (``t - window - baseline <= time < t - window``). A
    trade signals when the window trades at a higher rate than the baseline did::

        window_notional * baseline_ms > multiple * baseline_notional * window_ms

    (strict: exactly ``multiple`` times the rate does not signal), the window notional is
    at least ``min_notional``, the baseline notional is not zero (an instrument that did
    not trade before has no rate to compare with) and the state is not quiet. Warm-up: no
    signal until the state has seen the whole baseline, i.e. until the first trade it ever
    saw is at or before ``t - window - baseline``.

    Reset: a signal spends the trades of its window. Afterwards the window counts only
    trades that arrived after the signalling trade (a later trade of the same millisecond
    counts), so one burst signals once, not once per cooldown while it stays in the
    window; a burst that goes on signals again on its own volume (once quiet). The
    baseline still counts every trade by its time: a burst moves into the baseline as
    time passes and raises the bar for the next one.

    Direction: up when the signalling trade's price is at or above the oldest counted
    trade's price (the base), else down. ``ratio`` is the window's rate over the
    baseline's, ``(window_notional * baseline_ms) / (baseline_notional * window_ms)``
    (80 significant digits; for display).

Liquidation cluster (:class:`LiquidationState`, one call per liquidation order)
    Each side has its own window of ``window_ms``. SELL orders close longs (direction
    down), BUY orders close shorts (direction up). A liquidation signals for its own side
    when that side's window notional (this order included) is strictly above
    ``min_notional`` and that side is not quiet. A signal empties the side's window (the
    next liquidation of that side starts a new cluster) and starts that side's cooldown;
    the other side is not affected. Binance pushes at most one liquidation per symbol per
    second (the latest, a snapshot), so the notional and count of a cluster are lower
    bounds of what was really liquidated.

Premium and funding (:class:`ThresholdState`, one call per value)
    The value is the premium of the mark price over the index in percent
    (:func:`premium_pct`) or the funding rate in percent (:func:`funding_pct`). A state
    is armed at first. A value strictly beyond the threshold (``|value| > threshold_pct``)
    signals when the state is armed and not quiet, and disarms it; a value within the
    threshold (``|value| <= threshold_pct``) re-arms it. So a value that stays outside
    signals once, and one that crosses while quiet and stays outside signals at its first
    tick after the cooldown. A swing from beyond one side to beyond the other without a
    tick in between does *not* re-arm: the values arrive every second or so, and a tick
    inside is what tells a new excursion from a noisy one; the second side gets its
    signal after the value has come back within the threshold once.

Price paths (:func:`downsample`)
    A volume or liquidation signal carries the prices of its window, oldest first,
    reduced to at most :data:`~marketd.alerts.model.PATH_POINTS` points that keep its
    shape (the first and last point, and the lowest and highest price of each bucket).

Parameters come with each call, so a rule's new parameters apply from the next tick: a
shorter window or baseline evicts at that tick, a longer one fills up as time passes (the
trades older than the old ``window + baseline`` were not kept).
"""

from __future__ import annotations

import collections
import decimal
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeAlias

import attrs

from marketd.alerts.model import PATH_POINTS, Direction

_CTX = decimal.Context(prec=80, Emax=999_999, Emin=-999_999)
_add = _CTX.add
_sub = _CTX.subtract
_mul = _CTX.multiply
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)

PricePath: TypeAlias = tuple[tuple[int, str], ...]
"""(event time ms, price text) pairs, oldest first."""


def downsample(points: Sequence[tuple[int, str]], limit: int = PATH_POINTS) -> PricePath:
    """A price path (time_ms, price text), oldest first, reduced to at most ``limit`` points
    keeping its shape: always the first and last point, and per bucket the lowest and
    highest price (in time order). Input of <= limit points is returned unchanged (as a
    tuple). Pure, O(n).

    The points between the first and the last are cut into ``(limit - 2) // 2`` buckets of
    nearly equal size (so an odd ``limit`` leaves one place unused); a bucket whose prices
    are all equal gives one point. Ties keep the earliest point.
    """
    if limit < 2:
        raise ValueError(f"a price path needs room for its first and last point, not {limit}")
    n = len(points)
    if n <= limit:
        return tuple(points)
    buckets = (limit - 2) // 2
    inner = n - 2
    out = [points[0]]
    start = 1
    for k in range(1, buckets + 1):
        end = 1 + k * inner // buckets  # inner > 2 * buckets: never empty
        lo = hi = start
        lo_price = hi_price = Decimal(points[start][1])
        for i in range(start + 1, end):
            price = Decimal(points[i][1])
            if price < lo_price:
                lo, lo_price = i, price
            elif price > hi_price:
                hi, hi_price = i, price
        if lo == hi:
            out.append(points[lo])
        else:
            out.append(points[min(lo, hi)])
            out.append(points[max(lo, hi)])
        start = end
    out.append(points[-1])
    return tuple(out)


def premium_pct(mark: Decimal, index: Decimal) -> Decimal | None:
    """The premium of ``mark`` over ``index`` in percent, ``(mark - index) / index * 100``;
    None without a positive index. Exact unless the quotient does not terminate (then 80
    significant digits, far beyond any exchange's precision)."""
    if index <= _ZERO:
        return None
    return _CTX.divide(_mul(_sub(mark, index), _HUNDRED), index)


def funding_pct(rate: Decimal) -> Decimal:
    """A funding rate (a fraction per period) in percent, exactly."""
    return _mul(rate, _HUNDRED)


# --- parameters --------------------------------------------------------------------------


class VolumeParams:
    """A volume-spike rule's parameters (see the module doc)."""

    __slots__ = (
        "baseline_ms",
        "cooldown_ms",
        "min_notional",
        "multiple",
        "scaled_multiple",
        "window_ms",
    )

    def __init__(
        self,
        window_ms: int,
        baseline_ms: int,
        multiple: Decimal,
        min_notional: Decimal,
        cooldown_ms: int,
    ) -> None:
        if window_ms <= 0 or baseline_ms <= 0:
            raise ValueError(f"window and baseline must be positive: {window_ms}, {baseline_ms}")
        if not multiple.is_finite() or multiple < _ZERO:
            raise ValueError(f"multiple must be a finite number >= 0, not {multiple}")
        if not min_notional.is_finite() or min_notional < _ZERO:
            raise ValueError(f"min_notional must be a finite number >= 0, not {min_notional}")
        if cooldown_ms < 0:
            raise ValueError(f"cooldown must be >= 0, not {cooldown_ms}")
        self.window_ms = window_ms
        self.baseline_ms = baseline_ms
        self.multiple = multiple
        self.min_notional = min_notional
        self.cooldown_ms = cooldown_ms
        # The right side's constant factor, so a tick pays one multiplication for it.
        self.scaled_multiple = _mul(multiple, window_ms)


class LiquidationParams:
    """A liquidation-cluster rule's parameters (see the module doc)."""

    __slots__ = ("cooldown_ms", "min_notional", "window_ms")

    def __init__(self, window_ms: int, min_notional: Decimal, cooldown_ms: int) -> None:
        if window_ms < 0 or cooldown_ms < 0:
            raise ValueError(f"window and cooldown must be >= 0: {window_ms}, {cooldown_ms}")
        if not min_notional.is_finite() or min_notional < _ZERO:
            raise ValueError(f"min_notional must be a finite number >= 0, not {min_notional}")
        self.window_ms = window_ms
        self.min_notional = min_notional
        self.cooldown_ms = cooldown_ms


class ThresholdParams:
    """A premium or funding rule's parameters (see the module doc)."""

    __slots__ = ("cooldown_ms", "low_pct", "threshold_pct")

    def __init__(self, threshold_pct: Decimal, cooldown_ms: int) -> None:
        if not threshold_pct.is_finite() or threshold_pct < _ZERO:
            raise ValueError(f"threshold_pct must be a finite number >= 0, not {threshold_pct}")
        if cooldown_ms < 0:
            raise ValueError(f"cooldown must be >= 0, not {cooldown_ms}")
        self.threshold_pct = threshold_pct
        self.cooldown_ms = cooldown_ms
        self.low_pct = -threshold_pct  # so that a tick negates nothing


# --- signals ---------------------------------------------------------------------------


@attrs.frozen
class VolumeSignal:
    """A volume spike: the signalling trade, the oldest trade counted in the window (the
    base), the two sums, and the window's trades (count and downsampled path)."""

    direction: Direction
    base_time_ms: int
    base_price: str
    time_ms: int
    price: str
    window_notional: Decimal
    baseline_notional: Decimal
    trades: int
    ratio: Decimal
    path: PricePath


@attrs.frozen
class LiquidationSignal:
    """A liquidation cluster of one side: its first and last order, the side's window
    notional and order count (lower bounds, see the module doc), and its path."""

    direction: Direction
    side: str
    first_time_ms: int
    first_price: str
    time_ms: int
    price: str
    notional: Decimal
    count: int
    path: PricePath


@attrs.frozen
class ThresholdSignal:
    """A premium or funding value beyond the threshold (percent, exact)."""

    direction: Direction
    time_ms: int
    value: Decimal


# --- states ----------------------------------------------------------------------------

# (sequence number, event time ms, price, price text, quote notional)
_Trade: TypeAlias = tuple[int, int, Decimal, str, Decimal]


class VolumeState:
    """A volume-spike rule on one instrument; see the module doc."""

    __slots__ = (
        "_baseline",
        "_baseline_sum",
        "_first_ms",
        "_last_signal_ms",
        "_reset_seq",
        "_seq",
        "_spent",
        "_window",
        "_window_sum",
    )

    def __init__(self) -> None:
        # The kept trades form three runs in arrival order, each a deque so that every
        # move is at an end: baseline (time before the window), spent (window time, but
        # at or before the last signal: baseline-to-be, never counted in the window) and
        # window (counted). Sequence numbers mark the reset point, which only matters
        # when a longer window pulls trades back out of the baseline.
        self._baseline: collections.deque[_Trade] = collections.deque()
        self._spent: collections.deque[_Trade] = collections.deque()
        self._window: collections.deque[_Trade] = collections.deque()
        self._baseline_sum = _ZERO
        self._window_sum = _ZERO
        self._seq = 0
        self._reset_seq = 0
        self._first_ms: int | None = None  # all that warm-up needs
        self._last_signal_ms: int | None = None

    def observe(
        self, p: VolumeParams, time_ms: int, price: Decimal, price_text: str, notional: Decimal
    ) -> VolumeSignal | None:
        """Feed one trade of quote notional ``notional`` (price * quantity); return the
        signal it raises, if any."""
        horizon = self._slide(p, time_ms, price, price_text, notional)
        first = self._first_ms
        if first is None:
            self._first_ms = first = time_ms
        if first > horizon:
            return None  # warming up
        last = self._last_signal_ms
        if last is not None and time_ms < last + p.cooldown_ms:
            return None
        wsum, bsum = self._window_sum, self._baseline_sum
        if bsum <= _ZERO or wsum < p.min_notional:
            return None
        if _mul(wsum, p.baseline_ms) <= _mul(p.scaled_multiple, bsum):
            return None
        window = self._window
        base = window[0]
        signal = VolumeSignal(
            direction=Direction.UP if price >= base[2] else Direction.DOWN,
            base_time_ms=base[1],
            base_price=base[3],
            time_ms=time_ms,
            price=price_text,
            window_notional=wsum,
            baseline_notional=bsum,
            trades=len(window),
            ratio=_CTX.divide(_mul(wsum, p.baseline_ms), _mul(bsum, p.window_ms)),
            # Each trade is in at most one signal's window (the reset), so the path costs
            # O(1) amortised per trade.
            path=downsample([(t[1], t[3]) for t in window]),
        )
        self._signalled(time_ms)
        return signal

    def replay(
        self,
        p: VolumeParams,
        time_ms: int,
        price: Decimal,
        price_text: str,
        notional: Decimal,
        fired: bool,
    ) -> None:
        """Rebuild state from a trade seen before a restart, without evaluating it;
        ``fired``: it raised this rule's signal last time (the window resets on it)."""
        self._slide(p, time_ms, price, price_text, notional)
        if self._first_ms is None:
            self._first_ms = time_ms
        if fired:
            self._signalled(time_ms)

    def restore(self, time_ms: int) -> None:
        """The rule's last signal was at ``time_ms`` (its cooldown runs from there)."""
        if self._last_signal_ms is None or time_ms > self._last_signal_ms:
            self._last_signal_ms = time_ms

    def _signalled(self, time_ms: int) -> None:
        """The window's trades are spent: the next signal needs new ones."""
        self._spent.extend(self._window)
        self._window.clear()
        self._window_sum = _ZERO
        self._reset_seq = self._seq
        self._last_signal_ms = time_ms

    def _slide(
        self, p: VolumeParams, time_ms: int, price: Decimal, price_text: str, notional: Decimal
    ) -> int:
        """Take in one trade and move the runs' edges to its time; return the baseline's
        far edge."""
        self._seq += 1
        window = self._window
        spent = self._spent
        baseline = self._baseline
        window.append((self._seq, time_ms, price, price_text, notional))
        wsum = _add(self._window_sum, notional)
        bsum = self._baseline_sum
        edge = time_ms - p.window_ms
        # Only after the window grew (new parameters) can the baseline's newest trades be
        # inside the window again.
        while baseline and baseline[-1][1] >= edge:
            trade = baseline.pop()
            bsum = _sub(bsum, trade[4])
            if trade[0] > self._reset_seq:
                window.appendleft(trade)
                wsum = _add(wsum, trade[4])
            else:
                spent.appendleft(trade)
        while spent and spent[0][1] < edge:
            trade = spent.popleft()
            baseline.append(trade)
            bsum = _add(bsum, trade[4])
        while window[0][1] < edge:  # the new trade is inside: the loop stops at it
            trade = window.popleft()
            baseline.append(trade)
            bsum = _add(bsum, trade[4])
            wsum = _sub(wsum, trade[4])
        horizon = edge - p.baseline_ms
        while baseline and baseline[0][1] < horizon:
            bsum = _sub(bsum, baseline.popleft()[4])
        if not baseline:
            bsum = _ZERO  # exact anyway; this keeps "no baseline" from depending on it
        self._window_sum = wsum
        self._baseline_sum = bsum
        return horizon


# (event time ms, price text, quote notional)
_Order: TypeAlias = tuple[int, str, Decimal]


class _Side:
    """One side's cluster window and cooldown."""

    __slots__ = ("last_signal_ms", "total", "window")

    def __init__(self) -> None:
        self.window: collections.deque[_Order] = collections.deque()
        self.total = _ZERO
        self.last_signal_ms: int | None = None

    def signalled(self, time_ms: int) -> None:
        """The window's orders are spent: the next signal needs new ones."""
        self.window.clear()
        self.total = _ZERO
        self.last_signal_ms = time_ms

    def evict(self, edge: int) -> None:
        window = self.window
        while window and window[0][0] < edge:
            self.total = _sub(self.total, window.popleft()[2])
        if not window:
            self.total = _ZERO


class LiquidationState:
    """A liquidation-cluster rule on one instrument; see the module doc."""

    __slots__ = ("_buy", "_sell")

    def __init__(self) -> None:
        self._buy = _Side()
        self._sell = _Side()

    def observe(
        self,
        p: LiquidationParams,
        time_ms: int,
        side: str,
        price: Decimal,
        price_text: str,
        notional: Decimal,
    ) -> LiquidationSignal | None:
        """Feed one liquidation order (``side`` as Binance writes it, ``notional`` its
        quote notional); return the signal it raises, if any. ``price`` is not needed for
        the decision (the side gives the direction; the signal carries the text)."""
        mine, direction = self._take(p, time_ms, side, price_text, notional)
        last = mine.last_signal_ms
        if last is not None and time_ms < last + p.cooldown_ms:
            return None
        if mine.total <= p.min_notional:
            return None
        window = mine.window
        first = window[0]
        signal = LiquidationSignal(
            direction=direction,
            side=side,
            first_time_ms=first[0],
            first_price=first[1],
            time_ms=time_ms,
            price=price_text,
            notional=mine.total,
            count=len(window),
            path=downsample([(o[0], o[1]) for o in window]),
        )
        mine.signalled(time_ms)
        return signal

    def replay(
        self, p: LiquidationParams, time_ms: int, side: str, price_text: str, notional: Decimal,
        fired: bool,
    ) -> None:  # fmt: skip
        """Rebuild state from an order seen before a restart, without evaluating it;
        ``fired``: it raised this rule's signal last time (its side's window resets)."""
        mine, _ = self._take(p, time_ms, side, price_text, notional)
        if fired:
            mine.signalled(time_ms)

    def restore(self, side: str, time_ms: int) -> None:
        """The last signal of ``side`` (BUY or SELL) was at ``time_ms``."""
        mine = self._buy if side == "BUY" else self._sell
        if mine.last_signal_ms is None or time_ms > mine.last_signal_ms:
            mine.last_signal_ms = time_ms

    def _take(
        self, p: LiquidationParams, time_ms: int, side: str, price_text: str, notional: Decimal
    ) -> tuple[_Side, Direction]:
        """Add one order to its side's window, move both windows' edges to its time."""
        if side == "SELL":
            mine, other, direction = self._sell, self._buy, Direction.DOWN
        elif side == "BUY":
            mine, other, direction = self._buy, self._sell, Direction.UP
        else:
            raise ValueError(f"a liquidation side is BUY or SELL, not {side!r}")
        edge = time_ms - p.window_ms
        other.evict(edge)  # not needed for the decision; bounds the quiet side's memory
        mine.window.append((time_ms, price_text, notional))
        mine.total = _add(mine.total, notional)
        mine.evict(edge)
        return mine, direction


class ThresholdState:
    """A premium or funding rule on one instrument; see the module doc."""

    __slots__ = ("_armed", "_last_signal_ms")

    def __init__(self) -> None:
        self._armed = True
        self._last_signal_ms: int | None = None

    def observe(self, p: ThresholdParams, time_ms: int, value: Decimal) -> ThresholdSignal | None:
        """Feed one value (percent); return the signal it raises, if any."""
        if p.low_pct <= value <= p.threshold_pct:
            self._armed = True
            return None
        if not self._armed:
            return None
        last = self._last_signal_ms
        if last is not None and time_ms < last + p.cooldown_ms:
            return None  # still armed: it signals after the quiet if it stays outside
        self._armed = False
        self._last_signal_ms = time_ms
        return ThresholdSignal(Direction.UP if value > _ZERO else Direction.DOWN, time_ms, value)

    def replay(
        self, p: ThresholdParams, time_ms: int, value: Decimal, fired: bool, withheld: bool
    ) -> None:
        """Rebuild state from a value seen before a restart: ``fired``, it raised this
        rule's signal last time; ``withheld``, a signal now would have been withheld by
        the rule's filters (the state moves as for any signal). A value outside the band
        that did not signal while this state would signal proves the rule was disarmed
        then (by a signal older than what is replayed): it is disarmed again."""
        last = self._last_signal_ms
        if self.observe(p, time_ms, value) is None:
            if fired:  # the state differs from the one that signalled: take its word
                self._armed = False
                self._last_signal_ms = time_ms
        elif not fired and not withheld:
            self._last_signal_ms = last  # disarmed, by a signal not replayed

    def restore(self, time_ms: int) -> None:
        """The rule's last signal was at ``time_ms`` (its cooldown runs from there)."""
        if self._last_signal_ms is None or time_ms > self._last_signal_ms:
            self._last_signal_ms = time_ms
