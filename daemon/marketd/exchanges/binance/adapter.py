"""Binance spot and Binance USD-M futures: two adapters behind the exchange seam.

What they share (the combined-stream URL, control frames, the SUBSCRIBE frame, the book
snapshot payload, the used-weight header) is in :class:`_Binance`; each market's class says
what differs: its routes, message-rate limit, endpoints and weights, and its book rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import msgspec

from marketd.data.events import DepthSnapshot
from marketd.data.records import Market
from marketd.exchanges.binance import control, endpoints, ticks, vocabulary
from marketd.exchanges.binance.codec import Codec as MarketCodec
from marketd.exchanges.binance.rest import BookSnapshot
from marketd.exchanges.seam import Codec, Control, Endpoint, Exchange, TickDecoder, Topics

_decode_book_snapshot = msgspec.json.Decoder(BookSnapshot).decode


class _Binance:
    """What both Binance markets do alike."""

    market: Market
    max_messages_per_second: float
    chained_diffs: bool
    used_weight_header = endpoints.USED_WEIGHT_HEADER

    def __init__(self) -> None:
        self.name = f"binance-{self.market.value}"
        self.vocabulary = vocabulary.MarketVocabulary(self.market)

    def __repr__(self) -> str:
        return f"<adapter {self.name}>"

    def codec(self, topics: Topics) -> Codec:
        return MarketCodec(self.market, topics)

    def tick_decoder(self) -> TickDecoder:
        return ticks.TickDecoder(self.market)

    def depth_snapshot(self, limit: int) -> Endpoint:
        limit = min(limit, endpoints.MAX_DEPTH_LIMIT[self.market])
        return Endpoint(
            endpoints.DEPTH_PATHS[self.market],
            endpoints.depth_weight(self.market, limit),
            page=limit,
        )

    def decode_depth_snapshot(self, body: bytes) -> DepthSnapshot:
        s = _decode_book_snapshot(body)
        return DepthSnapshot(last_update_id=s.last_update_id, bids=s.bids, asks=s.asks)

    def trade_history(self, kind: str) -> Endpoint | None:
        found = endpoints.TRADE_HISTORY.get((self.market, kind))
        if found is None:
            return None
        path, page = found
        return Endpoint(path, endpoints.trades_weight(self.market, kind), page=page)

    def stream_url(self, base_url: str, route: str, streams: Sequence[str]) -> str:
        # Combined streams: every data frame is {"stream": ..., "data": ...}.
        url = f"{base_url.rstrip('/')}{route}/stream"
        return f"{url}?streams={'/'.join(streams)}" if streams else url

    # The function itself, not a method wrapping it: the feed calls it on every frame.
    parse_control: Callable[[str], Control | None] = staticmethod(control.parse_control)

    def subscribe_message(self, request_id: int, streams: Sequence[str]) -> str:
        return json.dumps(
            {"method": "SUBSCRIBE", "params": list(streams), "id": request_id},
            separators=(",", ":"),
        )


class BinanceSpot(_Binance):
    market = Market.SPOT
    max_messages_per_second = 5.0
    chained_diffs = False  # each diff's first id follows the previous one's last

    def ws_route(self, stream: str) -> str:
        return vocabulary.Route.NONE  # one route for every stream


class BinanceUsdm(_Binance):
    market = Market.USDM
    max_messages_per_second = 10.0
    chained_diffs = True  # each diff names the one before it (``pu``)

    def ws_route(self, stream: str) -> str:
        # /public for depth and book tickers, /market for everything else (also a stream
        # the table does not know); unrouted futures URLs were retired 2026-04-23.
        return vocabulary.route(Market.USDM, stream) or vocabulary.Route.MARKET


SPOT = BinanceSpot()
USDM = BinanceUsdm()
ADAPTERS: dict[Market, Exchange] = {SPOT.market: SPOT, USDM.market: USDM}
