"""Recording segments: raw frames as received, on disk, for replay and backtests.

An :class:`Entry` is one thing marketd received: a WebSocket frame (``kind`` "ws",
``stream`` the stream name, ``connection`` the connection that carried it, e.g.
"usdm-0") or a REST response (``kind`` "rest", ``stream`` the request path and query,
e.g. "/fapi/v1/depth?symbol=BTCUSDT&limit=1000"), with ``received_ns`` and the payload
bytes exactly as received.

A recording is a directory holding::

    <first received_ns, 20 digits>-<seq, 6+ digits>.seg.zst   a segment: entries
    <segment name>.idx.json                                   its index, once finished
    lock                                                      flock: one writer at a time

The first number is the ``received_ns`` of the segment's first entry; ``seq`` counts the
directory's segments (1 + the highest present when the writer opens), so names sort by
time and never collide. Segments are read in (first received_ns, seq) order.

Segment layout (integers little-endian, crc32 is zlib's). Every part is a zstd frame, the
headers being zstd *skippable* frames, so ``zstd -dc <segment>`` prints the records::

    file header (24 B):  u32 0x184D2A50 | u32 16 | b"MKDRECSG" | u16 format version
                         | u16 0 | u32 crc32(the 12 B before)
    block*:
      header (24 B):     u32 0x184D2A51 | u32 16 | u32 frame length | u32 raw length
                         | u32 crc32(frame) | u32 crc32(the 12 B before)
      frame:             one zstd frame (content size set) of raw length bytes: record*
    record:              u32 crc32(length and body) | u32 length | body (length B)
    body:                u64 received_ns | u8 kind (0 "ws", 1 "rest") | u16 len(connection)
                         | u16 len(stream) | connection utf-8 | stream utf-8 | payload

A block holds the entries appended between two flushes. Nothing is fsynced per block: a
crash loses the unflushed entries and may tear the last block (or leave zeros), but every
block before it stays readable.

Index (JSON, ``version`` 1), written atomically when :class:`SegmentWriter` finishes a
segment: ``first_ns`` / ``last_ns`` the lowest / highest ``received_ns`` (``null`` if
none), ``entries``, ``bytes`` (the segment file's size) and ``streams`` (entries per
``"<kind>:<stream>"``). An index whose ``bytes`` differs from the file's size, or that
does not parse, is ignored. A segment without a valid index (the one being written, or
one a crash left) is scanned instead; :func:`index_of` builds its index by scanning.

Writer (:class:`SegmentWriter`): ``append`` buffers; a block is written when
``max_block_bytes`` of records are buffered, on ``flush`` and on ``close``. A new
segment starts with the first entry whose ``received_ns`` lies more than
``max_segment_s`` after the current segment's first, and after a block brings the
segment's size above ``max_segment_bytes``. A finished segment is fsynced, then indexed.
Retention runs each time a segment starts: it deletes the oldest finished segments (in
name order; the segment and then its index) while the directory's segment bytes exceed
``max_total_bytes`` or while the oldest ended more than ``max_age_s`` before the newest
``received_ns`` appended (not the wall clock: deterministic). It never deletes the
segment being written, so the directory can exceed ``max_total_bytes`` by at most that
segment. A segment without an index is taken to end where the next one begins.

Reader (:func:`read`): entries in segment order, each segment's in append order, with
``start_ns <= received_ns < end_ns`` and ``stream`` in ``streams`` (when given). A
segment whose index shows it holds none of them is not opened. Bad data never raises, it
is counted (:class:`ReadStatistics`) and skipped: a block whose header or frame fails its
check (after a bad header the scanner resynchronises on the next valid block header), a
record that fails its check (the rest of its block is skipped), a torn tail (the last
block cut short, or zeros to the end), a file with a bad header (the whole file). The
reader sees each segment as long as it was when opened: a block the writer is writing
meanwhile is a torn tail.

Plain synchronous file I/O, no threads, no trio: run it in a worker thread from trio.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import struct
import zlib
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Final, TypedDict

import attrs
import msgspec
import structlog
import zstandard

from marketd.errors import MarketdError
from marketd.statefile import write_atomically

log = structlog.get_logger(__name__)

MiB: Final = 1024 * 1024
GiB: Final = 1024 * MiB

KINDS: Final = ("ws", "rest")  # the kind byte is the index in this tuple
_KIND_CODE: Final = {kind: code for code, kind in enumerate(KINDS)}

FORMAT_VERSION: Final = 1
INDEX_VERSION: Final = 1
SEGMENT_MAGIC: Final = b"MKDRECSG"
SEGMENT_SUFFIX: Final = ".seg.zst"
INDEX_SUFFIX: Final = ".idx.json"
LOCK_FILE: Final = "lock"
_FILE_FRAME: Final = 0x184D2A50  # zstd skippable-frame magics (0x184D2A5?)
_BLOCK_FRAME: Final = 0x184D2A51
_BLOCK_HEADER = struct.Struct("<IIIIII")
HEADER_SIZE: Final = 24  # both headers
_BLOCK_PREFIX: Final = struct.pack("<II", _BLOCK_FRAME, 16)
_RECORD = struct.Struct("<II")  # crc32, length
_BODY = struct.Struct("<QBHH")  # received_ns, kind, len(connection), len(stream)
MAX_RECORD: Final = 64 * MiB  # a record's body
# A block is flushed once it holds max_block_bytes (at most MAX_RECORD), so its raw size
# stays below two records' worth; anything larger is damage.
MAX_BLOCK_RAW: Final = 2 * (MAX_RECORD + _RECORD.size)
_MAX_FRAME: Final = MAX_BLOCK_RAW + MAX_BLOCK_RAW // 128 + MiB  # above zstd's bound
_NAME = re.compile(r"([0-9]{20})-([0-9]{6,})" + re.escape(SEGMENT_SUFFIX))
_crc32 = zlib.crc32


class RecorderError(MarketdError):
    """The recording directory cannot be written (in use by another writer, or the
    writer is closed): give each writer its own directory, or open a new writer."""


class Entry(msgspec.Struct, frozen=True, gc=False):
    """One raw frame or REST response as received (see the module documentation)."""

    received_ns: int
    kind: str  # "ws" or "rest"
    connection: str
    stream: str  # the stream name ("ws"), the request path and query ("rest")
    payload: bytes


class Index(TypedDict):
    version: int
    first_ns: int | None
    last_ns: int | None
    entries: int
    bytes: int
    streams: dict[str, int]


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
class WriterStatistics:
    entries_written: int  # written into segment files (flushed)
    entries_buffered: int  # appended, not written yet
    entries_dropped: int  # buffered, then lost to a failed write
    bytes_written: int  # compressed: headers and blocks
    segments_finished: int
    segments_deleted: int  # by retention
    current_segment: str | None  # the name of the segment being written


@attrs.frozen
class ReadStatistics:
    entries: int  # handed out
    segments_read: int  # opened and scanned
    segments_skipped: int  # not opened: their index shows nothing wanted
    corrupt_blocks: int  # a block header or frame failing its check (the block skipped)
    corrupt_records: int  # a record failing its check (the rest of its block skipped)
    torn_tails: int  # segments whose last block is cut short (or zero-filled)
    unreadable_segments: int  # bad file header: nothing of the file read


# -- format -----------------------------------------------------------------------------


def segment_name(first_ns: int, seq: int) -> str:
    return f"{first_ns:020d}-{seq:06d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    """``(first received_ns, seq)`` of a segment's file name, ``None`` for other files."""
    match = _NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2]))


def file_header() -> bytes:
    head = struct.pack("<II8sHH", _FILE_FRAME, 16, SEGMENT_MAGIC, FORMAT_VERSION, 0)
    return head + struct.pack("<I", _crc32(head[8:]))


def _file_header_ok(data: bytes) -> bool:
    # Every field of the header is fixed by the format version: compare the bytes.
    return data[:HEADER_SIZE] == _HEADER_BYTES


_HEADER_BYTES: Final = file_header()


def encode_record(entry: Entry) -> bytes:
    """One record (see the layout); ``ValueError`` for an entry the format cannot hold."""
    code = _KIND_CODE.get(entry.kind)
    if code is None:
        raise ValueError(f"entry kind {entry.kind!r} is none of {KINDS}")
    if not 0 <= entry.received_ns < 1 << 64:
        raise ValueError(f"received_ns {entry.received_ns} is outside 0 .. 2**64-1")
    connection = entry.connection.encode()
    stream = entry.stream.encode()
    if len(connection) > 0xFFFF or len(stream) > 0xFFFF:
        raise ValueError("an entry's connection and stream take at most 65535 bytes each")
    length = _BODY.size + len(connection) + len(stream) + len(entry.payload)
    if length > MAX_RECORD:
        raise ValueError(f"an entry of {length} B exceeds the recorder's {MAX_RECORD} B")
    head = struct.pack("<I", length) + _BODY.pack(
        entry.received_ns, code, len(connection), len(stream)
    )
    crc = _crc32(entry.payload, _crc32(stream, _crc32(connection, _crc32(head))))
    return b"".join((struct.pack("<I", crc), head, connection, stream, entry.payload))


def decode_records(raw: bytes) -> tuple[list[Entry], bool]:
    """The entries of a block's raw bytes, and whether it ended with a bad record (the
    entries after a bad record are not decoded: a bad length leaves no place to resume)."""
    out: list[Entry] = []
    end = len(raw)
    pos = 0
    with memoryview(raw) as view:
        while pos < end:
            if end - pos < _RECORD.size + _BODY.size:
                return out, True
            crc, length = _RECORD.unpack_from(raw, pos)
            stop = pos + _RECORD.size + length
            if length < _BODY.size or stop > end or _crc32(view[pos + 4 : stop]) != crc:
                return out, True
            received_ns, code, n_connection, n_stream = _BODY.unpack_from(raw, pos + 8)
            at = pos + _RECORD.size + _BODY.size
            payload_at = at + n_connection + n_stream
            if code >= len(KINDS) or payload_at > stop:
                return out, True
            try:
                connection = str(raw[at : at + n_connection], "utf-8")
                stream = str(raw[at + n_connection : payload_at], "utf-8")
            except UnicodeDecodeError:
                return out, True
            out.append(Entry(received_ns, KINDS[code], connection, stream, raw[payload_at:stop]))
            pos = stop
    return out, False


def encode_block(raw: bytes | bytearray, compressor: zstandard.ZstdCompressor) -> bytes:
    """A block header and the zstd frame of ``raw`` (records)."""
    frame = compressor.compress(raw)
    head = struct.pack("<III", len(frame), len(raw), _crc32(frame))
    return _BLOCK_PREFIX + head + struct.pack("<I", _crc32(head)) + frame


def _block_header(data: bytes) -> tuple[int, int, int] | None:
    """``(frame length, raw length, frame crc32)`` of a valid block header, else ``None``."""
    if len(data) < HEADER_SIZE or data[:8] != _BLOCK_PREFIX:
        return None
    _, _, frame_length, raw_length, frame_crc, crc = _BLOCK_HEADER.unpack_from(data)
    if crc != _crc32(data[8:20]) or raw_length > MAX_BLOCK_RAW or frame_length > _MAX_FRAME:
        return None
    return frame_length, raw_length, frame_crc


# -- reading ----------------------------------------------------------------------------


class _Counts:
    __slots__ = ("blocks", "entries", "read", "records", "skipped", "torn", "unreadable")

    def __init__(self) -> None:
        self.entries = self.read = self.skipped = 0
        self.blocks = self.records = self.torn = self.unreadable = 0


def _scan(path: Path, counts: _Counts) -> Iterator[list[Entry]]:
    """The entries of each readable block of a segment, counting what is not."""
    try:
        f = path.open("rb")
    except FileNotFoundError:  # deleted by retention since the directory was listed
        return
    with f:
        size = os.fstat(f.fileno()).st_size
        if not _file_header_ok(f.read(HEADER_SIZE)):
            counts.unreadable += 1
            return
        counts.read += 1
        decompressor = zstandard.ZstdDecompressor()
        pos = HEADER_SIZE
        while pos < size:
            f.seek(pos)
            header = f.read(HEADER_SIZE)
            parsed = _block_header(header)
            if parsed is None:
                if len(header) < HEADER_SIZE:
                    counts.torn += 1
                    return
                rest = f.read()  # after the bad header's first 24 B
                found = _resync(header[1:] + rest)
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
            entries, bad = decode_records(raw)
            counts.records += bad
            yield entries


def _resync(data: bytes) -> int | None:
    """The offset of the first valid block header in ``data``."""
    at = -1
    while (at := data.find(_BLOCK_PREFIX, at + 1)) >= 0:
        if _block_header(data[at : at + HEADER_SIZE]) is not None:
            return at
    return None


def _list_segments(directory: Path) -> list[tuple[int, int, str]]:
    """``(first received_ns, seq, name)`` of the directory's segments, in reading order."""
    found = []
    for name in os.listdir(directory):
        parsed = parse_segment_name(name)
        if parsed is not None:
            found.append((*parsed, name))
    return sorted(found)


def _load_index(path: Path) -> Index | None:
    """The segment's index if it is valid and describes the file as it is now."""
    try:
        size = path.stat().st_size
        data: Any = json.loads(Path(f"{path}{INDEX_SUFFIX}").read_bytes())
    except (OSError, ValueError):
        return None
    if not (
        isinstance(data, dict)
        and data.get("version") == INDEX_VERSION
        and data.get("bytes") == size
        and _is_count(data.get("entries"))
        and isinstance(streams := data.get("streams"), dict)
        and all(isinstance(k, str) and _is_count(v) for k, v in streams.items())
    ):
        return None
    first, last = data.get("first_ns"), data.get("last_ns")
    if data["entries"] == 0:
        if first is not None or last is not None:
            return None
    elif not (_is_count(first) and _is_count(last)):
        return None
    return Index(
        version=INDEX_VERSION,
        first_ns=first,
        last_ns=last,
        entries=data["entries"],
        bytes=size,
        streams=streams,
    )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class Reading(Iterator[Entry]):
    """The entries :func:`read` hands out, lazily; :meth:`statistics` counts so far."""

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
        self._entries = self._generate(_list_segments(directory))

    def __next__(self) -> Entry:
        return next(self._entries)

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

    def _generate(self, segments: list[tuple[int, int, str]]) -> Iterator[Entry]:
        start, end, streams, counts = self._start, self._end, self._streams, self._counts
        for _, _, name in segments:
            path = self._dir / name
            index = _load_index(path)
            if index is not None and not self._wanted(index):
                counts.skipped += 1
                continue
            for entries in _scan(path, counts):
                for entry in entries:
                    ns = entry.received_ns
                    if (
                        (start is None or ns >= start)
                        and (end is None or ns < end)
                        and (streams is None or entry.stream in streams)
                    ):
                        counts.entries += 1
                        yield entry

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


def read(
    directory: str | os.PathLike[str],
    *,
    start_ns: int | None = None,
    end_ns: int | None = None,
    streams: Collection[str] | None = None,
) -> Reading:
    """The recording's entries with ``start_ns <= received_ns < end_ns`` and ``stream``
    in ``streams`` (each bound optional), in order. Lists the directory now (segments
    written later are not read) and reads lazily. Raises only for bad arguments
    (``OSError`` if the directory cannot be listed); bad data is counted."""
    if isinstance(streams, str):
        raise TypeError("streams is a collection of stream names, not one name")
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise ValueError(f"start_ns {start_ns} is after end_ns {end_ns}")
    wanted = None if streams is None else frozenset(streams)
    return Reading(Path(directory), start_ns, end_ns, wanted)


def index_of(segment_path: str | os.PathLike[str]) -> Index:
    """The index of a segment built by scanning it (what the writer writes when it
    finishes the segment, for what is readable)."""
    path = Path(segment_path)
    tally = _Tally()
    for entries in _scan(path, _Counts()):
        for entry in entries:
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
    for _, _, name in _list_segments(root):
        index = _load_index(root / name)
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


# -- writing ----------------------------------------------------------------------------


class _Tally:
    """What an index counts, accumulated entry by entry."""

    __slots__ = ("entries", "first_ns", "last_ns", "streams")

    def __init__(self) -> None:
        self.entries = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.streams: dict[tuple[str, str], int] = {}

    def add(self, ns: int, kind: str, stream: str) -> None:
        self.entries += 1
        if self.first_ns is None or ns < self.first_ns:
            self.first_ns = ns
        if self.last_ns is None or ns > self.last_ns:
            self.last_ns = ns
        key = (kind, stream)
        self.streams[key] = self.streams.get(key, 0) + 1

    def merge(self, other: _Tally) -> None:
        low, high = other.first_ns, other.last_ns
        if low is None or high is None:
            return  # nothing counted
        self.first_ns = low if self.first_ns is None else min(self.first_ns, low)
        self.last_ns = high if self.last_ns is None else max(self.last_ns, high)
        self.entries += other.entries
        for key, count in other.streams.items():
            self.streams[key] = self.streams.get(key, 0) + count

    def index(self, size: int) -> Index:
        return Index(
            version=INDEX_VERSION,
            first_ns=self.first_ns,
            last_ns=self.last_ns,
            entries=self.entries,
            bytes=size,
            streams={f"{k}:{s}": n for (k, s), n in sorted(self.streams.items())},
        )


@attrs.define
class _Segment:
    name: str
    first_ns: int  # of its first entry (its name)
    size: int
    last_ns: int | None = None  # of a finished segment; None: unknown (no index)
    fd: int = -1  # the segment being written only
    tally: _Tally = attrs.field(factory=_Tally)


class SegmentWriter:
    """Appends entries to a recording directory (see the module documentation).

    Opens (creating it if missing) and locks the directory at construction. ``append``
    and ``flush`` raise ``OSError`` when a write fails (disk full): the block is dropped
    (``entries_dropped``), the segment ends at its last whole block, and the writer
    remains usable."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_segment_s: float = 300,
        max_segment_bytes: int = 64 * MiB,
        max_total_bytes: int = 2 * GiB,
        max_age_s: float | None = None,
        level: int = 3,
        max_block_bytes: int = MiB,
    ) -> None:
        if not (max_segment_s > 0 and max_segment_bytes > 0 and max_total_bytes > 0):
            raise ValueError("max_segment_s, max_segment_bytes and max_total_bytes must be > 0")
        if max_age_s is not None and not max_age_s > 0:
            raise ValueError("max_age_s must be > 0 (or None: no age limit)")
        if not 0 < max_block_bytes <= MAX_RECORD:
            raise ValueError(f"max_block_bytes must be in 1 .. {MAX_RECORD}")
        self._dir = Path(directory)
        self._max_span_ns = round(max_segment_s * 1e9)
        self._max_segment_bytes = max_segment_bytes
        self._max_total_bytes = max_total_bytes
        self._max_age_ns = None if max_age_s is None else round(max_age_s * 1e9)
        self._max_block_bytes = max_block_bytes
        self._compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._buffer = bytearray()
        self._pending = _Tally()  # the buffered entries
        self._current: _Segment | None = None
        self._finished: list[_Segment] = []  # oldest first
        self._newest_ns = 0
        self._written = self._dropped = self._bytes = 0
        self._segments_finished = self._segments_deleted = 0
        self._closed = False
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise RecorderError(
                f"recording directory {str(self._dir)!r} is in use by another writer"
            ) from None
        self._next_seq = 1
        for first_ns, seq, name in _list_segments(self._dir):
            index = _load_index(self._dir / name)
            size = index["bytes"] if index else (self._dir / name).stat().st_size
            last = index["last_ns"] if index else None
            self._finished.append(_Segment(name, first_ns, size, last))
            self._next_seq = max(self._next_seq, seq + 1)
        names = {segment.name for segment in self._finished}
        for name in os.listdir(self._dir):  # indexes whose segment retention deleted
            if name.endswith(INDEX_SUFFIX) and name.removesuffix(INDEX_SUFFIX) not in names:
                with contextlib.suppress(OSError):
                    os.unlink(self._dir / name)

    def append(self, entry: Entry) -> None:
        """Buffer ``entry`` (``ValueError``, nothing buffered, if the format cannot hold
        it); write a block once ``max_block_bytes`` are buffered."""
        if self._closed:
            raise RecorderError(f"the writer of {str(self._dir)!r} is closed")
        record = encode_record(entry)
        ns = entry.received_ns
        current = self._current
        if current is not None and ns - current.first_ns > self._max_span_ns:
            self.flush()
            if self._current is not None:  # flush() may have finished it (size)
                self._finish()
        self._newest_ns = max(self._newest_ns, ns)
        if self._current is None:
            self._start(ns)
        self._buffer += record
        self._pending.add(ns, entry.kind, entry.stream)
        if len(self._buffer) >= self._max_block_bytes:
            self.flush()

    def flush(self) -> None:
        """Write the buffered entries as one block (not fsynced)."""
        current = self._current
        if current is None or not self._buffer:
            return
        block = encode_block(self._buffer, self._compressor)
        pending, self._pending = self._pending, _Tally()
        self._buffer.clear()
        try:
            _pwrite_all(current.fd, block, current.size)
        except OSError:
            self._dropped += pending.entries
            with contextlib.suppress(OSError):  # keep the file a sequence of whole blocks
                os.ftruncate(current.fd, current.size)
            raise
        current.size += len(block)
        current.tally.merge(pending)
        self._bytes += len(block)
        self._written += pending.entries
        if current.size > self._max_segment_bytes:
            self._finish()

    def close(self) -> None:
        """Flush, finish the segment being written (fsync, index), release the directory.
        Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
            if self._current is not None:
                self._finish()
        finally:
            self._closed = True
            if self._current is not None and self._current.fd >= 0:
                os.close(self._current.fd)
            os.close(self._lock_fd)  # releases the flock

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def statistics(self) -> WriterStatistics:
        return WriterStatistics(
            entries_written=self._written,
            entries_buffered=self._pending.entries,
            entries_dropped=self._dropped,
            bytes_written=self._bytes,
            segments_finished=self._segments_finished,
            segments_deleted=self._segments_deleted,
            current_segment=None if self._current is None else self._current.name,
        )

    def _start(self, first_ns: int) -> None:
        name = segment_name(first_ns, self._next_seq)
        path = self._dir / name
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        self._next_seq += 1
        try:
            _pwrite_all(fd, file_header(), 0)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        self._current = _Segment(name, first_ns, HEADER_SIZE, fd=fd)
        self._bytes += HEADER_SIZE
        self._retain()

    def _finish(self) -> None:
        """Finish the segment being written (its buffer flushed): fsync, then index."""
        current = self._current
        assert current is not None
        self._current = None
        fd, current.fd = current.fd, -1
        try:
            os.fsync(fd)  # the index never describes blocks a power loss could take
        finally:
            os.close(fd)
            current.last_ns = current.tally.last_ns
            self._finished.append(current)
            self._segments_finished += 1
        text = json.dumps(current.tally.index(current.size), ensure_ascii=False)
        write_atomically(self._dir / f"{current.name}{INDEX_SUFFIX}", text)
        current.tally = _Tally()  # counted in the index: free the per-stream counts

    def _retain(self) -> None:
        """Delete the oldest finished segments beyond the byte or age limit."""
        finished = self._finished
        total = sum(segment.size for segment in finished)
        total += 0 if self._current is None else self._current.size
        horizon = None if self._max_age_ns is None else self._newest_ns - self._max_age_ns
        while finished:
            oldest = finished[0]
            last_ns = oldest.last_ns
            if last_ns is None:  # no index: it ended before the next segment began
                after = finished[1] if len(finished) > 1 else self._current
                last_ns = oldest.first_ns if after is None else after.first_ns
            if total <= self._max_total_bytes and (horizon is None or last_ns >= horizon):
                return
            path = self._dir / oldest.name
            try:
                path.unlink(missing_ok=True)
            except OSError:  # it stays; the next rotation tries again
                log.exception("cannot delete a recording segment", path=str(path))
                return
            with contextlib.suppress(OSError):
                Path(f"{path}{INDEX_SUFFIX}").unlink(missing_ok=True)
            finished.pop(0)
            total -= oldest.size
            self._segments_deleted += 1


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    with memoryview(data) as view:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, view[done:], offset + done)
