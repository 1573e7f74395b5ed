"""Binance's REST market-data endpoints over the fake market (pure: request in, reply out).

Bodies, weights and error codes follow Binance: ``X-MBX-USED-WEIGHT-1M`` counts the weight
used in the current wall-clock minute; past the budget the reply is 429 with ``Retry-After``.
The trade history is bounded (``FakeExchangeConfig.history``): a ``fromId`` older than what
is held gets 400 ``-1128``, never a page that silently starts later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson

from marketd.data.records import Market
from marketd.fakex.frames import SymbolFrames
from marketd.fakex.hub import MarketHub
from marketd.fakex.market import SymbolModel


@attrs.frozen
class RestReply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class RestError(Exception):
    """A Binance error reply; ``weight`` is charged as for a request that was served (a
    request refused for its parameters still costs 1, one refused for what it asks for
    costs the endpoint's weight)."""

    def __init__(self, status: int, code: int, msg: str, weight: int = 1) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg, self.weight = status, code, msg, weight


class WeightMeter:
    """Request weight used per wall-clock minute, as Binance counts it per IP."""

    def __init__(self, limit: int, ban_after: int = 0, ban_seconds: float = 120.0) -> None:
        self.limit = limit
        self.minute = -1
        self.used = 0
        self.rejected = 0
        self.rejected_this_minute = 0
        self.ban_after = ban_after
        self.ban_seconds = ban_seconds
        self.banned_until = 0.0  # Unix seconds
        self.banned = 0  # 418 replies
        self.peak = 0  # the most weight used in any one minute (incl. rejected requests)
        self.by_minute: dict[int, int] = {}  # minute → weight (the last 60 minutes)

    def charge(self, weight: int, now_s: float) -> int:
        minute = int(now_s // 60)
        if minute != self.minute:
            self.minute, self.used, self.rejected_this_minute = minute, 0, 0
            for old in [m for m in self.by_minute if m < minute - 60]:
                del self.by_minute[old]
        self.used += weight
        self.by_minute[minute] = self.used
        self.peak = max(self.peak, self.used)
        return self.used

    def reject(self, now_s: float) -> None:
        """Count a 429; past ``ban_after`` of them in a minute the IP is banned."""
        self.rejected += 1
        self.rejected_this_minute += 1
        if self.ban_after and self.rejected_this_minute >= self.ban_after:
            self.ban(self.ban_seconds, now_s)

    def ban(self, seconds: float, now_s: float) -> None:
        self.banned_until = max(self.banned_until, now_s + seconds)

    def ban_left(self, now_s: float) -> float:
        return max(0.0, self.banned_until - now_s)


def _depth_weight(market: Market, limit: int) -> int:
    if market is Market.SPOT:
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def _int(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 20:
        raise RestError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


class RestApi:
    """The REST endpoints of one market."""

    def __init__(
        self, hub: MarketHub, weight_limit: int, ban_after: int = 0, ban_seconds: float = 120.0
    ) -> None:
        self.hub = hub
        self.market = hub.market
        self.meter = WeightMeter(weight_limit, ban_after, ban_seconds)
        self.prefix = "/api/v3/" if self.market is Market.SPOT else "/fapi/v1/"
        self._routes: dict[str, Callable[[Mapping[str, str], int], tuple[int, Any]]] = {
            "depth": self._depth,
            "aggTrades": self._agg_trades,
            "historicalTrades": self._historical_trades,
            "exchangeInfo": self._exchange_info,
            "ping": self._ping,
            "time": self._time,
        }

    def handle(self, path: str, query: Mapping[str, str], now_ms: int) -> RestReply:
        """Answer ``GET <path>`` where ``path`` is below the market prefix (``/api/v3/depth``)."""
        name = path.removeprefix(self.prefix) if path.startswith(self.prefix) else None
        handler = self._routes.get(name) if name is not None else None
        if handler is None:
            return self._error(404, -1, f"Unknown endpoint {path}", 0, now_ms)
        if (ban := self.meter.ban_left(now_ms / 1000)) > 0:
            self.meter.banned += 1
            until = int(self.meter.banned_until * 1000)
            msg = f"Way too many requests; IP banned until {until}."
            return RestReply(
                418,
                orjson.dumps({"code": -1003, "msg": msg}),
                (("Retry-After", str(max(1, math.ceil(ban)))),),
            )
        try:
            weight, body = handler(query, now_ms)
        except RestError as exc:
            return self._error(exc.status, exc.code, exc.msg, exc.weight, now_ms)
        used = self.meter.charge(weight, now_ms / 1000)
        if used > self.meter.limit:
            self.meter.reject(now_ms / 1000)
            retry = 60 - int(now_ms / 1000) % 60
            msg = (
                f"Too many requests; current limit of IP is {self.meter.limit} request weight"
                " per 1 MINUTE. Please use WebSocket Streams for live updates."
            )
            return RestReply(
                429,
                orjson.dumps({"code": -1003, "msg": msg}),
                (("X-MBX-USED-WEIGHT-1M", str(used)), ("Retry-After", str(retry))),
            )
        return RestReply(200, orjson.dumps(body), (("X-MBX-USED-WEIGHT-1M", str(used)),))

    def _error(self, status: int, code: int, msg: str, weight: int, now_ms: int) -> RestReply:
        used = self.meter.charge(weight, now_ms / 1000)
        return RestReply(
            status,
            orjson.dumps({"code": code, "msg": msg}),
            (("X-MBX-USED-WEIGHT-1M", str(used)),),
        )

    def _symbol(self, query: Mapping[str, str]) -> tuple[SymbolModel, SymbolFrames]:
        name = query.get("symbol")
        if not name:
            raise RestError(
                400,
                -1102,
                "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            )
        idx = self.hub.symbol_index.get(name.lower()) if name.isupper() else None
        if idx is None:
            raise RestError(400, -1121, "Invalid symbol.")
        return self.hub.model.symbols[idx], self.hub.frames[idx]

    # -- endpoints ------------------------------------------------------------------------

    def _depth(self, query: Mapping[str, str], now_ms: int) -> tuple[int, Any]:
        model, fr = self._symbol(query)
        spot = self.market is Market.SPOT
        limit = _int(query, "limit", 100 if spot else 500) or 1
        limit = min(limit, 5000 if spot else 1000)
        last_id, bids, asks = model.book.snapshot(limit)
        fp, fq = fr.fmt_p, fr.fmt_q
        body: dict[str, Any] = {"lastUpdateId": last_id}
        if not spot:
            body["E"] = now_ms
            body["T"] = now_ms
        body["bids"] = [[fp(p), fq(q)] for p, q in bids]
        body["asks"] = [[fp(p), fq(q)] for p, q in asks]
        return _depth_weight(self.market, limit), body

    def _limit(self, query: Mapping[str, str], default: int, maximum: int) -> int:
        limit = _int(query, "limit", default) or default
        return max(1, min(limit, maximum))

    def _agg_trades(self, query: Mapping[str, str], now_ms: int) -> tuple[int, Any]:
        model, fr = self._symbol(query)
        spot = self.market is Market.SPOT
        weight = 4 if spot else 20
        limit = self._limit(query, 500, 1000)
        from_id = _int(query, "fromId", None)
        start, end = _int(query, "startTime", None), _int(query, "endTime", None)
        hist = model.history
        if from_id is None and (start is not None or end is not None):
            lo = start if start is not None else (end or 0) - 3_600_000
            hi = end if end is not None else lo + 3_600_000
            aggs = hist.aggs_in_time(lo, hi, limit)
        else:
            _check_held(from_id, hist.agg_base_id, weight)
            aggs = hist.aggs(from_id, limit)
        fp, fq = fr.fmt_p, fr.fmt_q
        out: list[dict[str, Any]] = []
        for a in aggs:
            row: dict[str, Any] = {
                "a": a.id,
                "p": fp(a.price),
                "q": fq(a.qty),
                "f": a.first_id,
                "l": a.last_id,
                "T": a.time,
                "m": a.buyer_maker,
            }
            if spot:
                row["M"] = True
            out.append(row)
        return weight, out

    def _historical_trades(self, query: Mapping[str, str], now_ms: int) -> tuple[int, Any]:
        model, fr = self._symbol(query)
        spot = self.market is Market.SPOT
        weight = 25 if spot else 20
        limit = self._limit(query, 500 if spot else 100, 1000 if spot else 500)
        from_id = _int(query, "fromId", None)
        _check_held(from_id, model.history.base_id, weight)
        trades = model.history.trades(from_id, limit)
        fp, fq, fquote = fr.fmt_p, fr.fmt_q, fr.fmt_quote
        out: list[dict[str, Any]] = []
        for t in trades:
            row: dict[str, Any] = {
                "id": t.id,
                "price": fp(t.price),
                "qty": fq(t.qty),
                "quoteQty": fquote(t.price * t.qty),
                "time": t.time,
                "isBuyerMaker": t.buyer_maker,
            }
            if spot:
                row["isBestMatch"] = True
            out.append(row)
        return weight, out

    def _exchange_info(self, query: Mapping[str, str], now_ms: int) -> tuple[int, Any]:
        hub = self.hub
        wanted = list(hub.model.symbols)
        if query.get("symbol"):
            wanted = [self._symbol(query)[0]]
        spot = self.market is Market.SPOT
        symbols = [
            self._symbol_info(hub.frames[hub.symbol_index[m.spec.stream_symbol]]) for m in wanted
        ]
        if spot:
            limits = [
                _rate_limit("REQUEST_WEIGHT", "MINUTE", 1, self.meter.limit),
                _rate_limit("ORDERS", "SECOND", 10, 100),
                _rate_limit("RAW_REQUESTS", "MINUTE", 5, 61000),
            ]
            body = {
                "timezone": "UTC",
                "serverTime": now_ms,
                "rateLimits": limits,
                "exchangeFilters": [],
                "symbols": symbols,
            }
            return 20, body
        limits = [
            _rate_limit("REQUEST_WEIGHT", "MINUTE", 1, self.meter.limit),
            _rate_limit("ORDERS", "MINUTE", 1, 1200),
            _rate_limit("ORDERS", "SECOND", 10, 300),
        ]
        body = {
            "timezone": "UTC",
            "serverTime": now_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": limits,
            "exchangeFilters": [],
            "assets": [],
            "symbols": symbols,
        }
        return 1, body

    def _symbol_info(self, fr: SymbolFrames) -> dict[str, Any]:
        spec = fr.model.spec
        base = spec.symbol.removesuffix("USDT")
        filters = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fr.fmt_p(1),
                "maxPrice": fr.fmt_p(10 ** (spec.price_decimals + 7)),
                "tickSize": fr.fmt_p(1),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fr.fmt_q(1),
                "maxQty": fr.fmt_q(10 ** (spec.qty_decimals + 6)),
                "stepSize": fr.fmt_q(1),
            },
        ]
        info: dict[str, Any] = {"symbol": spec.symbol, "status": "TRADING", "baseAsset": base}
        if self.market is Market.SPOT:
            info |= {
                "baseAssetPrecision": 8,
                "quoteAsset": "USDT",
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "isSpotTradingAllowed": True,
                "filters": filters,
            }
        else:
            info |= {
                "pair": spec.symbol,
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "quoteAsset": "USDT",
                "marginAsset": "USDT",
                "pricePrecision": spec.price_decimals,
                "quantityPrecision": spec.qty_decimals,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "filters": filters,
            }
        return info

    def _ping(self, query: Mapping[str, str], now_ms: int) -> tuple[int, Any]:
        return 1, {}

    def _time(self, query: Mapping[str, str], now_ms: int) -> tuple[int, Any]:
        return 1, {"serverTime": now_ms}


def _check_held(from_id: int | None, oldest: int, weight: int) -> None:
    """Refuse a ``fromId`` older than the oldest trade (or aggregate) id still held.

    The history is bounded; answering from the oldest held instead would let a client
    believe it got the trades from ``fromId`` (a backfill would publish a hole as filled).
    Binance never starts a page later than asked, so neither does the fake: 400 with the
    request's weight. A ``fromId`` beyond the newest is an empty page, as on Binance.
    """
    if from_id is not None and from_id < oldest:
        msg = f"fromId {from_id} is older than the oldest trade this server holds ({oldest})"
        raise RestError(400, -1128, msg, weight)


def _rate_limit(kind: str, interval: str, num: int, limit: int) -> dict[str, Any]:
    return {"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": limit}
