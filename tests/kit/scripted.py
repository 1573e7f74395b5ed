"""A scripted decoder for tests of the normalizer without a codec: each frame is
``"SYMBOL ID"``, one spot trade."""

from __future__ import annotations

import attrs

from marketd.data.records import FrameBatch, Market, Record, RecordBatch


def trade(symbol: str, tid: int, *, source: str = "live") -> Record:
    return Record(
        topic="marketdata.raw",
        key=symbol.encode(),
        value=source.encode(),
        headers=(),
        received_ns=0,
        market=Market.SPOT,
        kind="trade",
        symbol=symbol,
        seq=tid,
    )


@attrs.frozen
class Decoded:
    records: RecordBatch
    malformed: int = 0
    unknown: int = 0
    error: str = ""


class Decoder:
    """Frames are ``"SYMBOL ID"``: one spot trade each."""

    def decode_batch(self, batch: FrameBatch) -> Decoded:
        out = []
        for frame in batch.frames:
            symbol, tid = frame.split()
            out.append(trade(symbol, int(tid)))
        return Decoded(RecordBatch(out))


def batch(*frames: str) -> FrameBatch:
    return FrameBatch(Market.SPOT, "spot-0", list(frames), [0] * len(frames))
