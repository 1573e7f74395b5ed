"""Recordings of every raw frame marketd receives, for replay and backtests (see
:mod:`.segments`)."""

from marketd.recorder.segments import (
    Entry,
    Index,
    Reading,
    ReadStatistics,
    RecorderError,
    SegmentWriter,
    Summary,
    WriterStatistics,
    directory_summary,
    index_of,
    read,
)

__all__ = [
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
]
