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

Prices are compared exactly: the decimal strings become :class:`~decimal.Decimal` and
the test is ``|p - b| * 100 > threshold * b`` in an 80-digit context, never in float.
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
enables the rule from then on. :meth:`Detector.replay` cannot see such a withheld jump (it
was never sent), so after a restart the replayed state of a volume-filtered rule may differ.

Alert ids are a digest of market, symbol, rule name, and base and current price with
their event times, so re-processing the same ticks (a restart that replays its input)
yields the same ids. ``detected_at_ms`` is the only wall-clock field (the injected clock).
"""

from __future__ import annotations

import collections
import decimal
import fnmatch
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

import attrs

from marketd.alerts.model import Alert, Direction
from marketd.config.alerts import RuleSettings, check_rules
from marketd.data.events import Tick

_CTX = decimal.Context(prec=80, Emax=999_999, Emin=-999_999)
_mul = _CTX.multiply
_sub = _CTX.subtract
_HUNDRED = Decimal(100)
_ZERO = Decimal(0)
_NO_ALERTS: tuple[Alert, ...] = ()


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

    __slots__ = ("cooldown_ms", "min_volume", "settings", "threshold", "window_ms")

    def __init__(self, settings: RuleSettings) -> None:
        self.settings = settings
        self.window_ms = round(settings.window_s * 1000)
        self.cooldown_ms = round(settings.cooldown_s * 1000)
        self.threshold = Decimal(repr(settings.threshold_pct))
        self.min_volume = settings.min_quote_volume_24h

    def applies(self, market: str, symbol: str) -> bool:
        """The symbol and market filters (decided once per instrument, not per tick)."""
        s = self.settings
        if s.markets and market not in s.markets:
            return False
        if s.symbols and not any(fnmatch.fnmatchcase(symbol, g) for g in s.symbols):
            return False
        return not any(fnmatch.fnmatchcase(symbol, g) for g in s.exclude)


class _RuleState:
    __slots__ = ("last_alert_ms", "window")

    def __init__(self) -> None:
        # (event time ms, price, price text), oldest first.
        self.window: collections.deque[tuple[int, Decimal, str]] = collections.deque()
        self.last_alert_ms: int | None = None


class _Instrument:
    __slots__ = ("active", "last_price", "last_time", "names", "states", "volume")

    def __init__(self, states: list[_RuleState], names: tuple[str, ...]) -> None:
        self.last_time = -(2**63)
        self.last_price = ""
        self.volume = -1.0  # latest 24 h quote volume (-1: unknown)
        self.states = states
        self.names = names  # the rule names ``states`` belong to, in order
        # (rule, state) of the rules whose symbol/market filters let this instrument in.
        self.active: list[tuple[_Rule, _RuleState]] = []


class Detector:
    """Sliding-window price-jump detection over several rules; see the module doc."""

    def __init__(
        self, rules: Sequence[RuleSettings], *, clock: Callable[[], int] = wall_ms
    ) -> None:
        self._clock = clock
        self._rules: list[_Rule] = []
        self._names: tuple[str, ...] = ()
        self._instruments: dict[tuple[str, str], _Instrument] = {}
        self.ticks = self.duplicates = self.out_of_order = self.invalid = 0
        self.last_event_time_ms = 0
        self.alerts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.set_rules(rules)

    @property
    def rules(self) -> tuple[RuleSettings, ...]:
        return tuple(r.settings for r in self._rules)

    def set_rules(self, rules: Sequence[RuleSettings]) -> None:
        """Replace the rules; state is kept per rule name (see the module doc)."""
        rules = tuple(rules)
        problems = check_rules(rules)
        if problems:
            raise ValueError("; ".join(problems))
        self._rules = [_Rule(r) for r in rules]
        self._names = tuple(r.name for r in rules)  # a new object: instruments remap lazily

    def forget(self, market: str, symbol: str) -> None:
        """Drop an instrument's state (its input moved to another detector)."""
        self._instruments.pop((market, symbol), None)

    def statistics(self) -> DetectorStatistics:
        return DetectorStatistics(
            ticks=self.ticks,
            duplicates=self.duplicates,
            out_of_order=self.out_of_order,
            invalid=self.invalid,
            alerts=dict(self.alerts),
            instruments=len(self._instruments),
            last_event_time_ms=self.last_event_time_ms,
        )

    def observe_many(self, ticks: Iterable[Tick]) -> list[Alert]:
        out: list[Alert] = []
        observe = self.observe
        for t in ticks:
            found = observe(t.market, t.symbol, t.time_ms, t.price, t.quote_volume)
            if found:
                out.extend(found)
        return out

    def observe(
        self, market: str, symbol: str, time_ms: int, price: str, quote_volume: str = ""
    ) -> Sequence[Alert]:
        """Feed one tick (``quote_volume``: the 24 h quote volume it carries, if any);
        return the alerts it raises (usually none)."""
        key = (market, symbol)
        inst = self._instruments.get(key)
        if inst is None:
            inst = self._new_instrument(market, symbol)
        elif time_ms <= inst.last_time:
            if time_ms < inst.last_time:
                self.out_of_order += 1
                return _NO_ALERTS
            if price == inst.last_price:
                self.duplicates += 1
                return _NO_ALERTS
        p = parse_price(price)
        if p is None:
            self.invalid += 1
            return _NO_ALERTS
        inst.last_time = time_ms
        inst.last_price = price
        if quote_volume:
            inst.volume = _volume(quote_volume, inst.volume)
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
            horizon = time_ms - rule.window_ms
            while window[0][0] < horizon:
                window.popleft()
            last = state.last_alert_ms
            if last is not None and time_ms < last + rule.cooldown_ms:
                continue
            base_time, base, base_text = window[0]
            diff = _sub(p, base)
            if not diff:
                continue
            limit = _mul(rule.threshold, base)
            moved = _mul(diff, _HUNDRED)
            if moved > limit:
                direction = Direction.UP
            elif -moved > limit:
                direction = Direction.DOWN
            else:
                continue
            state.last_alert_ms = time_ms
            window.clear()
            window.append(tick)
            if rule.min_volume and inst.volume < rule.min_volume:
                continue  # withheld, but the move is spent (see the module doc)
            alert = self._alert(market, symbol, rule, direction, tick, (base_time, base, base_text))
            self.alerts[(rule.settings.name, direction.value)] += 1
            if found is None:
                found = [alert]
            else:
                found.append(alert)
        return found or _NO_ALERTS

    def replay(
        self,
        market: str,
        symbol: str,
        time_ms: int,
        price: str,
        alerted: Iterable[str] = (),
        quote_volume: str = "",
    ) -> None:
        """Rebuild state from a tick seen before a restart, without evaluating it: the
        tick enters every rule's window; for each rule named in ``alerted`` (it raised
        an alert on this tick last time) the tick is the alert again: window reset to
        it, quiet from it. Same checks as :meth:`observe` (duplicates, order)."""
        inst = self._instruments.get((market, symbol))
        if (
            inst is not None
            and time_ms <= inst.last_time
            and (time_ms < inst.last_time or price == inst.last_price)
        ):
            return
        p = parse_price(price)
        if p is None:
            return
        inst = self._instrument(market, symbol)
        inst.last_time = time_ms
        inst.last_price = price
        if quote_volume:
            inst.volume = _volume(quote_volume, inst.volume)
        tick = (time_ms, p, price)
        fired = set(alerted)
        for rule, state in inst.active:
            window = state.window
            if rule.settings.name in fired:
                state.last_alert_ms = time_ms
                window.clear()
            window.append(tick)
            horizon = time_ms - rule.window_ms
            while window[0][0] < horizon:
                window.popleft()

    def restore_alert(self, market: str, symbol: str, rule: str, time_ms: int) -> None:
        """Set the time of a rule's last alert on an instrument (state kept elsewhere)."""
        inst = self._instrument(market, symbol)
        for name, state in zip(inst.names, inst.states, strict=True):
            if name == rule:
                state.last_alert_ms = time_ms

    def _instrument(self, market: str, symbol: str) -> _Instrument:
        inst = self._instruments.get((market, symbol))
        if inst is None:
            inst = self._new_instrument(market, symbol)
        elif inst.names is not self._names:
            self._remap(inst, market, symbol)
        return inst

    def _new_instrument(self, market: str, symbol: str) -> _Instrument:
        states = [_RuleState() for _ in self._rules]
        inst = self._instruments[(market, symbol)] = _Instrument(states, self._names)
        inst.active = [(r, st) for r, st in zip(self._rules, states, strict=True)
                       if r.applies(market, symbol)]  # fmt: skip
        return inst

    def _alert(
        self,
        market: str,
        symbol: str,
        rule: _Rule,
        direction: Direction,
        tick: tuple[int, Decimal, str],
        base_tick: tuple[int, Decimal, str],
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
        )

    def _remap(self, inst: _Instrument, market: str, symbol: str) -> None:
        old = dict(zip(inst.names, inst.states, strict=True))
        inst.states = [old.get(name) or _RuleState() for name in self._names]
        inst.names = self._names
        inst.active = [(r, st) for r, st in zip(self._rules, inst.states, strict=True)
                       if r.applies(market, symbol)]  # fmt: skip


def _volume(text: str, known: float) -> float:
    """A quote volume's text as a float; an unreadable one leaves ``known``."""
    try:
        value = float(text)
    except ValueError:
        return known
    return value if value >= 0 else known
