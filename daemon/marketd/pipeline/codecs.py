"""Every market's codec behind one object: what the normalizer and the backfill call.

Each adapter has its own codec (:meth:`marketd.exchanges.seam.Exchange.codec`); a frame
batch comes from one connection, so one market, and goes to that market's codec.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from marketd.data.records import FrameBatch, Market, Record
from marketd.exchanges import adapters
from marketd.exchanges.seam import Codec, DecodeResult, Exchange, Topics


class Codecs:
    """The codecs of ``exchanges`` (default: every adapter); one thread (the trio one)."""

    def __init__(self, topics: Topics, exchanges: Iterable[Exchange] | None = None) -> None:
        self.topics = topics
        self._codecs: dict[Market, Codec] = {
            a.market: a.codec(topics) for a in (adapters() if exchanges is None else exchanges)
        }

    def decode_batch(self, batch: FrameBatch) -> DecodeResult:
        return self._codecs[batch.market].decode_batch(batch)

    def encode_rest_trades(
        self, market: Market, symbol: str, kind: str, body: bytes, received_ns: int
    ) -> list[Record]:
        return self._codecs[market].encode_rest_trades(symbol, kind, body, received_ns)

    def watch_prices(self, kinds: Collection[str], markets: Collection[Market]) -> None:
        """Ticks beside the records of ``kinds`` on ``markets`` (what the detector watches),
        none on the other markets."""
        for market, codec in self._codecs.items():
            codec.watch_prices(kinds if market in markets else ())
