"""Binance (spot and USD-M futures) behind the exchange seam."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import msgspec

from marketd.data.events import DepthSnapshot
from marketd.data.records import Market
from marketd.exchanges.binance import control, endpoints, vocabulary
from marketd.exchanges.binance.rest import BookSnapshot
from marketd.exchanges.seam import Control, Endpoint, Vocabulary

_decode_book_snapshot = msgspec.json.Decoder(BookSnapshot).decode


class Binance:
    """The :class:`~marketd.exchanges.seam.Exchange` of Binance: its table, endpoints,
    weights and book rule."""

    name = "binance"
    used_weight_header = endpoints.USED_WEIGHT_HEADER

    @property
    def vocabulary(self) -> Vocabulary:
        return vocabulary

    def depth_snapshot(self, market: Market, limit: int) -> Endpoint:
        limit = min(limit, endpoints.MAX_DEPTH_LIMIT[market])
        return Endpoint(
            endpoints.DEPTH_PATHS[market], endpoints.depth_weight(market, limit), page=limit
        )

    def decode_depth_snapshot(self, body: bytes) -> DepthSnapshot:
        s = _decode_book_snapshot(body)
        return DepthSnapshot(last_update_id=s.last_update_id, bids=s.bids, asks=s.asks)

    def trade_history(self, market: Market, kind: str) -> Endpoint | None:
        found = endpoints.TRADE_HISTORY.get((market, kind))
        if found is None:
            return None
        path, page = found
        return Endpoint(path, endpoints.trades_weight(market, kind), page=page)

    def stream_url(self, base_url: str, route: str, streams: Sequence[str]) -> str:
        # Combined streams: every data frame is {"stream": ..., "data": ...}.
        url = f"{base_url.rstrip('/')}{route}/stream"
        return f"{url}?streams={'/'.join(streams)}" if streams else url

    def ws_route(self, market: Market, stream: str) -> str:
        # USD-M: /public for depth and book tickers, /market for everything else (also a
        # stream the table does not know); unrouted futures URLs were retired 2026-04-23.
        if market is Market.SPOT:
            return vocabulary.Route.NONE
        return vocabulary.route(market, stream) or vocabulary.Route.MARKET

    # The function itself, not a method wrapping it: the feed calls it on every frame.
    parse_control: Callable[[str], Control | None] = staticmethod(control.parse_control)

    def subscribe_message(self, request_id: int, streams: Sequence[str]) -> str:
        return json.dumps(
            {"method": "SUBSCRIBE", "params": list(streams), "id": request_id},
            separators=(",", ":"),
        )

    def chained_diffs(self, market: Market) -> bool:
        return market is Market.USDM


BINANCE = Binance()
