"""Recordings of every raw frame marketd receives, for replay and backtests: the format
(:mod:`.format`), writing (:mod:`.writer`) and reading (:mod:`.reader`)."""

from marketd.recorder.format import Columns, Entry
from marketd.recorder.index import Index
from marketd.recorder.reader import (
    BlockReading,
    Reading,
    ReadStatistics,
    Summary,
    directory_summary,
    index_of,
    read,
    read_blocks,
)
from marketd.recorder.writer import RecorderError, SegmentWriter, WriterStatistics

__all__ = [
    "BlockReading",
    "Columns",
    "Entry",
    "Index",
    "ReadStatistics",
    "Reading",
    "RecorderError",
    "SegmentWriter",
    "Summary",
    "WriterStatistics",
    "directory_summary",
    "index_of",
    "read",
    "read_blocks",
]
