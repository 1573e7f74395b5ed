"""What a notification says, and how a webhook request is signed (pure, no I/O).

The webhook scheme (documented in the README): the body is the JSON of
:func:`webhook_body`; the request carries

* ``X-Marketd-Timestamp: <unix seconds>`` (when this attempt was sent), and
* ``X-Marketd-Signature: sha256=<hex>``, the HMAC-SHA256, keyed with the notifier's
  ``secret``, of the bytes ``<timestamp>.<body>`` (the timestamp header's value, one
  ``.``, then the exact body bytes).

A receiver recomputes the HMAC over the raw body it received, compares in constant time,
and refuses a timestamp too far from its own clock (a replayed request). Retries of one
alert carry a new timestamp and signature, the same body (``alert.id`` identifies it).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from marketd.alerts.model import Alert, AlertKind, Direction

SIGNATURE_HEADER = "X-Marketd-Signature"
TIMESTAMP_HEADER = "X-Marketd-Timestamp"
WEBHOOK_VERSION = 1

_MOVE = {Direction.UP: "pump", Direction.DOWN: "dump"}
_ARROW = {Direction.UP: "▲", Direction.DOWN: "▼"}


def tradingview_url(alert: Alert) -> str:
    """The alert's TradingView chart, as the UI links it: ``BINANCE:<SYMBOL>``, plus ``.P``
    for USD-M perpetuals (not for spot pairs, nor dated delivery contracts such as
    ``BTCUSDT_260626``)."""
    perpetual = alert.market == "usdm" and "_" not in alert.symbol
    suffix = ".P" if perpetual else ""
    return f"https://www.tradingview.com/chart/?symbol=BINANCE:{alert.symbol}{suffix}"


def headline(alert: Alert) -> str:
    """``▲ BTCUSDT usdm pump +3.21% at 65000.10``, and per kind:
    ``▲ BTCUSDT usdm volume x7.31 (+1.20%) at 65000.10``,
    ``▼ BTCUSDT usdm longs liquidated 1250000.5 (3 orders) at 64000``,
    ``▲ BTCUSDT usdm premium +0.85% (mark 65000, index 64450)``,
    ``▲ BTCUSDT usdm funding rate +0.2500% (mark 65000)``."""
    arrow, f = _ARROW[alert.direction], alert.figures
    head = f"{arrow} {alert.symbol} {alert.market}"
    if alert.kind is AlertKind.VOLUME:
        move = f"{alert.change_pct:+.2f}%"
        return f"{head} volume x{f.get('ratio', '?')} ({move}) at {alert.price}"
    if alert.kind is AlertKind.LIQUIDATION:
        who = "longs" if f.get("side") == "SELL" else "shorts"
        count = f.get("count", "?")
        orders = "order" if count == "1" else "orders"
        return (
            f"{head} {who} liquidated {f.get('notional', '?')} ({count} {orders}) at {alert.price}"
        )
    if alert.kind is AlertKind.PREMIUM:
        index = f.get("index_price", alert.base_price)
        return f"{head} premium {alert.change_pct:+.2f}% (mark {alert.price}, index {index})"
    if alert.kind is AlertKind.FUNDING:
        return f"{head} funding rate {alert.change_pct:+.4f}% (mark {alert.price})"
    move = _MOVE[alert.direction]
    return f"{head} {move} {alert.change_pct:+.2f}% at {alert.price}"


def rule_line(alert: Alert) -> str:
    """``rule default: > 2% in 60s`` (the window and threshold when the alert knows them);
    ``rule big-volume (volume, 60s window)`` for the other kinds."""
    if alert.kind is not AlertKind.PRICE:
        window = f", {alert.window_s:g}s window" if alert.window_s else ""
        if alert.kind in (AlertKind.PREMIUM, AlertKind.FUNDING):
            window = f", beyond {alert.threshold_pct:g}%" if alert.threshold_pct else ""
        return f"rule {alert.rule} ({alert.kind.value}{window})"
    if alert.window_s and alert.threshold_pct:
        return f"rule {alert.rule}: > {alert.threshold_pct:g}% in {alert.window_s:g}s"
    if alert.window_s:
        return f"rule {alert.rule}: window {alert.window_s:g}s"
    return f"rule {alert.rule}"


def alert_lines(alert: Alert) -> tuple[str, str, str]:
    """The three lines every service shows: headline, rule, chart link."""
    return headline(alert), rule_line(alert), tradingview_url(alert)


def plain_text(alert: Alert) -> str:
    return "\n".join(alert_lines(alert))


def webhook_payload(alert: Alert, notifier: str) -> dict[str, Any]:
    """The webhook's JSON document: the alert as the gateway pushes it, plus its rule's
    window and threshold, the chart link and the text the chat services get."""
    return {
        "version": WEBHOOK_VERSION,
        "notifier": notifier,
        "alert": {**alert.to_json(), "threshold_pct": alert.threshold_pct},
        "tradingview_url": tradingview_url(alert),
        "text": plain_text(alert),
    }


def webhook_body(alert: Alert, notifier: str) -> bytes:
    return orjson.dumps(webhook_payload(alert, notifier))


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of b"<timestamp>." + body, keyed with secret>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()
