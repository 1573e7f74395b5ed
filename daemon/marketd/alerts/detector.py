"""The price-jump detector: sliding windows in exchange event time (pure, no I/O, no trio).

Per instrument (market, symbol) and per rule, the detector keeps the prices of the last
``window_s`` seconds of *event time* in arrival order. Each new price is compared with the
**oldest** price still in the window (the base). The window at a tick of time ``t`` holds
the ticks with time ``>= t - window`` (the boundary is inside). When
``|price - base| / base * 100 > threshold_pct`` (strictly: a move of exactly the threshold
does not fire) the rule raises an alert, up (pump) or down (dump).

Re-arm rule (so one move does not alert again every cooldown):

* **Quiet.** After an alert at event time ``t_a`` the rule says nothing for that
  instrument until event time ``t_a + cooldown_s``; ticks keep entering the window.
* **Base reset.** The alert also empties the rule's window and starts it again at the
  alerting tick: afterwards only prices at or after the alert count as a base. A price
  that stays at its new level therefore never re-alerts (the seed re-alerted every
  cooldown for as long as the pre-jump base stayed in its 60 s window); a move that goes
  on by another threshold against the post-alert prices alerts again (once quiet), and a
  move straight back (a spike that reverts) is a new move and alerts the other way.

  Why not "re-arm when the old base leaves the window"? It suppresses a genuine second leg
  of a move for up to a whole window, and it still compares later prices with a pre-alert
  base. Why not hysteresis? It needs a second threshold per rule to tune and still refers
  to the stale base. The base reset needs no extra parameter and each alert describes
  exactly the move since the previous one.

Ticks are checked first: a tick older than the newest seen for its instrument
(out of order) is dropped and counted, as is an exact duplicate (same event time and
same price text); a price that is not a positive finite decimal is dropped as invalid.
Several ticks with the same event time and different prices are all used (trades).

Prices are compared exactly, never in float: the decimal strings become
:class:`~decimal.Decimal` and the test ``|p - b| * 100 > threshold * b`` is done divided by
100, as ``p > b * (100 + threshold) / 100`` (up) or ``p < b * (100 - threshold) / 100``
(down), the limits being products in an 80-digit context (exact while a price and the
threshold need no more than 80 digits together; exchanges send about 20 for a price).
Most ticks need no product: each rule state keeps the up limit of an earlier base ``l``
and the down limit of an earlier base ``h``; a base at or above ``l`` has an up limit at
or above the kept one (a base at or below ``h``, a down limit at or below it), so a price
between the kept limits is decided by comparisons alone. Only when they cannot decide is
the current base's limit computed, and kept. A new threshold drops the kept limits.
Each tick costs O(1) amortised per rule: it is appended once and evicted once.

Rules can be replaced at runtime (:meth:`Detector.set_rules`). State is kept per rule
*name*: a rule whose name stays keeps its window contents and its last alert time, and
the new threshold and cooldown apply from the next tick; a shorter window evicts at the
next tick, a longer one fills up as time passes (older ticks were not kept). A new name
starts empty; a removed name's state is dropped.

Filters (``symbols``, ``exclude``, ``markets``, ``min_quote_volume_24h``) only ever remove
alerts. The symbol and market filters are decided once per rule per instrument (when the
instrument or the rule set is new): a rule that does not apply to an instrument keeps no
window for it and costs nothing per tick. The volume filter compares the instrument's
latest 24 h quote volume (carried by the 24 h ticker ticks; unknown until one arrives)
when a jump is found: a jump below the minimum is not sent, but it still resets the base
and starts the quiet period, so a rule's alerts are exactly the unfiltered rule's alerts
whose instrument had the volume at that moment, and a volume that becomes known (or grows)
enables the rule from then on. Such a jump is recorded nowhere, so :meth:`Detector.replay_tick`
evaluates a rule wherever its filter withholds.

Alert ids are a digest of market, symbol, rule name, and base and current price with
their event times, so re-processing the same ticks (a restart that replays its input)
yields the same ids. ``detected_at_ms`` is the only wall-clock field (the injected clock).

**Other kinds** (``RuleSettings.kind``; their state machines and exact semantics are in
:mod:`marketd.alerts.kinds`). Every kind shares the order checks, filters, cooldown and
ids above; what each reads from a tick:

* ``price`` — every price tick (not liquidations). With several price kinds watched
  (e.g. ``aggTrade`` and ``markPriceUpdate``) it reads them all, in arrival order.
* ``volume`` — ticks with a quantity (``trade``, ``aggTrade``): notional = price x
  quantity.
* ``liquidation`` — liquidation ticks (``forceOrder``): notional = average price x filled
  quantity. They are checked for order and duplicates on their own clock (they are pushed
  at most once a second) and enter no price window.
* ``premium``, ``funding`` — mark price ticks (``markPriceUpdate``, which carry the index
  price and the funding rate), also checked on their own clock, so a mark price a few
  milliseconds older than the last trade is not dropped as out of order.

A price alert carries the path of its window (:func:`marketd.alerts.kinds.downsample`:
at most ``PATH_POINTS`` points, extremes kept); volume and liquidation alerts that of
their windows; premium and funding alerts none.

**What happened next** (:mod:`marketd.alerts.outcomes`). After each alert the detector
watches the instrument's price ticks for ``OUTCOME_AFTER_S`` (1, 5, 15 minutes of event
time): the outcome at ``+h`` is
the last price at or before ``price_time_ms + h``, known when the first tick at or after
that moment arrives; its change is against the alert's ``price``. Outcomes are collected
for the caller (:meth:`Detector.take_outcomes`). At most ``MAX_PENDING_OUTCOMES`` wait
at a time (a flood of alerts skips the rest, counted); an instrument whose stream stops
leaves its outcomes pending; a restart forgets the pending ones.
"""

from __future__ import annotations

import collections
import contextlib
import decimal
import fnmatch
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

import attrs

from marketd.alerts.kinds import (
    LiquidationParams,
    LiquidationState,
    ThresholdParams,
    ThresholdState,
    VolumeParams,
    VolumeState,
    downsample,
    funding_pct,
    premium_pct,
)
from marketd.alerts.model import (
    PATH_POINTS,
    Alert,
    AlertKind,
    Direction,
    Outcome,
    number_text,
)
from marketd.alerts.outcomes import Waiting
from marketd.config.alerts import RuleSettings, check_rules
from marketd.data.events import Tick

_CTX = decimal.Context(prec=80, Emax=999_999, Emin=-999_999)
_mul = _CTX.multiply
_sub = _CTX.subtract
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_INFINITY = Decimal("Infinity")
_NO_ALERTS: tuple[Alert, ...] = ()
MAX_PENDING_OUTCOMES = 50_000


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def alert_id(
    market: str,
    symbol: str,
    rule: str,
    base_time_ms: int,
    base_price: str,
    price_time_ms: int,
    price: str,
) -> str:
    """The stable id of a jump: 24 hex digits of a SHA-1 over its defining values."""
    text = f"{market}|{symbol}|{rule}|{base_time_ms}|{base_price}|{price_time_ms}|{price}"
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:24]


def _values(
    p: Decimal, quantity: str, index_price: str, funding_rate: str
) -> tuple[Decimal | None, Decimal | None, Decimal | None]:
    """What the volume, premium and funding rules read from a tick at price ``p``: its
    notional, premium (percent) and funding rate (percent), each None if absent or bad."""
    notional = premium = funding = None
    if quantity and (q := parse_price(quantity)) is not None:
        notional = _mul(p, q)
    if index_price and (i := parse_price(index_price)) is not None:
        premium = premium_pct(p, i)
    if funding_rate:
        with contextlib.suppress(decimal.InvalidOperation, ValueError):
            rate = Decimal(funding_rate)
            if rate.is_finite():
                funding = funding_pct(rate)
    return notional, premium, funding


def parse_price(text: str) -> Decimal | None:
    """A positive finite decimal, or None."""
    try:
        value = Decimal(text)
    except (decimal.InvalidOperation, ValueError, TypeError):
        return None
    if not value.is_finite() or value <= _ZERO:
        return None
    return value


@attrs.frozen
class DetectorStatistics:
    ticks: int  # ticks used (after dropping the ones below)
    duplicates: int  # same event time and price as the previous tick of the instrument
    out_of_order: int  # event time older than the newest seen for the instrument
    invalid: int  # a price that is not a positive finite decimal
    alerts: dict[tuple[str, str], int]  # by (rule, direction)
    instruments: int
    last_event_time_ms: int  # newest event time seen over all instruments (0: none yet)


class _Rule:
    """A rule as the hot path uses it."""

    __slots__ = (
        "cooldown_ms", "down_factor", "kind", "min_volume", "params", "settings", "threshold",
        "up_factor", "window_ms",
    )  # fmt: skip

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self.kind = AlertKind(settings.kind)
        self.window_ms = round(settings.window_s * 1000)
        self.cooldown_ms = round(settings.cooldown_s * 1000)
        self.threshold = Decimal(repr(settings.threshold_pct))
        # A price rule's limits are b * up_factor and b * down_factor (see the module doc).
        self.up_factor = _CTX.divide(_CTX.add(_HUNDRED, self.threshold), _HUNDRED)
        # No positive price falls 100 % or more: a factor of 0 says so and, unlike a
        # negative one, keeps b * down_factor growing with b, as _RuleState relies on.
        self.down_factor = max(_CTX.divide(_sub(_HUNDRED, self.threshold), _HUNDRED), _ZERO)
        self.min_volume = settings.min_quote_volume_24h
        self.params: VolumeParams | LiquidationParams | ThresholdParams | None = None
        if self.kind is AlertKind.VOLUME:
            self.params = VolumeParams(
                self.window_ms,
                round(settings.baseline_s * 1000),
                Decimal(repr(settings.multiple)),
                Decimal(repr(settings.min_notional)),
                self.cooldown_ms,
            )
        elif self.kind is AlertKind.LIQUIDATION:
            self.params = LiquidationParams(
                self.window_ms, Decimal(repr(settings.min_notional)), self.cooldown_ms
            )
        elif self.kind is not AlertKind.PRICE:
            self.params = ThresholdParams(self.threshold, self.cooldown_ms)

    def new_state(self) -> _RuleState | VolumeState | LiquidationState | ThresholdState:
        if self.kind is AlertKind.PRICE:
            return _RuleState()
        if self.kind is AlertKind.VOLUME:
            return VolumeState()
        if self.kind is AlertKind.LIQUIDATION:
            return LiquidationState()
        return ThresholdState()

    def applies(self, market: str, symbol: str) -> bool:
        """The symbol and market filters (decided once per instrument, not per tick)."""
        s = self.settings
        if s.markets and market not in s.markets:
            return False
        if s.symbols and not any(fnmatch.fnmatchcase(symbol, g) for g in s.symbols):
            return False
        return not any(fnmatch.fnmatchcase(symbol, g) for g in s.exclude)


class _RuleState:
    __slots__ = ("down", "high", "last_alert_ms", "low", "up", "window")

    def __init__(self) -> None:
        # (event time ms, price, price text), oldest first.
        self.window: collections.deque[tuple[int, Decimal, str]] = collections.deque()
        self.last_alert_ms: int | None = None
        self.forget_limits()

    def jumped(self, rule: _Rule, base: Decimal, p: Decimal) -> bool:
        """Whether ``p`` moved beyond the rule's threshold from ``base`` (what the hot path
        in :meth:`Detector.observe_tick` decides inline, the kept limits first)."""
        if p > base:
            return not (base >= self.low and p <= self.up) and self.beyond_up(rule, base, p)
        return not (base <= self.high and p >= self.down) and self.beyond_down(rule, base, p)

    def beyond_up(self, rule: _Rule, base: Decimal, p: Decimal) -> bool:
        """Keep ``base``'s up limit (the kept limits could not decide); is ``p`` above it?"""
        self.low = base
        self.up = limit = _mul(rule.up_factor, base)
        return p > limit

    def beyond_down(self, rule: _Rule, base: Decimal, p: Decimal) -> bool:
        """Keep ``base``'s down limit; is ``p`` below it?"""
        self.high = base
        self.down = limit = _mul(rule.down_factor, base)
        return p < limit

    def forget_limits(self) -> None:
        """Drop the kept limits: the rule's threshold may have changed."""
        # ``up`` is the up limit of an earlier base ``low`` and ``down`` the down limit of
        # an earlier base ``high`` (module doc). They stay valid for any later base, as
        # long as the factors they were computed with are the rule's. The start values
        # decide nothing, so the first tick computes them.
        self.low = self.up = _INFINITY
        self.high = self.down = _ZERO


_State = _RuleState | VolumeState | LiquidationState | ThresholdState


class _Clock:
    """The newest tick of one input of an instrument: order and duplicate checks."""

    __slots__ = ("price", "time")

    def __init__(self) -> None:
        self.time = -(2**63)
        self.price = ""


class _Instrument:
    __slots__ = (
        "active",
        "due",
        "last_price",
        "last_time",
        "liquidation_clock",
        "liquidations",
        "mark",
        "names",
        "others",
        "pending",
        "states",
        "volume",
    )  # fmt: skip

    def __init__(self, states: list[_State], names: tuple[tuple[str, str], ...]) -> None:
        self.last_time = -(2**63)  # the order clock of plain price ticks
        self.last_price = ""
        self.mark = _Clock()  # of mark price ticks
        self.liquidation_clock = _Clock()
        self.volume = -1.0  # latest 24 h quote volume (-1: unknown)
        self.states = states
        self.names = names  # the (name, kind) of the rules ``states`` belong to, in order
        # (rule, state) of the rules whose symbol/market filters let this instrument in:
        # price rules, volume/premium/funding rules, liquidation rules.
        self.active: list[tuple[_Rule, _RuleState]] = []
        self.others: list[tuple[_Rule, _State]] = []
        self.liquidations: list[tuple[_Rule, LiquidationState]] = []
        # The alerts waiting for their outcomes, and when the first is due.
        self.pending = Waiting()
        self.due = self.pending.due

    def assign(self, rules: list[_Rule], market: str, symbol: str) -> None:
        """Sort the rules that apply to this instrument by what they read."""
        self.active, self.others, self.liquidations = [], [], []
        for rule, state in zip(rules, self.states, strict=True):
            if not rule.applies(market, symbol):
                continue
            if isinstance(state, _RuleState):
                self.active.append((rule, state))
            elif isinstance(state, LiquidationState):
                self.liquidations.append((rule, state))
            else:
                self.others.append((rule, state))


class Detector:
    """Sliding-window detection over several rules of several kinds; see the module doc."""

    def __init__(
        self, rules: Sequence[RuleSettings], *, clock: Callable[[], int] = wall_ms
    ) -> None:
        self._clock = clock
        self._rules: list[_Rule] = []
        self._names: tuple[tuple[str, str], ...] = ()
        # market -> symbol -> instrument (cheaper to look up than a (market, symbol) key)
        self._instruments: dict[str, dict[str, _Instrument]] = {}
        self.ticks = self.duplicates = self.out_of_order = self.invalid = 0
        self.last_event_time_ms = 0
        self.alerts: collections.Counter[tuple[str, str]] = collections.Counter()
        self._outcomes: list[Outcome] = []
        self.pending_outcomes = 0  # alerts waiting for an outcome
        self.outcomes_skipped = 0  # alerts that got none: MAX_PENDING_OUTCOMES were waiting
        self.set_rules(rules)

    @property
    def rules(self) -> tuple[RuleSettings, ...]:
        return tuple(r.settings for r in self._rules)

    def set_rules(self, rules: Sequence[RuleSettings]) -> None:
        """Replace the rules; state is kept per rule name and kind (see the module doc)."""
        rules = tuple(rules)
        problems = check_rules(rules)
        if problems:
            raise ValueError("; ".join(problems))
        self._rules = [_Rule(r) for r in rules]
        # A new object: instruments remap lazily.
        self._names = tuple((r.name, r.kind) for r in rules)

    def forget(self, market: str, symbol: str) -> None:
        """Drop an instrument's state (its input moved to another detector)."""
        inst = self._known(market, symbol)
        if inst is not None:
            del self._instruments[market][symbol]
            self.pending_outcomes -= len(inst.pending)

    def take_outcomes(self) -> list[Outcome]:
        """The outcomes found since the last call, in the order they were found."""
        found, self._outcomes = self._outcomes, []
        return found

    def statistics(self) -> DetectorStatistics:
        return DetectorStatistics(
            ticks=self.ticks,
            duplicates=self.duplicates,
            out_of_order=self.out_of_order,
            invalid=self.invalid,
            alerts=dict(self.alerts),
            instruments=sum(map(len, self._instruments.values())),
            last_event_time_ms=self.last_event_time_ms,
        )

    def observe_many(self, ticks: Iterable[Tick]) -> list[Alert]:
        """The ticks of any inputs in order (see :meth:`observe_tick`); their alerts."""
        out: list[Alert] = []
        observe = self.observe_tick
        for t in ticks:
            found = observe(t)
            if found:
                out.extend(found)
        return out

    def observe(
        self,
        market: str,
        symbol: str,
        time_ms: int,
        price: str,
        quote_volume: str = "",
        quantity: str = "",
        index_price: str = "",
        funding_rate: str = "",
    ) -> Sequence[Alert]:
        """Feed one price tick (``quote_volume``: the 24 h quote volume it carries, if
        any; ``quantity``: a trade's; ``index_price`` and ``funding_rate``: a mark price
        update's); return the alerts it raises (usually none)."""
        return self.observe_tick(
            Tick(market, symbol, time_ms, price, quote_volume, quantity, index_price,
                 funding_rate)
        )  # fmt: skip

    def observe_tick(self, t: Tick) -> Sequence[Alert]:
        """Feed one tick of any input: a liquidation (``side`` set) or a price tick (see
        :meth:`observe`); return the alerts it raises (usually none)."""
        if t.side:
            return self.observe_liquidation(
                t.market, t.symbol, t.time_ms, t.side, t.price, t.quantity
            )
        # The hot path of every input, in one function: handing these values on to another
        # would cost about as much as a price rule's whole common case.
        market = t.market
        symbol = t.symbol
        time_ms = t.time_ms
        price = t.price
        index_price = t.index_price
        symbols = self._instruments.get(market)
        inst = symbols.get(symbol) if symbols is not None else None
        if inst is None:
            inst = self._new_instrument(market, symbol)
        elif index_price:
            clock = inst.mark
            if time_ms <= clock.time:
                if time_ms < clock.time:
                    self.out_of_order += 1
                    return _NO_ALERTS
                if price == clock.price:
                    self.duplicates += 1
                    return _NO_ALERTS
        elif time_ms <= inst.last_time:
            if time_ms < inst.last_time:
                self.out_of_order += 1
                return _NO_ALERTS
            if price == inst.last_price:
                self.duplicates += 1
                return _NO_ALERTS
        try:  # parse_price, inlined for the same reason
            p = Decimal(price)
        except (decimal.InvalidOperation, ValueError, TypeError):
            self.invalid += 1
            return _NO_ALERTS
        if not p.is_finite() or p <= _ZERO:
            self.invalid += 1
            return _NO_ALERTS
        if time_ms >= inst.due:  # before the clocks move: they hold the previous prices
            self._reached(inst, time_ms, price)
        if index_price:
            inst.mark.time = time_ms
            inst.mark.price = price
        else:
            inst.last_time = time_ms
            inst.last_price = price
        if t.quote_volume:
            inst.volume = _volume(t.quote_volume, inst.volume)
        self.ticks += 1
        if time_ms > self.last_event_time_ms:
            self.last_event_time_ms = time_ms
        if inst.names is not self._names:
            self._remap(inst, market, symbol)
        found: list[Alert] | None = None
        tick = (time_ms, p, price)
        for rule, state in inst.active:
            window = state.window
            window.append(tick)
            base_tick = window[0]
            horizon = time_ms - rule.window_ms
            if base_tick[0] < horizon:
                window.popleft()
                base_tick = window[0]
                while base_tick[0] < horizon:
                    window.popleft()
                    base_tick = window[0]
            last = state.last_alert_ms
            if last is not None and time_ms < last + rule.cooldown_ms:
                continue
            base = base_tick[1]
            # A price equal to the base takes the second branch and never alerts there:
            # the threshold is positive, so the down factor is below 1.
            if p > base:
                if (base >= state.low and p <= state.up) or not state.beyond_up(rule, base, p):
                    continue
                direction = Direction.UP
            else:
                if (base <= state.high and p >= state.down) or not state.beyond_down(rule, base, p):
                    continue
                direction = Direction.DOWN
            state.last_alert_ms = time_ms
            path = _path(window)
            window.clear()
            window.append(tick)
            if rule.min_volume and inst.volume < rule.min_volume:
                continue  # withheld, but the move is spent (see the module doc)
            alert = self._alert(market, symbol, rule, direction, tick, base_tick, path)
            found = self._found(inst, alert, found)
        if inst.others and (t.quantity or index_price):
            found = self._others(inst, market, symbol, tick, t.quantity, index_price,
                                 t.funding_rate, found)  # fmt: skip
        return found or _NO_ALERTS

    def observe_liquidation(
        self, market: str, symbol: str, time_ms: int, side: str, price: str, quantity: str
    ) -> Sequence[Alert]:
        """Feed one liquidation (``side`` BUY or SELL, average price, filled quantity)."""
        inst = self._instrument(market, symbol)
        clock = inst.liquidation_clock
        text = f"{side} {price} {quantity}"
        if time_ms <= clock.time:
            if time_ms < clock.time:
                self.out_of_order += 1
                return _NO_ALERTS
            if text == clock.price:
                self.duplicates += 1
                return _NO_ALERTS
        p = parse_price(price)
        q = parse_price(quantity)
        if p is None or q is None or side not in ("BUY", "SELL"):
            self.invalid += 1
            return _NO_ALERTS
        clock.time = time_ms
        clock.price = text
        self.ticks += 1
        if time_ms > self.last_event_time_ms:
            self.last_event_time_ms = time_ms
        found: list[Alert] | None = None
        notional = _mul(p, q)
        for rule, state in inst.liquidations:
            assert isinstance(rule.params, LiquidationParams)
            signal = state.observe(rule.params, time_ms, side, p, price, notional)
            if signal is None or (rule.min_volume and inst.volume < rule.min_volume):
                continue
            figures = {
                "side": signal.side,
                "notional": _text(signal.notional),
                "count": str(signal.count),
            }
            alert = self._signal_alert(
                market, symbol, rule, signal.direction,
                (signal.first_time_ms, signal.first_price), (signal.time_ms, signal.price),
                figures, signal.path,
            )  # fmt: skip
            found = self._found(inst, alert, found)
        return found or _NO_ALERTS

    def _others(
        self,
        inst: _Instrument,
        market: str,
        symbol: str,
        tick: tuple[int, Decimal, str],
        quantity: str,
        index_price: str,
        funding_rate: str,
        found: list[Alert] | None,
    ) -> list[Alert] | None:
        """The volume, premium and funding rules of one tick."""
        time_ms, p, price = tick
        notional, premium, funding = _values(p, quantity, index_price, funding_rate)
        for rule, state in inst.others:
            kind = rule.kind
            if kind is AlertKind.VOLUME:
                if notional is None:
                    continue
                assert isinstance(state, VolumeState)
                assert isinstance(rule.params, VolumeParams)
                v = state.observe(rule.params, time_ms, p, price, notional)
                if v is None or (rule.min_volume and inst.volume < rule.min_volume):
                    continue
                figures = {
                    "window_notional": _text(v.window_notional),
                    "baseline_notional": _text(v.baseline_notional),
                    "baseline_s": number_text(rule.settings.baseline_s),
                    "ratio": _text(_CTX.quantize(v.ratio, _RATIO) if v.ratio < _BIG else v.ratio),
                    "trades": str(v.trades),
                }
                alert = self._signal_alert(
                    market, symbol, rule, v.direction, (v.base_time_ms, v.base_price),
                    (v.time_ms, v.price), figures, v.path,
                )  # fmt: skip
                found = self._found(inst, alert, found)
                continue
            value = premium if kind is AlertKind.PREMIUM else funding
            if value is None:
                continue
            assert isinstance(state, ThresholdState)
            assert isinstance(rule.params, ThresholdParams)
            t = state.observe(rule.params, time_ms, value)
            if t is None or (rule.min_volume and inst.volume < rule.min_volume):
                continue
            if kind is AlertKind.PREMIUM:
                figures = {"mark_price": price, "index_price": index_price}
                base = (time_ms, index_price)
            else:
                figures = {"funding_rate": funding_rate, "mark_price": price}
                base = (time_ms, funding_rate)
            alert = self._signal_alert(
                market, symbol, rule, t.direction, base, (time_ms, price), figures, (),
                change=t.value,
            )  # fmt: skip
            found = self._found(inst, alert, found)
        return found

    def _found(self, inst: _Instrument, alert: Alert, found: list[Alert] | None) -> list[Alert]:
        """Count ``alert``, start waiting for its outcomes, add it to ``found``."""
        self.alerts[(alert.rule, alert.direction.value)] += 1
        if self.pending_outcomes < MAX_PENDING_OUTCOMES:
            inst.pending.add(alert)
            inst.due = inst.pending.due
            self.pending_outcomes += 1
        else:
            self.outcomes_skipped += 1
        if found is None:
            return [alert]
        found.append(alert)
        return found

    def _reached(self, inst: _Instrument, time_ms: int, price: str) -> None:
        """Outcomes a price tick at ``time_ms`` makes known. The instrument's previous
        price is the newer of its two price clocks (plain and mark): a tick of either
        at or after the due time would have come here already."""
        seen_time, seen_price = inst.last_time, inst.last_price
        if inst.mark.time > seen_time:
            seen_time, seen_price = inst.mark.time, inst.mark.price
        pending = inst.pending
        self.pending_outcomes -= pending.reached(
            time_ms, price, seen_time, seen_price, self._outcomes
        )
        inst.due = pending.due

    def replay(
        self,
        market: str,
        symbol: str,
        time_ms: int,
        price: str,
        alerted: Iterable[str] = (),
        quote_volume: str = "",
    ) -> None:
        """:meth:`replay_tick` of a plain price tick."""
        self.replay_tick(Tick(market, symbol, time_ms, price, quote_volume), alerted)

    def replay_tick(self, t: Tick, alerted: Iterable[str] = ()) -> None:
        """Rebuild state from a tick seen before a restart, without evaluating it. The
        tick enters every window it entered then; for each rule named in ``alerted`` (it
        raised an alert on this tick last time) the tick is the alert again: window reset
        to it, quiet from it. Same checks as :meth:`observe_tick` (duplicates, order, each
        input on its own clock). A premium or funding value outside its band that did not
        alert disarms its rule (it must have been disarmed then); a rule whose volume
        filter withholds its alerts is evaluated, since a withheld signal is recorded
        nowhere but moves the state."""
        fired = set(alerted)
        if t.side:
            self._replay_liquidation(t, fired)
            return
        market, symbol, time_ms, price = t.market, t.symbol, t.time_ms, t.price
        inst = self._known(market, symbol)
        if inst is not None:
            seen_time, seen_price = (
                (inst.mark.time, inst.mark.price) if t.index_price
                else (inst.last_time, inst.last_price)
            )  # fmt: skip
            if time_ms <= seen_time and (time_ms < seen_time or price == seen_price):
                return
        p = parse_price(price)
        if p is None:
            return
        inst = self._instrument(market, symbol)
        if t.index_price:
            inst.mark.time = time_ms
            inst.mark.price = price
        else:
            inst.last_time = time_ms
            inst.last_price = price
        if t.quote_volume:
            inst.volume = _volume(t.quote_volume, inst.volume)
        tick = (time_ms, p, price)
        for rule, state in inst.active:
            window = state.window
            if rule.settings.name in fired:
                state.last_alert_ms = time_ms
                window.clear()
            window.append(tick)
            horizon = time_ms - rule.window_ms
            while window[0][0] < horizon:
                window.popleft()
            if rule.min_volume and inst.volume < rule.min_volume:
                # Withheld now: a jump here was recorded nowhere, but reset the rule.
                last = state.last_alert_ms
                quiet = last is not None and time_ms < last + rule.cooldown_ms
                if not quiet and state.jumped(rule, window[0][1], p):
                    state.last_alert_ms = time_ms
                    window.clear()
                    window.append(tick)
        if not inst.others or not (t.quantity or t.index_price):
            return
        notional, premium, funding = _values(p, t.quantity, t.index_price, t.funding_rate)
        for rule, other in inst.others:
            name = rule.settings.name
            withheld = bool(rule.min_volume and inst.volume < rule.min_volume)
            if isinstance(other, VolumeState):
                assert isinstance(rule.params, VolumeParams)
                if notional is None:
                    continue
                if withheld:
                    other.observe(rule.params, time_ms, p, price, notional)
                else:
                    other.replay(rule.params, time_ms, p, price, notional, name in fired)
                continue
            value = premium if rule.kind is AlertKind.PREMIUM else funding
            if value is None:
                continue
            assert isinstance(other, ThresholdState)
            assert isinstance(rule.params, ThresholdParams)
            other.replay(rule.params, time_ms, value, name in fired, withheld)

    def _replay_liquidation(self, t: Tick, fired: set[str]) -> None:
        inst = self._known(t.market, t.symbol)
        text = f"{t.side} {t.price} {t.quantity}"
        if inst is not None:
            clock = inst.liquidation_clock
            if t.time_ms <= clock.time and (t.time_ms < clock.time or text == clock.price):
                return
        p = parse_price(t.price)
        q = parse_price(t.quantity)
        if p is None or q is None or t.side not in ("BUY", "SELL"):
            return
        inst = self._instrument(t.market, t.symbol)
        inst.liquidation_clock.time = t.time_ms
        inst.liquidation_clock.price = text
        notional = _mul(p, q)
        for rule, state in inst.liquidations:
            assert isinstance(rule.params, LiquidationParams)
            if rule.min_volume and inst.volume < rule.min_volume:
                state.observe(rule.params, t.time_ms, t.side, p, t.price, notional)
            else:
                state.replay(
                    rule.params, t.time_ms, t.side, t.price, notional, rule.settings.name in fired
                )

    def restore_alert(
        self, market: str, symbol: str, rule: str, time_ms: int, direction: str = ""
    ) -> None:
        """Set the time of a rule's last alert (of ``direction``, ``up`` or ``down``) on an
        instrument (state kept elsewhere), so its quiet period holds. A liquidation rule
        is quiet per side: without a direction it is left as it is."""
        inst = self._instrument(market, symbol)
        for (name, _), state in zip(inst.names, inst.states, strict=True):
            if name != rule:
                continue
            if isinstance(state, _RuleState):
                state.last_alert_ms = time_ms
            elif isinstance(state, LiquidationState):
                if direction:
                    state.restore("BUY" if direction == Direction.UP.value else "SELL", time_ms)
            else:
                state.restore(time_ms)

    def _known(self, market: str, symbol: str) -> _Instrument | None:
        symbols = self._instruments.get(market)
        return None if symbols is None else symbols.get(symbol)

    def _instrument(self, market: str, symbol: str) -> _Instrument:
        inst = self._known(market, symbol)
        if inst is None:
            inst = self._new_instrument(market, symbol)
        elif inst.names is not self._names:
            self._remap(inst, market, symbol)
        return inst

    def _new_instrument(self, market: str, symbol: str) -> _Instrument:
        states = [r.new_state() for r in self._rules]
        inst = _Instrument(states, self._names)
        self._instruments.setdefault(market, {})[symbol] = inst
        inst.assign(self._rules, market, symbol)
        return inst

    def _alert(
        self,
        market: str,
        symbol: str,
        rule: _Rule,
        direction: Direction,
        tick: tuple[int, Decimal, str],
        base_tick: tuple[int, Decimal, str],
        path: tuple[tuple[int, str], ...],
    ) -> Alert:
        time_ms, p, text = tick
        base_time, base, base_text = base_tick
        s = rule.settings
        return Alert(
            id=alert_id(market, symbol, s.name, base_time, base_text, time_ms, text),
            symbol=symbol,
            market=market,
            rule=s.name,
            direction=direction,
            change_pct=round(float(_CTX.divide(_mul(_sub(p, base), _HUNDRED), base)), 4),
            price=text,
            price_time_ms=time_ms,
            base_price=base_text,
            base_time_ms=base_time,
            detected_at_ms=self._clock(),
            window_s=s.window_s,
            threshold_pct=s.threshold_pct,
            cooldown_s=s.cooldown_s,
            path=path,
        )

    def _signal_alert(
        self,
        market: str,
        symbol: str,
        rule: _Rule,
        direction: Direction,
        base: tuple[int, str],
        current: tuple[int, str],
        figures: dict[str, str],
        path: tuple[tuple[int, str], ...],
        *,
        change: Decimal | None = None,
    ) -> Alert:
        """An alert of a kind other than price: ``change`` (percent) defaults to the
        move from the base price to the current one."""
        base_time, base_text = base
        time_ms, text = current
        if change is None:
            b = Decimal(base_text)
            change = _CTX.divide(_mul(_sub(Decimal(text), b), _HUNDRED), b)
        s = rule.settings
        return Alert(
            id=alert_id(market, symbol, s.name, base_time, base_text, time_ms, text),
            symbol=symbol,
            market=market,
            rule=s.name,
            direction=direction,
            change_pct=round(float(change), 4),
            price=text,
            price_time_ms=time_ms,
            base_price=base_text,
            base_time_ms=base_time,
            detected_at_ms=self._clock(),
            window_s=s.window_s,
            threshold_pct=s.threshold_pct,
            cooldown_s=s.cooldown_s,
            kind=rule.kind,
            figures=figures,
            path=path,
        )

    def _remap(self, inst: _Instrument, market: str, symbol: str) -> None:
        old = dict(zip(inst.names, inst.states, strict=True))
        inst.states = [
            old.get(name) or rule.new_state()
            for name, rule in zip(self._names, self._rules, strict=True)
        ]
        for state in inst.states:
            if isinstance(state, _RuleState):
                state.forget_limits()
        inst.names = self._names
        inst.assign(self._rules, market, symbol)


_RATIO = Decimal("0.01")
_BIG = Decimal("1e30")


def _path(window: collections.deque[tuple[int, Decimal, str]]) -> tuple[tuple[int, str], ...]:
    """A price rule's window as the alert's path (at most ``PATH_POINTS`` points)."""
    if len(window) <= PATH_POINTS:
        return tuple([(t, text) for t, _, text in window])
    return downsample([(t, text) for t, _, text in window])


def _text(value: Decimal) -> str:
    """A sum as plain decimal text (no exponent)."""
    return f"{value:f}"


def _volume(text: str, known: float) -> float:
    """A quote volume's text as a float; an unreadable one leaves ``known``."""
    try:
        value = float(text)
    except ValueError:
        return known
    return value if value >= 0 else known
