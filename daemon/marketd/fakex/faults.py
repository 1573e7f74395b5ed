"""Frames for the ``malformed`` / ``unknown_event`` / ``server_shutdown`` / ``fuzz`` faults (pure).

The ``fuzz`` mutations live in :mod:`marketd.fakex.fuzz`; here are the valid frames they
start from (``fuzz_bases``).
"""

from __future__ import annotations

from collections.abc import Sequence

from marketd.data.records import Market
from marketd.fakex.candles import Candle, candle_span
from marketd.fakex.events import DepthEvent, TradeEvent
from marketd.fakex.frames import SymbolFrames, array_payload, combined, server_shutdown
from marketd.fakex.fuzz import FuzzBase
from marketd.fakex.history import RawTrade
from marketd.fakex.hub import MarketHub
from marketd.fakex.liquidations import Liquidation
from marketd.fakex.protocol import Channel, StreamRef, route_of
from marketd.fakex.windows import WindowStats

_EVENT_OF: dict[Channel, str] = {
    Channel.TRADE: "trade",
    Channel.AGG_TRADE: "aggTrade",
    Channel.DEPTH: "depthUpdate",
    Channel.BOOK_TICKER: "bookTicker",
    Channel.MINI_TICKER: "24hrMiniTicker",
    Channel.TICKER: "24hrTicker",
    Channel.MARK_PRICE: "markPriceUpdate",
    Channel.MARK_PRICE_1S: "markPriceUpdate",
    Channel.KLINE: "kline",
    Channel.AVG_PRICE: "avgPrice",
    Channel.PARTIAL_DEPTH: "depthUpdate",  # spot's has no event type: a known one breaks it
    Channel.LIQUIDATION: "forceOrder",
    Channel.ALL_MINI_TICKERS: "24hrMiniTicker",
    Channel.ALL_TICKERS: "24hrTicker",
    Channel.ALL_BOOK_TICKERS: "bookTicker",
    Channel.ALL_MARK_PRICES: "markPriceUpdate",
    Channel.ALL_MARK_PRICES_1S: "markPriceUpdate",
    Channel.ALL_LIQUIDATIONS: "forceOrder",
}


def _event_of(stream: StreamRef | None) -> str:
    if stream is None:
        return "trade"
    if stream.channel is Channel.WINDOW_TICKER:
        return f"{stream.variant}Ticker"
    return _EVENT_OF[stream.channel]


MALFORMED_KINDS = ("not_json", "truncated", "wrong_types", "missing_fields")


def _wrap(stream: StreamRef | None, payload: str, is_combined: bool) -> str:
    if is_combined:
        return combined(stream.name if stream else "btcusdt@trade", payload)
    return payload


def malformed_frames(
    count: int, stream: StreamRef | None, symbol: str, now_ms: int, *, is_combined: bool
) -> list[str]:
    """``count`` broken frames cycling through ``MALFORMED_KINDS``."""
    event = _event_of(stream)
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


def _payload(fr: SymbolFrames, ref: StreamRef, now_ms: int) -> str:
    """A valid payload of ``ref``'s channel for ``fr``'s symbol, as the fake prints it."""
    channel = ref.channel
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
    if channel is Channel.KLINE:
        candle = Candle(*candle_span(ref.variant, now_ms), last)
        candle.add(RawTrade(70, last, 3, now_ms, False))
        return fr.kline(candle, ref.variant, False, now_ms)
    if channel is Channel.AVG_PRICE:
        return fr.avg_price(fr.average(last * 3, 3), now_ms, now_ms)
    if channel is Channel.WINDOW_TICKER:
        stats = WindowStats(
            now_ms - 3_600_000, 70, 71, last, last, last, last, 7, last * 7, 2, now_ms
        )
        return fr.window_ticker(f"{ref.variant}Ticker", stats, now_ms)
    if channel is Channel.PARTIAL_DEPTH:
        levels = int(ref.variant.removeprefix("depth").partition("@")[0])
        return fr.partial_depth(levels, 100, 102, 99, now_ms, now_ms)
    if channel in (Channel.LIQUIDATION, Channel.ALL_LIQUIDATIONS):
        return fr.force_order(Liquidation("SELL", max(last - 1, 1), last, 3, now_ms), now_ms)
    return fr.mark_price(now_ms)  # MARK_PRICE*, ALL_MARK_PRICES*


# All-market streams whose every frame carries one event (not an array).
_ONE_PER_FRAME = frozenset({Channel.ALL_BOOK_TICKERS, Channel.ALL_LIQUIDATIONS})


def fuzz_bases(hub: MarketHub, refs: Sequence[StreamRef], now_ms: int) -> list[FuzzBase]:
    """One valid frame per stream of ``refs`` (none: the market's first symbol's trades)."""
    if not refs:
        channel = Channel.TRADE if hub.market is Market.SPOT else Channel.AGG_TRADE
        name = f"{hub.model.symbols[0].spec.stream_symbol}@{channel.value}"
        refs = [StreamRef(name, channel, 0, route_of(hub.market, channel))]
    out = []
    for ref in refs:
        if ref.symbol >= 0 or ref.channel in _ONE_PER_FRAME:
            fr = hub.frames[max(ref.symbol, 0)]
            out.append(FuzzBase(ref.name, _payload(fr, ref, now_ms)))
            continue
        items = [_payload(fr, ref, now_ms) for fr in hub.frames[:FUZZ_ARRAY_ITEMS]]
        out.append(FuzzBase(ref.name, array_payload(items)))
    return out
