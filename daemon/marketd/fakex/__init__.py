"""A Binance-compatible fake exchange (WebSocket + REST on loopback) for tests, bench and demo.

async with open_fake_exchange(FakeExchangeConfig(symbols=5, seed=7)) as fx:
    fx.spot_ws_url, fx.futures_ws_url, fx.spot_rest_url, fx.futures_rest_url, fx.control_url
"""

from marketd.fakex.config import (
    FakeExchangeConfig,
    Fault,
    FaultKind,
    MarketLimits,
    PeriodicFault,
)
from marketd.fakex.server import FakeExchange, open_fake_exchange

__all__ = [
    "FakeExchange",
    "FakeExchangeConfig",
    "Fault",
    "FaultKind",
    "MarketLimits",
    "PeriodicFault",
    "open_fake_exchange",
]
