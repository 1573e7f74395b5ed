"""Daemon settings and ``marketd run`` configs that point at a running fake exchange.

Two fakes exist: the in-process one (``marketd.fakex.FakeExchange``, its URLs from the
method ``urls()``) and the subprocess one (``marketd.testing.processes.FakeExchangeProcess``, its
URLs in the dict attribute ``urls``, read from its first stdout line). Both serve the
same four endpoints; :func:`exchange_urls` takes either, so every test builds the
``binance`` block the same way and a new URL setting is added in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from marketd.config.settings import ExchangeSettings
from marketd.fakex import FakeExchange as InProcessExchange
from marketd.testing.processes import FakeExchangeProcess as ExchangeProcess
from marketd.testing.processes import http_json

# The ``binance`` settings that locate an exchange (the control URL is the fake's own).
EXCHANGE_URL_KEYS = ("spot_ws_url", "spot_rest_url", "futures_ws_url", "futures_rest_url")

# The end-to-end tests inject drops and shutdowns and check that nothing is lost: a stale
# connection is noticed within seconds and replaced at once, not after production's
# 30 s staleness and multi-second backoff, so the scenarios stay short.
FAST_RECOVERY: dict[str, Any] = {
    "stale_after_s": 5.0,
    "reconnect": {"initial_s": 0.05, "max_s": 0.5},
}


def exchange_urls(fx: InProcessExchange | ExchangeProcess) -> dict[str, str]:
    """The fake's WebSocket and REST base URLs, keyed as in ``ExchangeSettings``."""
    urls = fx.urls() if callable(fx.urls) else fx.urls
    return {key: urls[key] for key in EXCHANGE_URL_KEYS}


def binance_settings(fx: InProcessExchange | ExchangeProcess, **overrides: Any) -> ExchangeSettings:
    """``ExchangeSettings`` for in-process components (feeds, backfill, the daemon object)
    against the fake; ``overrides`` set any other field."""
    return ExchangeSettings(**exchange_urls(fx), **overrides)


def binance_config(fx: InProcessExchange | ExchangeProcess, **extra: Any) -> dict[str, Any]:
    """The ``binance:`` section of a ``marketd run`` YAML config pointing at the fake."""
    return {**exchange_urls(fx), **extra}


def collector_config(
    fx: ExchangeProcess, *, bootstrap: str, topics: Mapping[str, str], symbols: Sequence[str]
) -> dict[str, Any]:
    """A whole ``marketd run`` config collecting ``symbols`` from the fake into Kafka:
    spot trade + depth@100ms, USD-M aggTrade + ``!miniTicker@arr``, fast recovery, JSON
    logs with statistics every second, a 20 s shutdown grace. Callers add sections (the
    spool, alerts) or change keys in the returned dict."""
    return {
        "binance": binance_config(fx, **copy.deepcopy(FAST_RECOVERY)),
        "subscriptions": [
            {"market": "spot", "symbols": list(symbols), "channels": ["trade", "depth@100ms"]},
            {
                "market": "usdm",
                "symbols": list(symbols),
                "channels": ["aggTrade"],
                "streams": ["!miniTicker@arr"],
            },
        ],
        "kafka": {"bootstrap_servers": bootstrap, "topics": dict(topics)},
        "log": {"format": "json", "stats_interval_s": 1.0},
        "shutdown": {"grace_s": 20.0},
    }


def alerts_of(base: str, symbol: str) -> list[dict[str, Any]]:
    """The alerts of ``symbol`` a running daemon's gateway serves on ``/api/alerts``."""
    status, body = http_json(base + "/api/alerts?limit=100")
    assert status == 200, body
    return [a for a in body["alerts"] if a["symbol"] == symbol]
