"""The fake's control API on the REST port, under ``/_fake`` (JSON in, JSON out).

* ``GET  /_fake/state``  → ``FakeExchange.state()``
* ``GET  /_fake/book?market=spot|usdm&symbol=BTCUSDT[&update_id=N][&limit=N]`` → the true
  book (``FakeExchange.true_book``) as Binance prints a depth snapshot:
  ``{"market", "symbol", "lastUpdateId", "bids": [["price", "qty"], ...], "asks": [...]}``,
  best first, ``limit`` levels a side (all when absent). ``update_id``: the book right
  after that update (needs ``book_journal``; 404 outside it). Unknown symbol: 404.
* ``POST /_fake/pause``, ``POST /_fake/resume``
* ``POST /_fake/fault`` ``{"kind": "drop", "market": "spot"|"usdm"|null, "count": 1, "seconds": 0}``
  (``"kind": "gap"`` may name a ``"symbol"``: its next ``count`` depth diffs are skipped;
  ``"kind": "corrupt_level"``: the next ``count`` depth diffs sent of ``"symbol"`` (else of
  every symbol) each carry one level with a wrong quantity, U/u/pu intact, the true book
  unchanged; ``/_fake/state`` lists them under ``corrupted_levels``;
  ``"kind": "fuzz"`` may give a ``"seed"``: ``count`` fuzzed frames per connection, the reply
  says how many in all as ``"frames"``)
* ``POST /_fake/jump``  ``{"market": "usdm", "symbol": "BTCUSDT", "percent": 5.0}``
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from marketd.data.records import Market
from marketd.fakex.config import Fault, FaultKind
from marketd.fakex.http11 import HttpRequest, HttpResponse


class Controlled(Protocol):
    """What the control API drives (the fake exchange), named here so that the server can
    import this module without this module importing the server."""

    def state(self) -> dict[str, Any]: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def inject_fault(self, fault: Fault) -> int: ...
    def jump(self, market: Market, symbol: str, percent: float) -> str: ...
    def true_book(
        self, market: Market, symbol: str, update_id: int | None = None
    ) -> tuple[int, list[tuple[str, str]], list[tuple[str, str]]]: ...


class BadControl(ValueError):
    """A request the control API refuses (400, or ``status``)."""

    def __init__(self, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.status = status


GETS = ("state", "book")
POSTS = ("pause", "resume", "fault", "jump")


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body))


def _body(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise BadControl(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadControl("body must be a JSON object")
    return body


def _market(value: Any, *, required: bool) -> Market | None:
    if value is None and not required:
        return None
    try:
        return Market(value)
    except ValueError:
        raise BadControl(f"market must be 'spot' or 'usdm', not {value!r}") from None


_WITH_SYMBOL = (FaultKind.GAP, FaultKind.CORRUPT_LEVEL)


def parse_fault(body: dict[str, Any]) -> Fault:
    try:
        kind = FaultKind(body.get("kind"))
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise BadControl(f"kind must be one of {kinds}") from None
    count, seconds = body.get("count", 1), body.get("seconds", 0.0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise BadControl("count must be an integer >= 1")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        raise BadControl("seconds must be a number >= 0")
    symbol = body.get("symbol")
    if symbol is not None and (not isinstance(symbol, str) or kind not in _WITH_SYMBOL):
        raise BadControl("symbol must be a string, and only with kind 'gap' or 'corrupt_level'")
    seed = body.get("seed")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or kind is not FaultKind.FUZZ
    ):
        raise BadControl("seed must be an integer, and only with kind 'fuzz'")
    return Fault(
        kind,
        _market(body.get("market"), required=False),
        count,
        float(seconds),
        symbol.upper() if symbol else None,
        seed,
    )


def _query_int(query: dict[str, str], name: str, minimum: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadControl(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise BadControl(f"{name} must be at least {minimum}, not {value}")
    return value


def _book(fx: Controlled, query: dict[str, str]) -> dict[str, Any]:
    market = _market(query.get("market"), required=True)
    symbol = query.get("symbol")
    if market is None or not symbol:
        raise BadControl("symbol must be given (market=spot|usdm&symbol=BTCUSDT)")
    update_id = _query_int(query, "update_id", 0)
    limit = _query_int(query, "limit", 1)
    try:
        last, bids, asks = fx.true_book(market, symbol, update_id)
    except KeyError:
        raise BadControl(f"unknown {market.value} symbol {symbol!r}", 404) from None
    except LookupError as exc:  # an update id outside the journal, or no journal
        raise BadControl(str(exc), 404) from None
    return {
        "market": market.value,
        "symbol": symbol.upper(),
        "lastUpdateId": last,
        "bids": bids[:limit],
        "asks": asks[:limit],
    }


def _parse_jump(body: dict[str, Any]) -> tuple[Market, str, float]:
    market = _market(body.get("market"), required=True)
    percent, symbol = body.get("percent"), body.get("symbol")
    if not isinstance(percent, int | float) or isinstance(percent, bool):
        raise BadControl("percent must be a number")
    if not isinstance(symbol, str) or market is None:
        raise BadControl("symbol must be a string")
    return market, symbol, float(percent)


def handle(fx: Controlled, request: HttpRequest) -> HttpResponse:
    action = request.path.removeprefix("/_fake/")
    if action not in GETS + POSTS:
        return _json(404, {"error": f"no such control {action!r}"})
    method = "GET" if action in GETS else "POST"
    if request.method != method:
        return _json(405, {"error": f"/_fake/{action} takes {method}"})
    try:
        if action == "state":
            return _json(200, fx.state())
        if action == "book":
            return _json(200, _book(fx, request.query))
        if action == "pause":
            fx.pause()
            return _json(200, {"paused": True})
        if action == "resume":
            fx.resume()
            return _json(200, {"paused": False})
        if action == "fault":
            fault = parse_fault(_body(request))
            try:
                targets = fx.inject_fault(fault)
            except KeyError as exc:
                raise BadControl(str(exc)) from None
            reply: dict[str, Any] = {"kind": fault.kind.value, "connections": targets}
            if fault.kind is FaultKind.FUZZ:
                reply["frames"] = targets * fault.count
            return _json(200, reply)
        if action == "jump":
            market, symbol, percent = _parse_jump(_body(request))
            try:
                price = fx.jump(market, symbol, float(percent))
            except KeyError as exc:
                raise BadControl(str(exc)) from None
            return _json(200, {"symbol": symbol.upper(), "price": price})
        raise AssertionError(f"control {action!r} has no handler")
    except BadControl as exc:
        return _json(exc.status, {"error": str(exc)})
