"""JSON payloads exactly as Binance prints them, built as strings (the hot path; no trio).

One ``SymbolFrames`` per (market, symbol) holds the pre-computed pieces. Prices and
quantities are integers (ticks, lots) turned into fixed-decimal strings without floats:
spot prints 8 decimals, futures the symbol's own precision.
"""

from __future__ import annotations

from collections.abc import Callable

from marketd.data.records import Market
from marketd.fakex.candles import Candle
from marketd.fakex.events import DepthEvent, TradeEvent
from marketd.fakex.liquidations import Liquidation
from marketd.fakex.market import SymbolModel, TickerStats
from marketd.fakex.windows import WindowStats

DAY_MS = 86_400_000
FUNDING_MS = 8 * 3_600_000
SPOT_DECIMALS = 8


def decimal_formatter(decimals: int, out_decimals: int) -> Callable[[int], str]:
    """``f(units)`` → the decimal string of ``units * 10**-decimals`` with ``out_decimals``."""
    if out_decimals < decimals:
        raise ValueError("cannot print fewer decimals than the grid has")
    pad = "0" * (out_decimals - decimals)
    if decimals == 0:
        tail = "." + pad if pad else ""

        def fmt_int(v: int) -> str:
            return ("-" if v < 0 else "") + str(abs(v)) + tail

        return fmt_int
    scale = 10**decimals

    def fmt(v: int) -> str:
        sign = "-" if v < 0 else ""
        q, r = divmod(abs(v), scale)
        return f"{sign}{q}.{str(r + scale)[1:]}{pad}"

    return fmt


def _levels(
    fmt_p: Callable[[int], str], fmt_q: Callable[[int], str], lv: list[tuple[int, int]]
) -> str:
    return ",".join([f'["{fmt_p(p)}","{fmt_q(q)}"]' for p, q in lv])


def _bool(b: bool) -> str:
    return "true" if b else "false"


class SymbolFrames:
    """Formats one symbol's payloads for one market."""

    def __init__(self, model: SymbolModel) -> None:
        spec = model.spec
        self.model = model
        self.symbol = spec.symbol
        self.futures = model.market is Market.USDM
        pd, qd = spec.price_decimals, spec.qty_decimals
        self.fmt_p = decimal_formatter(pd, pd if self.futures else SPOT_DECIMALS)
        self.fmt_q = decimal_formatter(qd, qd if self.futures else SPOT_DECIMALS)
        # quote volume = ticks * lots has pd + qd decimals; print 8 (spot) or pd+qd (futures).
        self.fmt_quote = decimal_formatter(
            pd + qd, max(pd + qd, 8) if not self.futures else pd + qd
        )
        # An average price is not on the tick grid: printed to the market's price decimals.
        self.avg_decimals = pd if self.futures else max(pd, SPOT_DECIMALS)
        self.fmt_avg = decimal_formatter(self.avg_decimals, self.avg_decimals)

    # -- trades ---------------------------------------------------------------------------

    def trades(self, ev: TradeEvent, now_ms: int) -> list[str]:
        """Spot ``trade`` payloads, one per raw trade."""
        p = self.fmt_p(ev.price)
        m = _bool(ev.buyer_maker)
        s, fq, t, tid = self.symbol, self.fmt_q, ev.time, ev.first_id
        return [
            f'{{"e":"trade","E":{now_ms},"s":"{s}","t":{tid + i},"p":"{p}","q":"{fq(q)}",'
            f'"T":{t},"m":{m},"M":true}}'
            for i, q in enumerate(ev.qtys)
        ]

    def agg_trade(self, ev: TradeEvent, now_ms: int) -> str:
        q = self.fmt_q(sum(ev.qtys))
        last = ev.first_id + len(ev.qtys) - 1
        m = _bool(ev.buyer_maker)
        head = (
            f'{{"e":"aggTrade","E":{now_ms},"s":"{self.symbol}","a":{ev.agg_id},'
            f'"p":"{self.fmt_p(ev.price)}","q":"{q}"'
        )
        if self.futures:
            return f'{head},"nq":"{q}","f":{ev.first_id},"l":{last},"T":{ev.time},"m":{m}}}'
        return f'{head},"f":{ev.first_id},"l":{last},"T":{ev.time},"m":{m},"M":true}}'

    # -- book -----------------------------------------------------------------------------

    def depth(self, ev: DepthEvent, now_ms: int) -> str:
        b = _levels(self.fmt_p, self.fmt_q, ev.bids)
        a = _levels(self.fmt_p, self.fmt_q, ev.asks)
        if self.futures:
            return (
                f'{{"e":"depthUpdate","E":{now_ms},"T":{ev.time},"s":"{self.symbol}",'
                f'"U":{ev.first_id},"u":{ev.last_id},"pu":{ev.prev_id},"b":[{b}],"a":[{a}]}}'
            )
        return (
            f'{{"e":"depthUpdate","E":{now_ms},"s":"{self.symbol}",'
            f'"U":{ev.first_id},"u":{ev.last_id},"b":[{b}],"a":[{a}]}}'
        )

    def book_ticker(self, update_id: int, now_ms: int) -> str:
        bb, bq, ba, aq = self.model.top()
        fp, fq = self.fmt_p, self.fmt_q
        body = f'"s":"{self.symbol}","b":"{fp(bb)}","B":"{fq(bq)}","a":"{fp(ba)}","A":"{fq(aq)}"}}'
        if self.futures:
            return f'{{"e":"bookTicker","u":{update_id},"E":{now_ms},"T":{now_ms},{body}'
        return f'{{"u":{update_id},{body}'

    # -- tickers --------------------------------------------------------------------------

    def mini_ticker(self, now_ms: int) -> str:
        st = self.model.stats
        fp = self.fmt_p
        return (
            f'{{"e":"24hrMiniTicker","E":{now_ms},"s":"{self.symbol}","c":"{fp(st.last)}",'
            f'"o":"{fp(st.open)}","h":"{fp(st.high)}","l":"{fp(st.low)}",'
            f'"v":"{self.fmt_q(st.volume)}","q":"{self.fmt_quote(st.quote_volume)}"}}'
        )

    def ticker(self, now_ms: int) -> str:
        st: TickerStats = self.model.stats
        fp, fq = self.fmt_p, self.fmt_q
        change = st.last - st.open
        pct = f"{change * 100 / st.open:.3f}"
        wavg = st.quote_volume // st.volume if st.volume else st.last
        common = (
            f'"p":"{fp(change)}","P":"{pct}","w":"{fp(wavg)}"'
            if self.futures
            else f'"p":"{fp(change)}","P":"{pct}","w":"{fp(wavg)}","x":"{fp(st.open)}"'
        )
        book = ""
        if not self.futures:
            bb, bq, ba, aq = self.model.top()
            book = f'"b":"{fp(bb)}","B":"{fq(bq)}","a":"{fp(ba)}","A":"{fq(aq)}",'
        first, last = (st.first_id, st.last_id) if st.count else (-1, -1)
        return (
            f'{{"e":"24hrTicker","E":{now_ms},"s":"{self.symbol}",{common},'
            f'"c":"{fp(st.last)}","Q":"{fq(st.last_qty)}",{book}'
            f'"o":"{fp(st.open)}","h":"{fp(st.high)}","l":"{fp(st.low)}",'
            f'"v":"{fq(st.volume)}","q":"{self.fmt_quote(st.quote_volume)}",'
            f'"O":{now_ms - DAY_MS},"C":{now_ms},"F":{first},"L":{last},"n":{st.count}}}'
        )

    def mark_price(self, now_ms: int) -> str:
        model = self.model
        mark = model.mark_price()
        index = model.index_price(now_ms)
        fp = self.fmt_p
        funding = (now_ms // FUNDING_MS + 1) * FUNDING_MS
        rate = model.funding_rate(index)
        return (
            f'{{"e":"markPriceUpdate","E":{now_ms},"s":"{self.symbol}","p":"{fp(mark)}",'
            f'"i":"{fp(index)}","P":"{fp(mark)}","r":"{rate:.8f}","T":{funding}}}'
        )

    # -- the timed kinds (fakex.timed) ----------------------------------------------------

    def kline(self, c: Candle, interval: str, closed: bool, now_ms: int) -> str:
        fp, fq, fquote, s = self.fmt_p, self.fmt_q, self.fmt_quote, self.symbol
        return (
            f'{{"e":"kline","E":{now_ms},"s":"{s}","k":{{"t":{c.open_time},'
            f'"T":{c.close_time},"s":"{s}","i":"{interval}","f":{c.first_id},'
            f'"L":{c.last_id},"o":"{fp(c.open)}","c":"{fp(c.close)}","h":"{fp(c.high)}",'
            f'"l":"{fp(c.low)}","v":"{fq(c.volume)}","n":{c.count},"x":{_bool(closed)},'
            f'"q":"{fquote(c.quote)}","V":"{fq(c.taker_volume)}",'
            f'"Q":"{fquote(c.taker_quote)}","B":"0"}}}}'
        )

    def average(self, quote: int, volume: int) -> str:
        """``quote / volume`` (ticks) printed exactly, truncated to ``avg_decimals``."""
        shift = 10 ** (self.avg_decimals - self.model.spec.price_decimals)
        return self.fmt_avg(quote * shift // volume)

    def avg_price(self, average: str, last_trade_ms: int, now_ms: int) -> str:
        return (
            f'{{"e":"avgPrice","E":{now_ms},"s":"{self.symbol}","i":"5m","w":"{average}",'
            f'"T":{last_trade_ms}}}'
        )

    def window_ticker(self, kind: str, st: WindowStats, now_ms: int) -> str:
        """A spot rolling-window ticker (``kind``: 1hTicker, 4hTicker, 1dTicker)."""
        fp = self.fmt_p
        change = st.close - st.open
        return (
            f'{{"e":"{kind}","E":{now_ms},"s":"{self.symbol}","p":"{fp(change)}",'
            f'"P":"{change * 100 / st.open:.3f}","o":"{fp(st.open)}","h":"{fp(st.high)}",'
            f'"l":"{fp(st.low)}","c":"{fp(st.close)}","w":"{self.average(st.quote, st.volume)}",'
            f'"v":"{self.fmt_q(st.volume)}","q":"{self.fmt_quote(st.quote)}",'
            f'"O":{st.open_time},"C":{now_ms},"F":{st.first_id},"L":{st.last_id},'
            f'"n":{st.count}}}'
        )

    def partial_depth(
        self, levels: int, first_id: int, last_id: int, prev_id: int, time_ms: int, now_ms: int
    ) -> str:
        """The top ``levels`` of the true book now: spot ``{lastUpdateId,bids,asks}``, USD-M
        diff-shaped with ``U``/``u``/``pu`` of the diffs since the stream's previous push."""
        book = self.model.book
        b = _levels(self.fmt_p, self.fmt_q, book.bids.top(levels))
        a = _levels(self.fmt_p, self.fmt_q, book.asks.top(levels))
        if self.futures:
            return (
                f'{{"e":"depthUpdate","E":{now_ms},"T":{time_ms},"s":"{self.symbol}",'
                f'"U":{first_id},"u":{last_id},"pu":{prev_id},"b":[{b}],"a":[{a}]}}'
            )
        return f'{{"lastUpdateId":{last_id},"bids":[{b}],"asks":[{a}]}}'

    def force_order(self, liq: Liquidation, now_ms: int) -> str:
        q = self.fmt_q(liq.quantity)
        return (
            f'{{"e":"forceOrder","E":{now_ms},"o":{{"s":"{self.symbol}","S":"{liq.side}",'
            f'"o":"LIMIT","f":"IOC","q":"{q}","p":"{self.fmt_p(liq.price)}",'
            f'"ap":"{self.fmt_p(liq.average_price)}","X":"FILLED","l":"{q}","z":"{q}",'
            f'"T":{liq.time}}}}}'
        )


def combined(stream: str, payload: str) -> str:
    """Wrap a payload as a combined-stream frame."""
    return f'{{"stream":"{stream}","data":{payload}}}'


def combined_prefix(stream: str) -> str:
    """``prefix + payload + "}"`` is the combined frame (saves a format per frame)."""
    return f'{{"stream":"{stream}","data":'


def array_payload(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def server_shutdown(now_ms: int) -> str:
    return f'{{"e":"serverShutdown","E":{now_ms}}}'
