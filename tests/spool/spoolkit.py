"""Helpers for the spool tests: records that say which they are, settings, draining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marketd.data.records import Market, Record
from marketd.spool import Position, Spool, SpoolSettings


def record(n: int, size: int = 100) -> Record:
    """Record number ``n`` (its ``seq``), with a value of ``size`` bytes."""
    return Record(
        topic="marketdata.raw",
        key=b"BTCUSDT",
        value=n.to_bytes(8, "little") * (size // 8),
        headers=(("traceparent", b"00-%d" % n),),
        received_ns=1_700_000_000_000_000_000 + n,
        market=Market.USDM if n % 2 else Market.SPOT,
        kind="trade",
        symbol="BTCUSDT",
        seq=n,
    )


def records(first: int, count: int, size: int = 100) -> list[Record]:
    return [record(n, size) for n in range(first, first + count)]


def settings(directory: Path, **kw: Any) -> SpoolSettings:
    kw.setdefault("segment_bytes", 4096)
    kw.setdefault("max_bytes", 1 << 20)
    return SpoolSettings(directory=str(directory), **kw)


def read_all(spool: Spool, batch: int = 1000) -> list[tuple[Position, Record]]:
    out: list[tuple[Position, Record]] = []
    while got := spool.read(batch):
        out.extend(got)
    return out


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))
