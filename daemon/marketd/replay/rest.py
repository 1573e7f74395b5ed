"""The REST market-data endpoints a replay answers, from its state at the clock (pure).

Binance's paths and shapes (spot ``/api/v3/...``, USD-M ``/fapi/v1/...``): ``ping``,
``time`` (the replay's clock), ``exchangeInfo`` (the recorded symbols), ``depth``,
``trades``, ``historicalTrades``, ``aggTrades``, ``klines``, ``ticker/24hr``,
``ticker/price``, ``ticker/bookTicker``, spot ``avgPrice`` and USD-M ``premiumIndex``.

``depth`` answers the first snapshot marketd received at or after the clock when one was
read ahead (that is what the exchange answered then; its ``lastUpdateId`` may lie ahead of
the diffs sent so far, which a client handles as it does on Binance), else the replay's
own book when it is unbroken, else 503 (code -1008: try again). Trades, klines and
tickers come from the trades held (:mod:`.trades`): a ``fromId`` that cannot be served
whole is a 400 (code -1128), never an answer that silently starts later. No weight is
charged: a replay has no rate limits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import attrs
import orjson

from marketd.data.records import Market
from marketd.replay.state import MarketState, SymbolState
from marketd.replay.trades import Trade, Unavailable, plain, quote

_INTERVALS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_INTERVAL = re.compile(r"([0-9]{1,2})([smhdw])")
# 1M (a calendar month) is not served.
_KNOWN_INTERVALS = frozenset(
    ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
)
_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


@attrs.frozen
class Reply:
    status: int
    body: bytes


class RestError(Exception):
    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def _int(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    text = query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise RestError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def _limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    limit = _int(query, "limit", default) or default
    return max(1, min(limit, maximum))


def _ms(clock_ns: int) -> int:
    return clock_ns // 1_000_000


def _split(symbol: str) -> tuple[str, str]:
    for asset in _QUOTES:
        if symbol.endswith(asset) and len(symbol) > len(asset):
            return symbol[: -len(asset)], asset
    return symbol[:-4], symbol[-4:]


def _decimals(text: str) -> int:
    return len(text.partition(".")[2].rstrip("0"))


class ReplayRest:
    def __init__(self, state: MarketState) -> None:
        self.state = state
        self.market = state.market
        spot = self.market is Market.SPOT
        self.spot = spot
        v1 = "/api/v3" if spot else "/fapi/v1"
        routes: dict[str, Callable[[Mapping[str, str], int], Any]] = {
            f"{v1}/ping": lambda q, now: {},
            f"{v1}/time": lambda q, now: {"serverTime": _ms(now)},
            f"{v1}/exchangeInfo": self._exchange_info,
            f"{v1}/depth": self._depth,
            f"{v1}/trades": self._trades,
            f"{v1}/historicalTrades": self._historical_trades,
            f"{v1}/aggTrades": self._agg_trades,
            f"{v1}/klines": self._klines,
            f"{v1}/ticker/24hr": self._ticker_24h,
            f"{v1}/ticker/price": self._ticker_price,
            f"{v1}/ticker/bookTicker": self._book_ticker,
        }
        if spot:
            routes[f"{v1}/uiKlines"] = self._klines
            routes[f"{v1}/avgPrice"] = self._avg_price
        else:
            routes["/fapi/v2/ticker/price"] = self._ticker_price
            routes[f"{v1}/premiumIndex"] = self._premium_index
        self._routes = routes

    def handle(self, path: str, query: Mapping[str, str], clock_ns: int) -> Reply:
        route = self._routes.get(path)
        if route is None:
            return Reply(404, b'{"code":-1,"msg":"Not found"}')
        try:
            return Reply(200, orjson.dumps(route(query, clock_ns)))
        except RestError as exc:
            return Reply(exc.status, orjson.dumps({"code": exc.code, "msg": exc.msg}))

    # -- symbols ----------------------------------------------------------------------------

    def _symbol(self, query: Mapping[str, str]) -> tuple[str, SymbolState]:
        name = query.get("symbol", "")
        if not name:
            raise RestError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        state = self.state.symbols.get(name.upper())
        if state is None:
            raise RestError(400, -1121, "Invalid symbol.")
        return name.upper(), state

    def _each(
        self, query: Mapping[str, str], now: int, one: Callable[[str, SymbolState, int], Any]
    ) -> Any:
        """``one`` for the symbol asked, or a list for every symbol when none is."""
        if query.get("symbol"):
            name, state = self._symbol(query)
            return one(name, state, now)
        rows = [one(n, s, now) for n, s in sorted(self.state.symbols.items())]
        return [r for r in rows if r is not None]

    def _exchange_info(self, query: Mapping[str, str], now: int) -> Any:
        symbols = []
        for name, state in sorted(self.state.symbols.items()):
            base, quote = _split(name)
            last = state.trades().last(_ms(now))
            price_decimals = _decimals(last.price) if last else 8
            qty_decimals = _decimals(last.quantity) if last else 8
            tick = plain(Decimal(1).scaleb(-price_decimals))
            step = plain(Decimal(1).scaleb(-qty_decimals))
            info: dict[str, Any] = {
                "symbol": name,
                "status": "TRADING",
                "baseAsset": base,
                "quoteAsset": quote,
                "pricePrecision": price_decimals,
                "quantityPrecision": qty_decimals,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": tick,
                        "maxPrice": "1000000",
                        "tickSize": tick,
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": step,
                        "maxQty": "9000000",
                        "stepSize": step,
                    },
                ],
            }
            if not self.spot:
                info["contractType"] = "PERPETUAL"
            symbols.append(info)
        return {"timezone": "UTC", "serverTime": _ms(now), "rateLimits": [],
                "exchangeFilters": [], "symbols": symbols}  # fmt: skip

    # -- books ------------------------------------------------------------------------------

    def _depth(self, query: Mapping[str, str], now: int) -> Any:
        name, state = self._symbol(query)
        limit = _limit(query, 100, 5000 if self.spot else 1000)
        recorded = self.state.snapshot_ahead(name, now, limit)
        if recorded is not None:
            body = dict(recorded.body)
            body["bids"] = body["bids"][:limit]
            body["asks"] = body["asks"][:limit]
            return body
        book = state.book
        if not book.synced or book.last_id is None:
            raise RestError(
                503,
                -1008,
                f"the replay has no book of {name} at this moment (no recorded snapshot "
                "ahead, and the recorded diffs are broken since the last one); try again",
            )
        levels = book.levels(limit)
        if levels is None:
            raise RestError(
                503,
                -1008,
                f"the replay knows fewer than {limit} levels of a side of {name} at this "
                "moment (the snapshots marketd recorded were shallower); ask for fewer "
                "levels or try again",
            )
        bids, asks = levels
        if self.spot:
            return {"lastUpdateId": book.last_id, "bids": bids, "asks": asks}
        return {"lastUpdateId": book.last_id, "E": book.event_ms, "T": book.transaction_ms,
                "bids": bids, "asks": asks}  # fmt: skip

    def _book_ticker(self, query: Mapping[str, str], now: int) -> Any:
        def one(name: str, state: SymbolState, now: int) -> Any:
            t = state.book_ticker
            if t is not None:
                row = {"symbol": name, "bidPrice": t["b"], "bidQty": t["B"], "askPrice": t["a"],
                       "askQty": t["A"]}  # fmt: skip
                if not self.spot:
                    row["time"] = t.get("T", t.get("E", _ms(now)))
                    row["lastUpdateId"] = t.get("u", 0)
                return row
            bid, ask = state.book.best() if state.book.synced else (None, None)
            if bid is None or ask is None:
                return None
            row = {"symbol": name, "bidPrice": bid[0], "bidQty": bid[1], "askPrice": ask[0],
                   "askQty": ask[1]}  # fmt: skip
            if not self.spot:
                row["time"] = state.book.transaction_ms
                row["lastUpdateId"] = state.book.last_id
            return row

        answer = self._each(query, now, one)
        if answer is None:
            raise RestError(503, -1008, "the replay has no best bid/ask of this symbol yet")
        return answer

    # -- trades -----------------------------------------------------------------------------

    def _agg_row(self, t: Trade) -> dict[str, Any]:
        row = {"a": t.id, "p": t.price, "q": t.quantity, "f": t.first_id, "l": t.last_id,
               "T": t.time_ms, "m": t.buyer_maker}  # fmt: skip
        if self.spot:
            row["M"] = True
        return row

    def _raw_row(self, t: Trade) -> dict[str, Any]:
        row = {"id": t.id, "price": t.price, "qty": t.quantity,
               "quoteQty": quote(Decimal(t.price) * Decimal(t.quantity)), "time": t.time_ms,
               "isBuyerMaker": t.buyer_maker}  # fmt: skip
        if self.spot:
            row["isBestMatch"] = True
        return row

    def _from_id(self, held: Any, from_id: int, limit: int, now: int) -> list[Trade]:
        try:
            trades: list[Trade] = held.from_id(from_id, limit, _ms(now))
        except Unavailable as exc:
            raise RestError(400, -1128, str(exc)) from None
        return trades

    def _agg_trades(self, query: Mapping[str, str], now: int) -> Any:
        _, state = self._symbol(query)
        limit = _limit(query, 500, 1000)
        from_id = _int(query, "fromId", None)
        start, end = _int(query, "startTime", None), _int(query, "endTime", None)
        if from_id is not None:
            trades = self._from_id(state.aggs, from_id, limit, now)
        elif start is not None or end is not None:
            lo = start if start is not None else (end or 0) - 3_600_000
            hi = end if end is not None else lo + 3_600_000
            trades = state.aggs.in_time(lo, hi, limit, _ms(now))
        else:
            trades = state.aggs.recent(limit, _ms(now))
        return [self._agg_row(t) for t in trades]

    def _trades(self, query: Mapping[str, str], now: int) -> Any:
        name, state = self._symbol(query)
        if not len(state.raws):
            raise RestError(400, -1128, f"the recording holds no raw trades of {name} "
                            f"(record {name.lower()}@trade to serve them)")  # fmt: skip
        limit = _limit(query, 500, 1000)
        return [self._raw_row(t) for t in state.raws.recent(limit, _ms(now))]

    def _historical_trades(self, query: Mapping[str, str], now: int) -> Any:
        _, state = self._symbol(query)
        limit = _limit(query, 500 if self.spot else 100, 1000 if self.spot else 500)
        from_id = _int(query, "fromId", None)
        if from_id is None:
            return self._trades(query, now)
        return [self._raw_row(t) for t in self._from_id(state.raws, from_id, limit, now)]

    def _klines(self, query: Mapping[str, str], now: int) -> Any:
        _, state = self._symbol(query)
        interval = query.get("interval", "")
        match = _INTERVAL.fullmatch(interval)
        if (
            match is None
            or interval not in _KNOWN_INTERVALS
            or (interval == "1s" and not self.spot)
        ):
            raise RestError(400, -1120, "Invalid interval.")
        interval_ms = int(match[1]) * _INTERVALS[match[2]]
        limit = _limit(query, 500, 1000 if self.spot else 1500)
        return state.trades().klines(
            interval_ms, _int(query, "startTime", None), _int(query, "endTime", None), limit,
            _ms(now),
        )  # fmt: skip

    # -- tickers ----------------------------------------------------------------------------

    def _ticker_24h(self, query: Mapping[str, str], now: int) -> Any:
        def one(name: str, state: SymbolState, now: int) -> Any:
            day = state.trades().day(_ms(now))
            if day is None:
                return None
            row: dict[str, Any] = {"symbol": name, **day}
            if self.spot:
                bid, ask = state.book.best() if state.book.synced else (None, None)
                row["prevClosePrice"] = day["openPrice"]
                row["bidPrice"], row["bidQty"] = bid or ["0", "0"]
                row["askPrice"], row["askQty"] = ask or ["0", "0"]
            return row

        answer = self._each(query, now, one)
        if answer is None:
            raise RestError(503, -1008, "the replay has no trade of this symbol yet")
        return answer

    def _ticker_price(self, query: Mapping[str, str], now: int) -> Any:
        def one(name: str, state: SymbolState, now: int) -> Any:
            last = state.trades().last(_ms(now))
            if last is None:
                return None
            row: dict[str, Any] = {"symbol": name, "price": last.price}
            if not self.spot:
                row["time"] = last.time_ms
            return row

        answer = self._each(query, now, one)
        if answer is None:
            raise RestError(503, -1008, "the replay has no trade of this symbol yet")
        return answer

    def _avg_price(self, query: Mapping[str, str], now: int) -> Any:
        _, state = self._symbol(query)
        end = _ms(now)
        trades = state.trades().in_time(end - 300_000, end, 1 << 30, end)
        if not trades:
            raise RestError(503, -1008, "the replay has no trade of this symbol in 5 minutes")
        volume = sum((Decimal(t.quantity) for t in trades), Decimal(0))
        quote = sum((Decimal(t.price) * Decimal(t.quantity) for t in trades), Decimal(0))
        price = plain(round(quote / volume, 8)) if volume else trades[-1].price
        return {"mins": 5, "price": price, "closeTime": trades[-1].time_ms}

    def _premium_index(self, query: Mapping[str, str], now: int) -> Any:
        def one(name: str, state: SymbolState, now: int) -> Any:
            m = state.mark
            if m is None:
                return None
            return {"symbol": name, "markPrice": m.get("p"), "indexPrice": m.get("i"),
                    "estimatedSettlePrice": m.get("P"), "lastFundingRate": m.get("r"),
                    "interestRate": "0.00010000", "nextFundingTime": m.get("T"),
                    "time": m.get("E")}  # fmt: skip

        answer = self._each(query, now, one)
        if answer is None:
            raise RestError(503, -1008, "the replay has no mark price of this symbol yet")
        return answer
