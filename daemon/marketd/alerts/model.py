"""Values shared by the detector, the alert publisher and the gateway (pure)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final, Protocol, runtime_checkable

import attrs


class Direction(enum.Enum):
    UP = "up"  # a pump (or shorts liquidated, a premium above the index, a positive rate)
    DOWN = "down"  # a dump (or longs liquidated, a discount, a negative rate)


class AlertKind(enum.Enum):
    """What a rule watches; every alert says which."""

    PRICE = "price"  # the price moved against the oldest price in the window
    VOLUME = "volume"  # traded quote volume in the window against its trailing baseline
    LIQUIDATION = "liquidation"  # liquidated notional of one side in the window
    PREMIUM = "premium"  # mark price against index price beyond a threshold
    FUNDING = "funding"  # funding rate beyond a threshold


OUTCOME_AFTER_S: Final = (60, 300, 900)
"""What happened next: the price this many seconds of event time after an alert."""

PATH_POINTS: Final = 60
"""An alert's price path (the sparkline) has at most this many points."""


@attrs.frozen
class Outcome:
    """The price ``after_s`` seconds (event time) after an alert: the last price of the
    instrument at or before ``alert price_time_ms + after_s``; ``change_pct`` against the
    alert's ``price`` (rounded, display only; the prices are exact)."""

    alert_id: str
    market: str
    symbol: str
    after_s: int
    price: str
    price_time_ms: int
    change_pct: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.alert_id,
            "after_s": self.after_s,
            "price": self.price,
            "price_time_ms": self.price_time_ms,
            "change_pct": self.change_pct,
        }


@attrs.frozen
class Alert:
    """One signal on one instrument under one rule.

    ``id`` is stable and deduplicable: the same signal (symbol, market, rule, base and
    current event times and values) always gets the same id, so a replayed or re-detected
    alert can be recognised downstream. Prices are the exchange's decimal strings;
    ``change_pct`` is rounded for display only (the prices are exact).

    What ``price``, ``base_price`` and ``change_pct`` mean depends on ``kind``:

    * price — the price that crossed the threshold, the oldest price of the window, the move;
    * volume — the trade price at the spike, the oldest trade price of the window, the move;
    * liquidation — the average price of the last liquidation of the cluster and of its
      first, the move between them;
    * premium — the mark price, the index price (same time), the premium in percent;
    * funding — the mark price (both), the funding rate in percent.

    ``figures`` holds the kind's own figures as exact text (see ``FIGURES``); ``path`` the
    price path of the window, oldest first, downsampled to at most ``PATH_POINTS`` points
    (empty for premium and funding alerts, whose window is a single moment).
    """

    id: str
    symbol: str
    market: str
    rule: str
    direction: Direction
    change_pct: float
    price: str
    price_time_ms: int
    base_price: str
    base_time_ms: int
    detected_at_ms: int
    # The rule's parameters when it fired (0 when unknown, e.g. an alert built by hand).
    window_s: float = 0.0
    threshold_pct: float = 0.0
    cooldown_s: float = 0.0
    kind: AlertKind = AlertKind.PRICE
    figures: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    path: tuple[tuple[int, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON shape the gateway pushes and the API returns."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "symbol": self.symbol,
            "market": self.market,
            "rule": self.rule,
            "direction": self.direction.value,
            "change_pct": self.change_pct,
            "price": self.price,
            "price_time_ms": self.price_time_ms,
            "base_price": self.base_price,
            "base_time_ms": self.base_time_ms,
            "duration_ms": max(0, self.price_time_ms - self.base_time_ms),
            "detected_at_ms": self.detected_at_ms,
            "window_s": self.window_s,
            "figures": dict(self.figures),
            "path": [[t, p] for t, p in self.path],
        }


FIGURES: Final[Mapping[AlertKind, tuple[str, ...]]] = {
    AlertKind.PRICE: (),
    # Quote notional traded in the window and in the baseline before it, the baseline's
    # length, the window's rate over the baseline's (rounded), and trades in the window.
    AlertKind.VOLUME: ("window_notional", "baseline_notional", "baseline_s", "ratio", "trades"),
    # The liquidated side (SELL: longs liquidated, BUY: shorts), its notional, how many.
    AlertKind.LIQUIDATION: ("side", "notional", "count"),
    AlertKind.PREMIUM: ("mark_price", "index_price"),
    AlertKind.FUNDING: ("funding_rate", "mark_price"),
}
"""The figures each kind of alert carries (the Protobuf ``Alert`` has a message per kind)."""


def number_text(value: float) -> str:
    """A figure that is a number of the configuration (seconds) as exact text."""
    return str(int(value)) if value.is_integer() else repr(value)


class AlertListener(Protocol):
    """Receives every alert the detector raises (the gateway's hub, the Kafka publisher).

    ``publish`` must not block: a listener that cannot keep up applies its own explicit
    policy (the gateway drops slow browsers, counted), never slowing the detector.
    """

    def publish(self, alerts: list[Alert]) -> None: ...


@runtime_checkable
class OutcomeListener(Protocol):
    """Also receives what happened after alerts (the gateway's hub); must not block."""

    def publish_outcomes(self, outcomes: list[Outcome]) -> None: ...
