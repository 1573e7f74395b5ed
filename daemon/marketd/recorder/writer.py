"""Writing a recording: :class:`SegmentWriter` (with :class:`WriterStatistics`), which
appends entries in blocks, rotates segments, writes their indexes and applies retention.
The format is :mod:`.format`'s.

Writer (:class:`SegmentWriter`): ``append`` (an entry) and ``append_frames`` (a batch of
WebSocket frames, the hot path: the same bytes at a fraction of the cost) buffer, in
groups (format version 2); a block is written when ``max_block_bytes`` of groups are
buffered (right after the entry that reaches it), on ``flush`` and on ``close``. A new
segment starts with the first entry whose ``received_ns`` lies more than
``max_segment_s`` after the current segment's first, and after a block brings the
segment's size above ``max_segment_bytes``. A finished segment is fsynced, then indexed.
Retention runs each time a segment starts: it deletes the oldest finished segments (in
name order; the segment and then its index) while the directory's segment bytes exceed
``max_total_bytes`` or while the oldest ended more than ``max_age_s`` before the newest
``received_ns`` appended (not the wall clock: deterministic). It never deletes the
segment being written, so the directory can exceed ``max_total_bytes`` by at most that
segment. A segment without an index is taken to end where the next one begins.

Plain synchronous file I/O, no threads, no trio: run it in a worker thread from trio.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate
from pathlib import Path

import attrs
import structlog
import zstandard

from marketd.errors import MarketdError
from marketd.recorder.format import (
    HEADER_SIZE,
    INDEX_SUFFIX,
    KIND_CODE,
    KINDS,
    LOCK_FILE,
    MAX_RECORD,
    Entry,
    GiB,
    MiB,
    encode_block,
    file_header,
    segment_name,
)
from marketd.recorder.groups import ENTRY_SIZE, GROUP_HEADER, MAX_NAME, MAX_STREAMS, Group
from marketd.recorder.index import Tally, list_segments, load_index
from marketd.statefile import write_atomically

log = structlog.get_logger(__name__)


class RecorderError(MarketdError):
    """The recording directory cannot be written (in use by another writer, or the
    writer is closed): give each writer its own directory, or open a new writer."""


@attrs.frozen
class WriterStatistics:
    entries_written: int  # written into segment files (flushed)
    entries_buffered: int  # appended, not written yet
    entries_dropped: int  # buffered, then lost to a failed write
    bytes_written: int  # compressed: headers and blocks
    segments_finished: int
    segments_deleted: int  # by retention
    current_segment: str | None  # the name of the segment being written


@attrs.define
class _Segment:
    name: str
    first_ns: int  # of its first entry (its name)
    size: int
    last_ns: int | None = None  # of a finished segment; None: unknown (no index)
    fd: int = -1  # the segment being written only
    tally: Tally = attrs.field(factory=Tally)


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
        level: int = 1,
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
        # Level 1 by default: on the groups' columns it comes within 1 % of level 3's size
        # (the fake's trades and depth diffs: 21.6 against 21.4 B a frame) for 70 % of the CPU.
        self._compressor = zstandard.ZstdCompressor(level=level, write_content_size=True)
        self._done: list[bytes] = []  # the encoded groups of the block being gathered
        self._done_size = 0
        self._open: Group | None = None  # the group entries are being added to
        self._pending = Tally()  # the buffered entries
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
        for first_ns, seq, name in list_segments(self._dir):
            index = load_index(self._dir / name)
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
        code = KIND_CODE.get(entry.kind)
        if code is None:
            raise ValueError(f"entry kind {entry.kind!r} is none of {KINDS}")
        ns = entry.received_ns
        if not 0 <= ns < 1 << 64:
            raise ValueError(f"received_ns {ns} is outside 0 .. 2**64-1")
        n_stream, n_conn = len(entry.stream.encode()), len(entry.connection.encode())
        if n_conn > MAX_NAME or n_stream > MAX_NAME:
            raise ValueError(f"an entry's connection and stream take at most {MAX_NAME} bytes each")
        size = GROUP_HEADER + n_conn + 2 + n_stream + ENTRY_SIZE + len(entry.payload)
        if size > MAX_RECORD:
            raise ValueError(f"an entry of {size} B exceeds the recorder's {MAX_RECORD} B")
        self._rotate_before(ns)
        stream = entry.stream
        known = self._open_for(code, entry.connection)
        group = self._group(code, entry.connection, known is None or stream not in known.table)
        group.append(ns, stream, entry.payload)
        self._pending.add(ns, entry.kind, stream)
        if self._done_size + group.size >= self._max_block_bytes:
            self.flush()

    def append_frames(
        self,
        connection: str,
        frames: Sequence[str],
        received_ns: Sequence[int],
        streams: Sequence[str],
    ) -> None:
        """Buffer WebSocket frames of one connection: the same as :meth:`append` of an
        ``Entry(ns, "ws", connection, stream, frame.encode())`` each, at a fraction of the
        cost: the batch is encoded at once, and cut only where a segment or a block ends."""
        if self._closed:
            raise RecorderError(f"the writer of {str(self._dir)!r} is closed")
        n = len(frames)
        if len(received_ns) != n or len(streams) != n:
            raise ValueError("frames, received_ns and streams differ in length")
        if not n:
            return
        text = "".join(frames)
        if text.isascii():  # one encode; a character is a byte
            payloads = text.encode("ascii")
            lengths = array("I", map(len, frames))
        else:
            encoded = [frame.encode() for frame in frames]
            payloads = b"".join(encoded)
            lengths = array("I", map(len, encoded))
        try:
            times = array("Q", received_ns)
        except OverflowError:
            raise ValueError("a received_ns is outside 0 .. 2**64-1") from None
        n_conn = len(connection.encode())
        if n_conn > MAX_NAME or max(lengths) + _WORST_ENTRY + n_conn > MAX_RECORD:
            for frame, ns, stream in zip(frames, received_ns, streams, strict=True):
                self.append(Entry(ns, "ws", connection, stream, frame.encode()))  # says why
            return
        high = max(times)
        offsets: list[int] | None = None  # of each payload, once the batch is cut
        i = 0
        while i < n:
            self._rotate_before(times[i])
            assert self._current is not None
            limit = self._current.first_ns + self._max_span_ns
            j = n
            if (high if i == 0 else max(times[i:])) > limit:  # the segment ends in the batch
                j = next(k for k in range(i + 1, n) if times[k] > limit)
            piece = streams if j - i == n else streams[i:j]
            known = self._open_for(0, connection)
            ids = None if known is None else known.ids_of(piece)
            new: list[str] = []
            if ids is None:
                table = {} if known is None else known.table
                new = [s for s in dict.fromkeys(piece) if s not in table]
                if len(table) + len(new) > MAX_STREAMS:  # never in practice: one by one
                    if offsets is None:
                        offsets = [0, *accumulate(lengths)]
                    for k in range(i, j):
                        payload = payloads[offsets[k] : offsets[k + 1]]
                        self.append(Entry(times[k], "ws", connection, streams[k], payload))
                    i = j
                    continue
            group = self._group(0, connection, len(new))
            if j - i < n and offsets is None:
                offsets = [0, *accumulate(lengths)]
            size = len(payloads) if offsets is None else offsets[j] - offsets[i]
            cost = ENTRY_SIZE * (j - i) + size + sum(2 + len(s.encode()) for s in new)
            room = self._max_block_bytes - self._done_size - group.size
            cut = cost >= room
            if cut:  # the block fills up within the piece: cut right after that entry
                j, new = _fill(room, piece, new, lengths, i)
                piece = streams[i:j]
                if offsets is None:
                    offsets = [0, *accumulate(lengths)]
            if new:
                group.add_streams(new)
            if ids is None or cut:
                ids = group.ids_of(piece)
                assert ids is not None
            if offsets is None:  # the whole batch, as it came
                group.extend(times, ids, lengths, payloads)
                self._pending.add_many("ws", times, piece)
                self._newest_ns = max(self._newest_ns, high)
            else:
                cut_times = times[i:j]
                payload = payloads[offsets[i] : offsets[j]]
                group.extend(cut_times, ids, lengths[i:j], payload)
                self._pending.add_many("ws", cut_times, piece)
                self._newest_ns = max(self._newest_ns, max(cut_times))
            if self._done_size + group.size >= self._max_block_bytes:
                self.flush()
            i = j

    def _rotate_before(self, ns: int) -> None:
        """Before an entry received at ``ns``: end the segment if it spans too long, and
        start one if none is being written."""
        current = self._current
        if current is not None and ns - current.first_ns > self._max_span_ns:
            self.flush()
            if self._current is not None:  # flush() may have finished it (size)
                self._finish()
        if ns > self._newest_ns:
            self._newest_ns = ns
        if self._current is None:
            self._start(ns)

    def _open_for(self, code: int, connection: str) -> Group | None:
        """The open group if entries of ``code`` and ``connection`` go on in it."""
        group = self._open
        if group is None or group.code != code or group.connection != connection:
            return None
        return group

    def _group(self, code: int, connection: str, new_streams: int) -> Group:
        """The group to add entries of ``code`` and ``connection`` to, with room for
        ``new_streams`` more streams in its table (a new group if the open one is not)."""
        group = self._open
        if group is not None and (
            group.code != code
            or group.connection != connection
            or len(group.table) + new_streams > MAX_STREAMS
        ):
            self._done.append(group.encode())
            self._done_size += group.size
            group = None
        if group is None:
            group = self._open = Group(code, connection)
        return group

    def flush(self) -> None:
        """Write the buffered entries as one block (not fsynced)."""
        current = self._current
        if current is None:
            return
        if self._open is not None:
            self._done.append(self._open.encode())
            self._open = None
        if not self._done:
            return
        block = encode_block(b"".join(self._done), self._compressor)
        pending, self._pending = self._pending, Tally()
        self._done.clear()
        self._done_size = 0
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
        current.tally = Tally()  # counted in the index: free the per-stream counts

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


# The most an entry adds to a group beside its payload and connection (a new stream).
_WORST_ENTRY = GROUP_HEADER + 2 + MAX_NAME + ENTRY_SIZE


def _fill(
    room: int, piece: Sequence[str], new: list[str], lengths: array[int], i: int
) -> tuple[int, list[str]]:
    """Where a piece of a batch (its entries from ``i``) is cut for its block to hold
    ``room`` bytes or just more (as entry by entry would: right after the entry that
    reaches it), and the new streams of the part that stays."""
    costs = [ENTRY_SIZE + n for n in lengths[i : i + len(piece)]]
    firsts = [piece.index(s) for s in new]  # in order: new is in order of appearance
    for at, stream in zip(firsts, new, strict=True):
        costs[at] += 2 + len(stream.encode())
    k = bisect_left(list(accumulate(costs)), room)
    return i + k + 1, [s for at, s in zip(firsts, new, strict=True) if at <= k]
