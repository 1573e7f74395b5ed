"""Every market's codec behind one object: what the normalizer and the backfill call.

Each adapter has its own codec (:meth:`marketd.exchanges.seam.Exchange.codec`); a frame
batch comes from one connection, so one market, and goes to that market's codec.

After each batch it samples how late the exchange's events arrive: for each kind with a
new event in the batch, the newest event's exchange time against the batch's last receipt
(``marketd_event_receive_delay_seconds``). One sample per kind per batch keeps it off the
per-frame path; the figure includes the exchange's own delay, the network and clock skew.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from prometheus_client import Histogram

from marketd.data.records import FrameBatch, Market, Record
from marketd.exchanges import adapters
from marketd.exchanges.seam import Codec, DecodeResult, Exchange, Topics

EVENT_DELAY = Histogram(
    "marketd_event_receive_delay_seconds",
    "Exchange event time to local receipt, sampled: the newest event of each kind per "
    "frame batch (exchange delay, network and clock skew together).",
    ["market", "kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)


class Codecs:
    """The codecs of ``exchanges`` (default: every adapter); one thread (the trio one)."""

    def __init__(self, topics: Topics, exchanges: Iterable[Exchange] | None = None) -> None:
        self.topics = topics
        self._codecs: dict[Market, Codec] = {
            a.market: a.codec(topics) for a in (adapters() if exchanges is None else exchanges)
        }
        # Per market: kind → (the newest event time sampled, its histogram series), every
        # series made now so that it exists (at 0) before its first sample.
        self._delays: dict[Market, dict[str, tuple[int, Any]]] = {
            m: {
                k: (t, EVENT_DELAY.labels(market=m.value, kind=k))
                for k, t in c.newest_event_times().items()
            }
            for m, c in self._codecs.items()
        }

    def decode_batch(self, batch: FrameBatch) -> DecodeResult:
        codec = self._codecs[batch.market]
        result = codec.decode_batch(batch)
        if result.records:
            self._sample_delays(batch.market, codec, batch.received_ns[-1])
        return result

    def _sample_delays(self, market: Market, codec: Codec, received_ns: int) -> None:
        delays = self._delays[market]
        for kind, event_ms in codec.newest_event_times().items():
            before, series = delays[kind]
            if event_ms != before and event_ms:
                delays[kind] = (event_ms, series)
                series.observe(max(0.0, received_ns / 1e9 - event_ms / 1e3))

    def encode_rest_trades(
        self, market: Market, symbol: str, kind: str, body: bytes, received_ns: int
    ) -> list[Record]:
        return self._codecs[market].encode_rest_trades(symbol, kind, body, received_ns)

    def watch_prices(self, kinds: Collection[str], markets: Collection[Market]) -> None:
        """Ticks beside the records of ``kinds`` on ``markets`` (what the detector watches),
        none on the other markets."""
        for market, codec in self._codecs.items():
            codec.watch_prices(kinds if market in markets else ())
