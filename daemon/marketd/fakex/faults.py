"""Frames for the ``malformed`` / ``unknown_event`` / ``server_shutdown`` / ``fuzz`` faults (pure).

The ``fuzz`` mutations live in :mod:`marketd.fakex.fuzz`; here are the valid frames they
start from (``fuzz_bases``).
"""

from __future__ import annotations

from collections.abc import Sequence

from marketd.fakex.events import DepthEvent, TradeEvent
from marketd.fakex.frames import SymbolFrames, array_payload, combined, server_shutdown
from marketd.fakex.fuzz import FuzzBase
from marketd.fakex.hub import MarketHub
from marketd.fakex.protocol import Channel, StreamRef, route_of
from marketd.pipeline.records import Market

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
    Channel.ALL_TICKERS: "24hrTicker",
    Channel.ALL_BOOK_TICKERS: "bookTicker",
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
    # A quiet stream carries nothing of the fake's; its damage looks like a trade's.
    event = _EVENT_OF.get(stream.channel, "trade") if stream else "trade"
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


# Items of an all-market array payload in a fuzz base.
FUZZ_ARRAY_ITEMS = 3


def _payload(fr: SymbolFrames, channel: Channel, now_ms: int) -> str:
    """A valid payload of ``channel`` for ``fr``'s symbol, as the fake prints it."""
    last = fr.model.stats.last
    trade = TradeEvent(7, 70, last, [3, 4], now_ms, True)
    if channel is Channel.TRADE:
        return fr.trades(trade, now_ms)[0]
    if channel is Channel.AGG_TRADE:
        return fr.agg_trade(trade, now_ms)
    if channel is Channel.DEPTH:
        bids = [(max(last - 1, 1), 5), (max(last - 2, 1), 0)]
        diff = DepthEvent(100, 102, 99, bids, [(last + 1, 4)], now_ms, False)
        return fr.depth(diff, now_ms)
    if channel in (Channel.BOOK_TICKER, Channel.ALL_BOOK_TICKERS):
        return fr.book_ticker(102, now_ms)
    if channel in (Channel.MINI_TICKER, Channel.ALL_MINI_TICKERS):
        return fr.mini_ticker(now_ms)
    if channel in (Channel.TICKER, Channel.ALL_TICKERS):
        return fr.ticker(now_ms)
    return fr.mark_price(now_ms)  # MARK_PRICE*, ALL_MARK_PRICES*


def fuzz_bases(hub: MarketHub, refs: Sequence[StreamRef], now_ms: int) -> list[FuzzBase]:
    """One valid frame per stream of ``refs`` (none: the market's first symbol's trades).

    Quiet streams carry nothing of the fake's, so there is nothing of theirs to damage."""
    refs = [r for r in refs if r.channel is not Channel.QUIET]
    if not refs:
        channel = Channel.TRADE if hub.market is Market.SPOT else Channel.AGG_TRADE
        name = f"{hub.model.symbols[0].spec.stream_symbol}@{channel.value}"
        refs = [StreamRef(name, channel, 0, route_of(hub.market, channel))]
    out = []
    for ref in refs:
        if ref.symbol >= 0 or ref.channel is Channel.ALL_BOOK_TICKERS:  # one event a message
            fr = hub.frames[max(ref.symbol, 0)]
            out.append(FuzzBase(ref.name, _payload(fr, ref.channel, now_ms)))
            continue
        items = [_payload(fr, ref.channel, now_ms) for fr in hub.frames[:FUZZ_ARRAY_ITEMS]]
        out.append(FuzzBase(ref.name, array_payload(items)))
    return out
