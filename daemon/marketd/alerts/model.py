"""Values shared by the detector, the alert publisher and the gateway (pure)."""

from __future__ import annotations

import enum
from typing import Any, Protocol

import attrs


class Direction(enum.Enum):
    UP = "up"  # a pump
    DOWN = "down"  # a dump


@attrs.frozen
class Alert:
    """One price jump on one symbol under one rule.

    ``id`` is stable and deduplicable: the same jump (symbol, market, rule, base and
    current event times) always gets the same id, so a replayed or re-detected alert can
    be recognised downstream. Prices are the exchange's decimal strings; ``change_pct``
    is rounded for display only (the prices are exact).
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

    def to_json(self) -> dict[str, Any]:
        """The JSON shape the gateway pushes and the API returns."""
        return {
            "id": self.id,
            "symbol": self.symbol,
            "market": self.market,
            "rule": self.rule,
            "direction": self.direction.value,
            "change_pct": self.change_pct,
            "price": self.price,
            "price_time_ms": self.price_time_ms,
            "base_price": self.base_price,
            "base_time_ms": self.base_time_ms,
            "detected_at_ms": self.detected_at_ms,
        }


class AlertListener(Protocol):
    """Receives every alert the detector raises (the gateway's hub, the Kafka publisher).

    ``publish`` must not block: a listener that cannot keep up applies its own explicit
    policy (the gateway drops slow browsers, counted), never slowing the detector.
    """

    def publish(self, alerts: list[Alert]) -> None: ...
