"""Recordings of synthetic Binance frames for the backtest tests, and the live path to
compare a backtest with.

``scenario`` builds a recording entry by entry: combined-stream frames in Binance's
shapes (USD-M ``aggTrade`` with ``nq``, ``markPriceUpdate``; see
``marketd.fakex.frames``), each received ``DELAY_MS`` after its event time, written with
the real :class:`~marketd.recorder.SegmentWriter`. ``live_alerts`` decodes the same
entries the way the daemon does with ``alerts.source: pipeline`` (the market's codec, the
normalizer's sequencer, the tap's selection, the detector service's ``TickReader``) and
feeds a fresh :class:`~marketd.alerts.detector.Detector`: what a live detector raises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import pytest

from marketd.alerts.detector import Detector
from marketd.alerts.encoding import TickReader
from marketd.alerts.model import Alert, Outcome
from marketd.config.alerts import RuleSettings
from marketd.config.settings import TopicSettings
from marketd.data.events import Tick
from marketd.data.records import FrameBatch, Market, RecordBatch
from marketd.exchanges import adapter
from marketd.pipeline.sequence import TradeSequencer
from marketd.recorder import Entry, SegmentWriter
from marketd.recorder.format import payload_marker

T0_MS = 1_714_521_600_000  # 2024-05-01T00:00:00Z
DELAY_MS = 5  # event time to receipt
USDM = "usdm-market-0"
SPOT = "spot-0"


def frame(stream: str, data: object) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


class Scenario:
    """Entries of a recording, in the order received; :meth:`write` records them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.entries: list[Entry] = []
        self._ids: dict[str, int] = {}

    def raw(self, at_ms: int, text: str | bytes, *, stream: str, connection: str = USDM) -> None:
        payload = text.encode() if isinstance(text, str) else text
        ns = (T0_MS + at_ms + DELAY_MS) * 1_000_000
        self.entries.append(Entry(ns, "ws", connection, stream, payload))

    def agg_trade(
        self,
        symbol: str,
        price: str,
        at_ms: int,
        qty: str = "1.000",
        *,
        agg_id: int | None = None,
        connection: str = USDM,
    ) -> None:
        """A USD-M ``<symbol>@aggTrade`` frame; ids count up per symbol unless given."""
        if agg_id is None:
            agg_id = self._ids[symbol] = self._ids.get(symbol, 1000) + 1
        data = {
            "e": "aggTrade", "E": T0_MS + at_ms, "s": symbol, "a": agg_id, "p": price,
            "q": qty, "nq": qty, "f": 3 * agg_id, "l": 3 * agg_id + 2, "T": T0_MS + at_ms,
            "m": False,
        }  # fmt: skip
        stream = f"{symbol.lower()}@aggTrade"
        self.raw(at_ms, frame(stream, data), stream=stream, connection=connection)

    def mark_price(self, symbol: str, mark: str, index: str, at_ms: int, rate: str) -> None:
        """A USD-M ``<symbol>@markPrice`` frame."""
        data = {
            "e": "markPriceUpdate", "E": T0_MS + at_ms, "s": symbol, "p": mark, "i": index,
            "P": mark, "r": rate, "T": T0_MS + 8 * 3600 * 1000,
        }  # fmt: skip
        stream = f"{symbol.lower()}@markPrice"
        self.raw(at_ms, frame(stream, data), stream=stream)

    def write(self, *, max_segment_s: float = 300.0) -> Path:
        """Record the entries; the directory."""
        with SegmentWriter(self.directory, max_segment_s=max_segment_s) as w:
            for entry in self.entries:
                w.append(entry)
        return self.directory


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return Scenario(tmp_path / "recording")


LiveRun = Callable[..., tuple[list[Alert], list[Outcome]]]


def live_ticks(
    entries: Sequence[Entry], kinds: Collection[str], markets: Collection[str]
) -> list[Tick]:
    """The ticks the daemon's detector gets from ``entries`` (see the module doc)."""
    watched = [Market(m) for m in markets]
    codecs = {m: adapter(m).codec(TopicSettings()) for m in Market}
    for m, codec in codecs.items():
        codec.watch_prices(kinds if m in watched else ())
    sequencer = TradeSequencer()
    reader = TickReader(kinds, markets)
    out: list[Tick] = []
    for e in entries:
        market = Market(e.connection.partition("-")[0])
        text = e.payload.decode()
        if payload_marker(e.payload) is not None or adapter(market).parse_control(text):
            continue  # the connection's own: never handed on as data
        batch = FrameBatch(market, e.connection, [text], [e.received_ns])
        records = codecs[market].decode_batch(batch).records
        kept = RecordBatch()
        for record, event in zip(records, records.events, strict=True):
            verdict = sequencer.check(record)
            if verdict is False:
                continue
            if verdict is not True:
                sequencer.advance(record)  # a gap, as with backfill off
            kept.add(record, event)
        out += reader.ticks(kept.select(set(kinds), watched))
    return out


@pytest.fixture
def live_alerts() -> LiveRun:
    def run(
        entries: Sequence[Entry],
        rules: Sequence[RuleSettings],
        kinds: Collection[str],
        markets: Collection[str] = ("usdm", "spot"),
    ) -> tuple[list[Alert], list[Outcome]]:
        detector = Detector(rules, clock=lambda: 0)
        alerts = detector.observe_many(live_ticks(entries, kinds, markets))
        return alerts, detector.take_outcomes()

    return run


@pytest.fixture
def ticks_of() -> Callable[..., list[Tick]]:
    return live_ticks
