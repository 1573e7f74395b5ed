"""Recordings of every raw frame marketd receives, for replay and backtests: the format
(:mod:`.format`), writing (:mod:`.writer`) and reading (:mod:`.reader`)."""

from marketd.recorder.format import Entry
from marketd.recorder.index import Index
from marketd.recorder.reader import (
    Reading,
    ReadStatistics,
    Summary,
    directory_summary,
    index_of,
    read,
)
from marketd.recorder.writer import RecorderError, SegmentWriter, WriterStatistics

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
