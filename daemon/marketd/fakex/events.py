"""The fake market's events: a trade and a depth diff, as the model makes them (pure)."""

from __future__ import annotations

import msgspec


class TradeEvent(msgspec.Struct, frozen=True, gc=False):
    """One aggregate trade: raw trades ``first_id .. first_id+len(qtys)-1`` at one price."""

    agg_id: int
    first_id: int
    price: int
    qtys: list[int]
    time: int
    buyer_maker: bool


class DepthEvent(msgspec.Struct, frozen=True, gc=False):
    """One depth diff ``U..u`` (``pu`` = previous ``u``); levels are ``(price, qty)``."""

    first_id: int
    last_id: int
    prev_id: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    time: int
    best_changed: bool
