"""Synthetic USD-M liquidations (pure: no trio, no clock).

The fake's traders hold no positions, so liquidations are made up, but plausibly: a
liquidated long is a SELL filled at the best bid with a limit price a few ticks below it
(a short: a BUY at the best ask, limit above), of up to one book level's worth of lots,
FILLED at once as an IOC limit order, as Binance prints them. Each symbol has its own
random stream, seeded apart from the market model's, so subscribing to liquidations never
changes the trades and diffs the model makes.
"""

from __future__ import annotations

import random

import attrs

# The chance that a watched symbol has a liquidation in a given second (Binance pushes at
# most one per symbol per second, the latest).
LIQUIDATION_PROBABILITY = 0.5
MAX_SLIPPAGE_TICKS = 10


@attrs.frozen
class Liquidation:
    side: str  # "SELL" (a long liquidated) or "BUY"
    price: int  # the order's limit price, ticks
    average_price: int  # the fill, ticks
    quantity: int  # lots
    time: int


class LiquidationMaker:
    def __init__(self, seed: int, market: str, symbol: str) -> None:
        self.rng = random.Random(f"{seed}:{market}:{symbol}:liquidations")

    def next(self, best_bid: int, best_ask: int, max_lot: int, now_ms: int) -> Liquidation | None:
        """This second's liquidation, if any."""
        rng = self.rng
        if rng.random() >= LIQUIDATION_PROBABILITY:
            return None
        slip = rng.randint(1, MAX_SLIPPAGE_TICKS)
        quantity = rng.randint(1, max_lot)
        if rng.random() < 0.5:
            return Liquidation("SELL", max(1, best_bid - slip), best_bid, quantity, now_ms)
        return Liquidation("BUY", best_ask + slip, best_ask, quantity, now_ms)
