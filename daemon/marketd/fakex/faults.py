"""Frames for the ``malformed`` / ``unknown_event`` / ``server_shutdown`` faults (pure)."""

from __future__ import annotations

from marketd.fakex.frames import combined, server_shutdown
from marketd.fakex.protocol import Channel, StreamRef

_EVENT_OF: dict[Channel, str] = {
    Channel.TRADE: "trade",
    Channel.AGG_TRADE: "aggTrade",
    Channel.DEPTH: "depthUpdate",
    Channel.BOOK_TICKER: "bookTicker",
    Channel.MINI_TICKER: "24hrMiniTicker",
    Channel.TICKER: "24hrTicker",
    Channel.MARK_PRICE: "markPriceUpdate",
    Channel.MARK_PRICE_1S: "markPriceUpdate",
    Channel.ALL_MINI_TICKERS: "24hrMiniTicker",
    Channel.ALL_MARK_PRICES: "markPriceUpdate",
    Channel.ALL_MARK_PRICES_1S: "markPriceUpdate",
}

MALFORMED_KINDS = ("not_json", "truncated", "wrong_types", "missing_fields")


def _wrap(stream: StreamRef | None, payload: str, is_combined: bool) -> str:
    if is_combined:
        return combined(stream.name if stream else "btcusdt@trade", payload)
    return payload


def malformed_frames(
    count: int, stream: StreamRef | None, symbol: str, now_ms: int, *, is_combined: bool
) -> list[str]:
    """``count`` broken frames cycling through ``MALFORMED_KINDS``."""
    event = _EVENT_OF[stream.channel] if stream else "trade"
    out: list[str] = []
    for i in range(count):
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        if kind == "not_json":
            out.append("this is not JSON {")
        elif kind == "truncated":
            full = _wrap(
                stream, f'{{"e":"{event}","E":{now_ms},"s":"{symbol}","t":1}}', is_combined
            )
            out.append(full[: len(full) // 2])
        elif kind == "wrong_types":
            payload = (
                f'{{"e":"{event}","E":"abc","s":12345,"t":"abc","a":"abc","U":"x","u":null,'
                f'"pu":"y","p":1.5,"q":null,"b":"nope","T":"abc","m":"no"}}'
            )
            out.append(_wrap(stream, payload, is_combined))
        else:
            out.append(_wrap(stream, f'{{"e":"{event}","E":{now_ms}}}', is_combined))
    return out


def unknown_event_frames(
    count: int, stream: StreamRef | None, symbol: str, now_ms: int, *, is_combined: bool
) -> list[str]:
    payload = f'{{"e":"fakeUnknownEvent","E":{now_ms},"s":"{symbol}","x":1}}'
    return [_wrap(stream, payload, is_combined) for _ in range(count)]


def shutdown_frame(now_ms: int, *, is_combined: bool) -> str:
    """Binance's ``serverShutdown``: on combined streams under the name ``!serverShutdown``."""
    payload = server_shutdown(now_ms)
    return combined("!serverShutdown", payload) if is_combined else payload
