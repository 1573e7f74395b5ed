"""Reading a recording: :func:`read` and its :class:`Reading` (with
:class:`ReadStatistics`), :func:`index_of` (a segment's index by scanning it) and
:func:`directory_summary`. The format is :mod:`.format`'s.

Reader (:func:`read`): entries in segment order, each segment's in append order, with
``start_ns <= received_ns < end_ns`` and ``stream`` in ``streams`` (when given). A
segment whose index shows it holds none of them is not opened. Bad data never raises, it
is counted (:class:`ReadStatistics`) and skipped: a block whose header or frame fails its
check (after a bad header the scanner resynchronises on the next valid block header), a
group (version 2) or record (version 1) that fails its check (the rest of its block is
skipped), a torn tail (the last block cut short, or zeros to the end), a file with a bad
header or a format version it does not know (the whole file). Versions 1 and 2 are read
(see :mod:`.format`). The
reader sees each segment as long as it was when opened: a block the writer is writing
meanwhile is a torn tail.

Plain synchronous file I/O, no threads, no trio: run it in a worker thread from trio.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TypedDict

import attrs
import zstandard

from marketd.recorder.format import (
    HEADER_SIZE,
    Columns,
    Entry,
    columns_of,
    file_version,
    parse_block_header,
    resync,
)
from marketd.recorder.groups import decode_groups
from marketd.recorder.index import Index, Tally, list_segments, load_index
from marketd.recorder.v1 import decode_records


def _decode_v1(raw: bytes) -> tuple[list[Columns], bool]:
    entries, bad = decode_records(raw)
    return columns_of(entries), bad


# Each format version's decoder of a block's raw bytes: (columns, ended with a bad one).
_DECODERS = {1: _decode_v1, 2: decode_groups}

_crc32 = zlib.crc32


class Summary(TypedDict):
    """A recording at a glance (:func:`directory_summary`)."""

    directory: str
    segments: int
    scanned: int  # segments without a valid index, scanned to count them
    first_ns: int | None
    last_ns: int | None
    entries: int
    bytes: int
    streams: dict[str, int]


@attrs.frozen
class ReadStatistics:
    entries: int  # handed out
    segments_read: int  # opened and scanned
    segments_skipped: int  # not opened: their index shows nothing wanted
    corrupt_blocks: int  # a block header or frame failing its check (the block skipped)
    corrupt_records: int  # a group / v1 record failing its check (the rest of its block skipped)
    torn_tails: int  # segments whose last block is cut short (or zero-filled)
    unreadable_segments: int  # bad file header: nothing of the file read


class _Counts:
    __slots__ = ("blocks", "entries", "read", "records", "skipped", "torn", "unreadable")

    def __init__(self) -> None:
        self.entries = self.read = self.skipped = 0
        self.blocks = self.records = self.torn = self.unreadable = 0


def _scan(path: Path, counts: _Counts) -> Iterator[list[Columns]]:
    """The entries of each readable block of a segment, counting what is not."""
    try:
        f = path.open("rb")
    except FileNotFoundError:  # deleted by retention since the directory was listed
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        version = file_version(f.read(HEADER_SIZE))
        if version is None:
            counts.unreadable += 1
            return
        decode = _DECODERS[version]
        counts.read += 1
        decompressor = zstandard.ZstdDecompressor()
        pos = HEADER_SIZE
        while pos < size:
            f.seek(pos)
            header = f.read(HEADER_SIZE)
            parsed = parse_block_header(header)
            if parsed is None:
                if len(header) < HEADER_SIZE:
                    counts.torn += 1
                    return
                rest = f.read()  # after the bad header's first 24 B
                found = resync(header[1:] + rest)
                if found is None:
                    if header.count(0) + rest.count(0) == len(header) + len(rest):
                        counts.torn += 1  # zeros a crash left past the written size
                    else:
                        counts.blocks += 1
                    return
                counts.blocks += 1
                pos += 1 + found
                continue
            frame_length, raw_length, frame_crc = parsed
            frame = f.read(frame_length)
            pos += HEADER_SIZE + frame_length
            if len(frame) < frame_length:
                counts.torn += 1
                return
            if _crc32(frame) != frame_crc:
                counts.blocks += 1
                continue
            try:
                raw = decompressor.decompress(frame, max_output_size=raw_length)
            except zstandard.ZstdError:
                raw = None
            if raw is None or len(raw) != raw_length:
                counts.blocks += 1
                continue
            columns, bad = decode(raw)
            counts.records += bad
            yield columns


class _Reader:
    """What :class:`Reading` and :class:`BlockReading` share: the segments wanted, their
    blocks' entries within the bounds, and the counts."""

    def __init__(
        self,
        directory: Path,
        start_ns: int | None,
        end_ns: int | None,
        streams: frozenset[str] | None,
    ) -> None:
        self._dir = directory
        self._start = start_ns
        self._end = end_ns
        self._streams = streams
        self._counts = _Counts()
        self._segments = list_segments(directory)

    def statistics(self) -> ReadStatistics:
        c = self._counts
        return ReadStatistics(
            entries=c.entries,
            segments_read=c.read,
            segments_skipped=c.skipped,
            corrupt_blocks=c.blocks,
            corrupt_records=c.records,
            torn_tails=c.torn,
            unreadable_segments=c.unreadable,
        )

    def _blocks(self) -> Iterator[list[Columns]]:
        """Each block's entries within the bounds (blocks with none left out)."""
        counts = self._counts
        for _, _, name in self._segments:
            path = self._dir / name
            index = load_index(path)
            if index is not None and not self._wanted(index):
                counts.skipped += 1
                continue
            for columns in _scan(path, counts):
                kept = [c for c in map(self._within, columns) if c is not None]
                if kept:
                    yield kept

    def _within(self, columns: Columns) -> Columns | None:
        """The entries of ``columns`` within the bounds (``columns`` itself when all are)."""
        start, end, streams = self._start, self._end, self._streams
        ns = columns.ns
        if not ns:
            return None
        keep: list[bool] | None = None
        if (start is not None and min(ns) < start) or (end is not None and max(ns) >= end):
            keep = [(start is None or n >= start) and (end is None or n < end) for n in ns]
        if streams is not None:
            wanted = [name in streams for name in columns.streams]
            if not all(wanted):
                flags = [wanted[i] for i in columns.ids]
                keep = (
                    flags if keep is None else [a and b for a, b in zip(keep, flags, strict=True)]
                )
        if keep is None:
            return columns
        if not any(keep):
            return None
        return columns.select(keep)

    def _wanted(self, index: Index) -> bool:
        first, last = index["first_ns"], index["last_ns"]
        if first is None or last is None:
            return False  # no entries
        if (self._start is not None and last < self._start) or (
            self._end is not None and first >= self._end
        ):
            return False
        streams = self._streams
        return streams is None or any(key.partition(":")[2] in streams for key in index["streams"])


class Reading(_Reader, Iterator[Entry]):
    """The entries :func:`read` hands out, lazily; :meth:`statistics` counts so far
    (a group's entries once its first is handed out)."""

    def __init__(
        self,
        directory: Path,
        start_ns: int | None,
        end_ns: int | None,
        streams: frozenset[str] | None,
    ) -> None:
        super().__init__(directory, start_ns, end_ns, streams)
        self._entries = self._generate()

    def __next__(self) -> Entry:
        return next(self._entries)

    def _generate(self) -> Iterator[Entry]:
        counts = self._counts
        for block in self._blocks():
            for columns in block:
                counts.entries += len(columns)  # a group's at once
                yield from columns.entries()


class BlockReading(_Reader, Iterator[list[Columns]]):
    """What :func:`read_blocks` hands out, lazily: each block's entries as columns;
    :meth:`statistics` counts so far (a block's entries once it is handed out)."""

    def __init__(
        self,
        directory: Path,
        start_ns: int | None,
        end_ns: int | None,
        streams: frozenset[str] | None,
    ) -> None:
        super().__init__(directory, start_ns, end_ns, streams)
        self._generated = self._generate()

    def __next__(self) -> list[Columns]:
        return next(self._generated)

    def _generate(self) -> Iterator[list[Columns]]:
        counts = self._counts
        for block in self._blocks():
            counts.entries += sum(map(len, block))
            yield block


def read(
    directory: str | os.PathLike[str],
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    streams: Collection[str] | None = None,
) -> Reading:
    """The recording's entries with ``start_ns <= received_ns < end_ns`` and ``stream``
    in ``streams`` (each bound optional), in order. Lists the directory now (segments
    written later are not read) and reads lazily. Raises only for bad
    arguments (``OSError`` if the directory cannot be listed); bad data is counted."""
    return Reading(Path(directory), start_ns, end_ns, _checked(start_ns, end_ns, streams))


def read_blocks(
    directory: str | os.PathLike[str],
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    streams: Collection[str] | None = None,
) -> BlockReading:
    """What :func:`read` reads, a block at a time: each block's entries within the
    bounds as :class:`~marketd.recorder.format.Columns` (one per run of a kind and
    connection), in order — for readers that take thousands of entries at a time
    without an :class:`~marketd.recorder.format.Entry` each."""
    return BlockReading(Path(directory), start_ns, end_ns, _checked(start_ns, end_ns, streams))


def _checked(
    start_ns: int | None, end_ns: int | None, streams: Collection[str] | None
) -> frozenset[str] | None:
    if isinstance(streams, str):
        raise TypeError("streams is a collection of stream names, not one name")
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise ValueError(f"start_ns {start_ns} is after end_ns {end_ns}")
    return None if streams is None else frozenset(streams)


def index_of(segment_path: str | os.PathLike[str]) -> Index:
    """The index of a segment built by scanning it (what the writer writes when it
    finishes the segment, for what is readable)."""
    path = Path(segment_path)
    tally = Tally()
    for block in _scan(path, _Counts()):
        for columns in block:
            for entry in columns.entries():
                tally.add(entry.received_ns, entry.kind, entry.stream)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = 0
    return tally.index(size)


def directory_summary(directory: str | os.PathLike[str]) -> Summary:
    """Time range, entries, bytes, segments and entries per ``"<kind>:<stream>"`` of a
    recording, from the indexes (scanning the segments that have none)."""
    root = Path(directory)
    summary = Summary(
        directory=str(root),
        segments=0,
        scanned=0,
        first_ns=None,
        last_ns=None,
        entries=0,
        bytes=0,
        streams={},
    )
    for _, _, name in list_segments(root):
        index = load_index(root / name)
        if index is None:
            index = index_of(root / name)
            summary["scanned"] += 1
        summary["segments"] += 1
        summary["entries"] += index["entries"]
        summary["bytes"] += index["bytes"]
        for key, count in index["streams"].items():
            summary["streams"][key] = summary["streams"].get(key, 0) + count
        first, last = index["first_ns"], index["last_ns"]
        if first is not None and last is not None:
            low, high = summary["first_ns"], summary["last_ns"]
            summary["first_ns"] = first if low is None else min(low, first)
            summary["last_ns"] = last if high is None else max(high, last)
    summary["streams"] = dict(sorted(summary["streams"].items()))
    return summary
