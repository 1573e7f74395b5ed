"""The durable, bounded, append-only spool of :class:`~marketd.data.records.Record` s.

A directory of segment files (format: :mod:`marketd.spool.format`) plus an ack
checkpoint (:mod:`marketd.spool.checkpoint`) and a ``lock`` file (``flock``: one process
per directory). Records are appended at the tail, read in append order from a read
cursor, and acknowledged (``ack``) up to a position once Kafka has them; whole segments
below the ack cursor are deleted.

Hot tail: while the reader keeps up, :meth:`Spool.read` hands out the very records that
:meth:`Spool.append` just wrote, kept in memory (at most ``HOT_TAIL_RECORDS``), instead of
reading and decoding them back from the page cache. What is handed out and where the
cursors go are the same either way; once the reader falls behind by more than that, the
kept records are dropped and it reads from the files until it has caught up again.

Threading: plain synchronous file I/O. :meth:`Spool.append`, :meth:`~Spool.read`,
:meth:`~Spool.ack`, :meth:`~Spool.rewind` and :meth:`~Spool.statistics` touch only the
page cache (a ``write``/``pread``/``pwrite``/``unlink`` of at most a few MiB) and are
called directly from the trio thread, always the same thread. :meth:`~Spool.sync`
(``fdatasync``) is the one blocking call: run it with ``trio.to_thread.run_sync``; it may
run while that thread keeps appending, reading and acking (it opens the segment files
by path, so it shares no descriptor with them). :meth:`Spool.open` (it may scan a
segment) and :meth:`~Spool.close` (it syncs) belong in a worker thread too.

Guarantees (``append`` returned ⇒ "accepted"):

* ``kill -9`` of the process at any point: nothing accepted is lost. ``append`` writes
  every entry to the segment file before it returns (the page cache outlives the
  process); an append interrupted half-way was not accepted and leaves at most a torn
  tail, which the next open detects by checksum and truncates (``truncated_bytes``).
* OS crash or power loss: what :meth:`~Spool.sync` covered (``synced_seq``; everything
  accepted before the call started) is not lost; accepted records after the last sync
  may be. A torn or zero-filled tail is truncated at open.
* Duplicates: after a restart, reading starts after the last checkpointed ack; every
  record not acknowledged by then is delivered again (at-least-once). Duplicates are
  thus bounded by the records read but not acked when the crash came (after a power
  loss also those acked after the last sync, as the checkpoint is fsynced by ``sync``).
  If the checkpoint is unreadable (both slots spoiled) every segment still present is
  replayed (``checkpoint_corrupted``). Kafka consumers recognise duplicates by the event
  identity in the record (topic, key, kind and exchange id ``seq`` / event time).
* Order: records are read in append order, across segments and restarts.
* Corruption: an entry whose checksum fails is never delivered. In the middle of a file
  it is skipped up to the next valid entry, counted (``corrupted_entries``,
  ``corrupted_bytes``) and logged as an error; the spool carries on. Entries lost that
  way are the only loss the spool admits, and only for damage done to synced data
  behind its back (disk bit rot, a hand edit).
* Bound: ``append`` is all-or-nothing; it raises :class:`SpoolFull` if the segment files
  would pass ``max_bytes`` (or the disk is full) and writes nothing. Acked entries in
  the oldest segment occupy space until the whole segment is acked, so at least
  ``max_bytes - segment_bytes`` are usable.
* Hold: opened with ``hold_after``, the spool keeps acked segments holding records
  above that seq on disk until :meth:`~Spool.release` moves it on. The spool stage
  holds what its last trade ids checkpoint (:mod:`marketd.spool.sequence`) does not
  cover yet, so that recovery after a ``kill -9`` can still read those records' ids.
  Held bytes count towards ``max_bytes``.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import itertools
import os
import threading
import time
from collections.abc import Iterable
from types import TracebackType

import structlog
from prometheus_client.core import Metric

from marketd.data.records import Record
from marketd.spool import format as fmt
from marketd.spool.checkpoint import CheckpointFile
from marketd.spool.format import SEGMENT_HEADER_SIZE as HEADER
from marketd.spool.format import Scan
from marketd.spool.metrics import spool_metrics
from marketd.spool.model import Position, SpoolError, SpoolFull, SpoolStatistics
from marketd.spool.settings import SpoolSettings

__all__ = ["Position", "Spool", "SpoolError", "SpoolFull", "SpoolStatistics"]

log = structlog.get_logger(__name__)

READ_CHUNK = 1024 * 1024
LOCK_FILE = "lock"
# Records kept in memory for a reader that keeps up (see "Hot tail" above): a few
# seconds of traffic at the rates a process sustains.
HOT_TAIL_RECORDS = 50_000


class _Segment:
    __slots__ = ("dirty", "first", "path", "size", "wfd")

    def __init__(self, first: int, path: str, size: int) -> None:
        self.first = first  # seq of its first entry (its name)
        self.path = path
        self.size = size  # bytes of whole entries written (the file's size)
        self.wfd: int | None = None  # append descriptor (the active segment only)
        self.dirty = False  # written since the last sync's snapshot


class Spool:
    """See the module documentation. Make one with :meth:`open`."""

    def __init__(self, settings: SpoolSettings, hold_after: int | None = None) -> None:
        self.settings = settings
        # Acked segments with records above this seq stay on disk (None: no hold).
        self._hold = hold_after
        self._dir = settings.directory
        self._lock = threading.Lock()  # segment list, dirty flags, descriptors vs sync()
        self._sync_lock = threading.Lock()  # one sync() at a time
        self._segments: list[_Segment] = []
        self._bytes = 0
        self._next_seq = 1
        self._ack_seq = 0
        self._ack_at = (0, HEADER)  # (segment, offset) of the first unacked entry
        self._read_at = (0, HEADER)
        self._read_seq = 0  # highest seq handed out by read()
        self._read_fd: tuple[int, int] | None = None  # (segment, fd)
        # Appended, unread records in memory: empty, or seqs _read_seq+1 .. _next_seq-1.
        self._hot: collections.deque[tuple[Position, Record]] = collections.deque()
        self._gaps: list[tuple[int, int]] = []  # seqs lost to corruption, above the ack
        self._seen_bad: set[tuple[int, int]] = set()
        self._dir_dirty = False
        self._synced_seq = 0
        self._syncs = self._appends = 0
        self._appended = self._acked = self._refused = 0
        self._corrupted = self._corrupted_bytes = self._truncated = 0
        self._full = False
        self._checkpoint_corrupted = False
        self._broken: BaseException | None = None
        self._closed = False
        self._peeked: tuple[tuple[int, int, int], int] | None = None
        self._dir_fd = -1
        self._lock_fd = -1
        self._ckpt: CheckpointFile | None = None

    # -- opening and recovery -----------------------------------------------------------

    @classmethod
    def open(cls, settings: SpoolSettings, *, hold_after: int | None = None) -> Spool:
        """Open (creating it if missing) and recover the spool in ``settings.directory``;
        with ``hold_after``, acked records above it stay on disk until :meth:`release`."""
        spool = cls(settings, hold_after)
        try:
            spool._recover()
        except BaseException:
            spool._close_fds()
            raise
        return spool

    def _recover(self) -> None:
        d = self._dir
        try:
            os.makedirs(d, exist_ok=True)
            self._dir_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
            self._lock_fd = os.open(os.path.join(d, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SpoolError(f"cannot open spool directory {d!r}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolError(
                f"spool directory {d!r} is in use by another process; "
                "give each marketd its own spool.directory"
            ) from None
        self._ckpt = ckpt = CheckpointFile(d)
        self._checkpoint_corrupted = ckpt.corrupted
        if ckpt.corrupted:
            log.error("spool ack checkpoint unreadable; replaying every segment", directory=d)
        ack = self._ack_seq = self._read_seq = ckpt.current.ack_seq
        firsts = sorted(
            first for name in os.listdir(d) if (first := fmt.parse_segment_name(name)) is not None
        )
        for first in firsts:
            path = os.path.join(d, fmt.segment_name(first))
            self._segments.append(_Segment(first, path, os.stat(path).st_size))
        while len(self._segments) >= 2 and self._segments[1].first <= self._deletable() + 1:
            self._unlink(self._segments.pop(0))  # acked before the crash, not deleted yet
        last_seq, keep = self._recover_tail()
        self._next_seq = max(ack + 1, last_seq + 1)
        if keep:
            tail = self._segments[-1]
            tail.wfd = os.open(tail.path, os.O_WRONLY | os.O_APPEND)
        else:  # a new active segment (never append behind a segment not validated)
            self._new_segment(self._next_seq)
        self._bytes = sum(seg.size for seg in self._segments)
        cp = ckpt.current
        hint = self._find(cp.segment)
        if hint is not None and HEADER <= cp.offset <= hint.size:
            self._ack_at = (cp.segment, cp.offset)
        else:
            start = self._segments[0]
            for seg in self._segments:
                if seg.first <= ack + 1:
                    start = seg
            self._ack_at = (start.first, HEADER)
        self._read_at = self._ack_at
        self._synced_seq = self._next_seq - 1  # recovered data is whatever is on disk
        log.info(
            "spool opened",
            directory=d,
            segments=len(self._segments),
            bytes=self._bytes,
            pending=self._pending(),
            ack_seq=ack,
            next_seq=self._next_seq,
            truncated_bytes=self._truncated,
        )

    def _recover_tail(self) -> tuple[int, bool]:
        """Validate the last segment and truncate its torn tail. Return its last valid seq
        and whether to keep appending to it (a segment without entries is deleted)."""
        if not self._segments:
            return 0, False
        seg = self._segments[-1]
        with open(seg.path, "rb") as f:
            data = f.read()
        if len(data) < HEADER:
            self._unlink(self._segments.pop())  # torn at creation: nothing in it
            if data:
                self._truncated += len(data)
                log.warning("spool segment torn at creation; removed", path=seg.path)
            return seg.first - 1, False
        if (problem := fmt.check_segment_header(data)) is not None:
            self._count_bad(seg, 0, HEADER, problem)
        last_seq, valid_end, pos = seg.first - 1, HEADER, HEADER
        while True:
            entries, pos, why = fmt.scan(data, pos, len(data), 1 << 62)
            if entries:
                last_seq, valid_end = max(last_seq, entries[-1][0]), entries[-1][2]
            if why is Scan.END:
                break
            nxt = fmt.resync(data, pos, len(data))
            if nxt is None:
                break  # nothing valid follows: a torn tail
            self._count_bad(seg, pos, nxt, "checksum mismatch")
            pos = nxt
        if valid_end < len(data):
            self._truncated += len(data) - valid_end
            log.warning(
                "spool torn tail truncated",
                path=seg.path,
                offset=valid_end,
                bytes=len(data) - valid_end,
            )
            os.truncate(seg.path, valid_end)
        seg.size = valid_end
        if valid_end == HEADER:
            self._unlink(self._segments.pop())
            return last_seq, False
        return last_seq, True

    # -- appending ----------------------------------------------------------------------

    def append(self, records: list[Record]) -> None:
        """Write ``records`` at the tail, all or nothing (see the module doc for what
        survives what). Raises :class:`SpoolFull` (nothing written) or :class:`SpoolError`."""
        self._check_usable()
        if not records:
            return
        buf = bytearray()
        ends = fmt.encode_entries(records, self._next_seq, buf)
        # Plan the pieces: a new segment starts before an entry that would overflow one.
        seg_bytes = self.settings.segment_bytes
        size = self._segments[-1].size
        cuts: list[int] = []  # entry indexes that start a new segment
        start = 0
        for i, end in enumerate(ends):
            if size > HEADER and size + end - start > seg_bytes:
                cuts.append(i)
                size = HEADER
            size += end - start
            start = end
        needed = len(buf) + HEADER * len(cuts)
        if self._bytes + needed > self.settings.max_bytes:
            self._refuse()
            raise SpoolFull(
                f"spool {self._dir!r} full: {self._bytes} B + {needed} B > max_bytes "
                f"{self.settings.max_bytes}; intake waits for Kafka acknowledgements"
            )
        n_before, size_before = len(self._segments), self._segments[-1].size
        # The reader has everything before these: hand them over from memory.
        hot = (
            self._hot
            if (self._hot or self._read_seq == self._next_seq - 1)
            and len(self._hot) + len(records) <= HOT_TAIL_RECORDS
            else None
        )
        placed: list[tuple[Position, Record]] = []
        try:
            bounds = [0, *cuts, len(records)]
            for k in range(len(bounds) - 1):
                a, b = bounds[k], bounds[k + 1]
                if k:
                    self._roll(self._next_seq + a)
                if a < b:  # the first piece is empty when the active segment is full
                    seg = self._segments[-1]
                    lo = ends[a - 1] if a else 0
                    if hot is not None:
                        first, base, seq0 = seg.first, seg.size - lo, self._next_seq
                        # (Position(seq0 + i, first, base + ends[i]), records[i]) for i in
                        # a..b-1, made by C-level maps rather than a Python step each.
                        placed += zip(
                            map(
                                Position,
                                range(seq0 + a, seq0 + b),
                                itertools.repeat(first, b - a),
                                map(base.__add__, ends[a:b]),
                            ),
                            records[a:b],
                            strict=True,
                        )
                    self._write(seg, buf, lo, ends[b - 1])
        except OSError as exc:
            self._undo(n_before, size_before)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._refuse()
                raise SpoolFull(f"disk full under spool {self._dir!r}: {exc}") from exc
            raise SpoolError(f"cannot write spool {self._dir!r}: {exc}") from exc
        with self._lock:
            for seg in self._segments[n_before - 1 :]:
                seg.dirty = True
            self._next_seq += len(records)
        if hot is not None:
            hot.extend(placed)
        else:
            self._hot.clear()  # fallen behind: read from the files until caught up
        self._bytes += needed
        self._appended += len(records)
        self._appends += 1
        self._full = False
        if cuts:
            self._collect()

    def _write(self, seg: _Segment, buf: bytearray, lo: int, hi: int) -> None:
        assert seg.wfd is not None
        with memoryview(buf) as view:
            while lo < hi:
                n = os.write(seg.wfd, view[lo:hi])
                lo += n
                seg.size += n

    def _roll(self, first: int) -> None:
        sealed = self._segments[-1]
        if sealed.wfd is not None:  # its data stays in the page cache; sync() opens it by path
            os.close(sealed.wfd)
            sealed.wfd = None
        self._new_segment(first)

    def _new_segment(self, first: int) -> None:
        path = os.path.join(self._dir, fmt.segment_name(first))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        seg = _Segment(first, path, 0)
        seg.wfd = fd
        with self._lock:
            self._segments.append(seg)
            self._dir_dirty = True
            seg.dirty = True
        header = fmt.segment_header()
        while seg.size < HEADER:
            seg.size += os.write(fd, header[seg.size :])

    def _undo(self, n_before: int, size_before: int) -> None:
        """Remove what a failed append wrote, so that it is all-or-nothing."""
        try:
            while len(self._segments) > n_before:
                seg = self._segments[-1]
                with self._lock:
                    self._segments.pop()
                if seg.wfd is not None:
                    os.close(seg.wfd)
                os.unlink(seg.path)
            active = self._segments[-1]
            if active.wfd is None:  # closed by a roll: the failed append's, reopen
                active.wfd = os.open(active.path, os.O_WRONLY | os.O_APPEND)
            os.ftruncate(active.wfd, size_before)
            active.size = size_before
        except OSError as exc:
            self._broken = exc
            log.exception("spool unusable after a failed append", directory=self._dir)
            raise SpoolError(f"spool {self._dir!r} unusable ({exc}); restart marketd") from exc

    def _refuse(self) -> None:
        self._refused += 1
        self._full = True

    # -- reading and acknowledging ----------------------------------------------------

    def read(self, max_records: int) -> list[tuple[Position, Record]]:
        """Up to ``max_records`` records after the read cursor, in append order."""
        self._check_usable()
        hot = self._hot
        if hot:
            if len(hot) <= max_records:  # all of it (the reader keeps up)
                out = list(hot)
                hot.clear()
            else:
                out = [hot.popleft() for _ in range(max_records)]
            last = out[-1][0]
            self._read_at, self._read_seq = (last.segment, last.end), last.seq
            return out
        out, self._read_at = self._fetch(self._read_at, max_records, self._read_seq, True)
        if out:
            self._read_seq = out[-1][0].seq
        return out

    def ack(self, position: Position) -> None:
        """Kafka has every record up to ``position``: move the ack cursor there (and write
        the checkpoint), delete the segments wholly below it."""
        self._check_usable()
        if position.seq <= self._ack_seq:
            return
        if position.seq > self._read_seq:
            raise ValueError(f"cannot ack seq {position.seq}: read only up to {self._read_seq}")
        self._acked += position.seq - self._ack_seq - self._missing(self._ack_seq, position.seq)
        self._ack_seq = position.seq
        self._ack_at = (position.segment, position.end)
        self._gaps = [(lo, hi) for lo, hi in self._gaps if hi > position.seq]
        assert self._ckpt is not None
        try:
            self._ckpt.write(position.seq, position.segment, position.end)
        except OSError as exc:
            raise SpoolError(f"cannot write the spool checkpoint in {self._dir!r}: {exc}") from exc
        self._full = False
        self._collect()

    def peek_after(self, seq: int, max_records: int) -> list[tuple[Position, Record]]:
        """Up to ``max_records`` records with a spool seq above ``seq`` that are still on
        disk, in order, without moving any cursor (start-up recovery reads the tail)."""
        self._check_usable()
        start = self._segments[0].first if self._segments else 1
        for seg in self._segments:
            if seg.first <= seq + 1:
                start = seg.first
        found, _ = self._fetch((start, HEADER), max_records, seq, False)
        return found

    def rewind(self) -> None:
        """Move the read cursor back to the ack cursor: unacked records are read again."""
        self._read_at, self._read_seq = self._ack_at, self._ack_seq
        self._gaps = []
        self._hot.clear()

    def _fetch(
        self, cursor: tuple[int, int], max_records: int, after_seq: int, commit: bool
    ) -> tuple[list[tuple[Position, Record]], tuple[int, int]]:
        out: list[tuple[Position, Record]] = []
        first, off = cursor
        last = after_seq
        want = READ_CHUNK
        while len(out) < max_records:
            seg = self._at_or_after(first)
            if seg is None:
                break
            if seg.first != first:
                first, off = seg.first, HEADER
            limit = seg.size
            if off >= limit:
                if seg is self._segments[-1]:
                    break
                first, off = first + 1, HEADER
                continue
            data = os.pread(self._reader(seg), min(limit - off, want), off)
            if not data:  # the file is shorter than recorded: damaged behind our back
                self._count_bad(seg, off, limit, "segment file shorter than written")
                off = limit
                continue
            want = READ_CHUNK
            entries, stop, why = fmt.scan(data, 0, len(data), max_records - len(out))
            with memoryview(data) as view:
                for seq, p0, p1 in entries:
                    if seq <= last:
                        continue  # acked (a restart starts at a segment's beginning)
                    try:
                        record = fmt.decode_record(view[p0:p1])
                    except (ValueError, TypeError) as exc:  # msgspec errors are ValueErrors
                        self._count_bad(seg, off + p0 - fmt.ENTRY_HEADER_SIZE, off + p1, repr(exc))
                        continue
                    if commit and seq > last + 1:
                        self._gaps.append((last + 1, seq - 1))
                    last = seq
                    out.append((Position(seq, first, off + p1), record))
            off += stop
            if why is Scan.SHORT and off + len(data) - stop < limit:
                header_left = len(data) - stop
                if header_left >= fmt.ENTRY_HEADER_SIZE:  # one entry larger than the chunk
                    length = int.from_bytes(data[stop + 8 : stop + 12], "little")
                    want = fmt.ENTRY_HEADER_SIZE + length
                continue
            if why is Scan.BAD or why is Scan.SHORT:
                rest = os.pread(self._reader(seg), limit - off, off)
                nxt = fmt.resync(rest, 0, len(rest))
                stop_at = limit if nxt is None else off + nxt
                self._count_bad(seg, off, stop_at, "checksum mismatch")
                off = stop_at
        return out, (first, off)

    def _at_or_after(self, first: int) -> _Segment | None:
        for seg in self._segments:
            if seg.first >= first:  # the cursor's segment, or the next one if it is gone
                return seg
        return None

    def _find(self, first: int) -> _Segment | None:
        for seg in self._segments:
            if seg.first == first:
                return seg
        return None

    def _reader(self, seg: _Segment) -> int:
        if self._read_fd is not None:
            if self._read_fd[0] == seg.first:
                return self._read_fd[1]
            os.close(self._read_fd[1])
            self._read_fd = None
        fd = os.open(seg.path, os.O_RDONLY)
        self._read_fd = (seg.first, fd)
        return fd

    def _count_bad(self, seg: _Segment, start: int, stop: int, reason: str) -> None:
        if (seg.first, start) in self._seen_bad:
            return
        self._seen_bad.add((seg.first, start))
        self._corrupted += 1
        self._corrupted_bytes += stop - start
        log.error(
            "spool entry corrupted; skipped",
            path=seg.path,
            offset=start,
            bytes=stop - start,
            reason=reason,
        )

    def release(self, seq: int) -> None:
        """Stop holding acked records up to ``seq`` (see "Hold"): delete the segments whose
        every entry is now acked and released."""
        if self._hold is not None and seq > self._hold and not self._closed:
            self._hold = seq
            self._collect()

    @property
    def holds_acked(self) -> bool:
        """Whether acked records are held on disk (see "Hold")."""
        return self._hold is not None and self._hold < self._ack_seq

    def _deletable(self) -> int:
        """Segments wholly at or below this seq may be deleted."""
        return self._ack_seq if self._hold is None else min(self._ack_seq, self._hold)

    def _collect(self) -> None:
        """Delete the segments whose every entry is acked and not held (never the active
        one)."""
        while len(self._segments) >= 2 and self._segments[1].first <= self._deletable() + 1:
            seg = self._segments[0]
            if self._read_fd is not None and self._read_fd[0] == seg.first:
                os.close(self._read_fd[1])
                self._read_fd = None
            with self._lock:
                self._segments.pop(0)
            self._bytes -= seg.size
            try:
                os.unlink(seg.path)
            except OSError:  # it stays on disk; the next open deletes it
                log.exception("cannot delete an acked spool segment", path=seg.path)

    def _unlink(self, seg: _Segment) -> None:
        os.unlink(seg.path)

    # -- durability ---------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """The seq of the last record appended (0 if none ever was)."""
        return self._next_seq - 1

    @property
    def synced_seq(self) -> int:
        """Every record up to this seq survives an OS crash (as in :meth:`statistics`)."""
        return self._synced_seq

    def sync(self) -> int:
        """fsync what was appended before the call and the ack checkpoint; return the
        highest seq now safe from an OS crash. Blocking: call it in a worker thread."""
        with self._sync_lock:
            with self._lock:
                if self._closed:
                    return self._synced_seq
                upto = self._next_seq - 1
                todo = [seg for seg in self._segments if seg.dirty]
                for seg in todo:
                    seg.dirty = False
                dir_dirty, self._dir_dirty = self._dir_dirty, False
            ckpt = self._ckpt if self._ckpt is not None and self._ckpt.dirty else None
            try:
                for seg in todo:
                    _fdatasync_path(seg.path)
                if dir_dirty:
                    os.fsync(self._dir_fd)
                if ckpt is not None:
                    ckpt.sync()
            except OSError as exc:
                with self._lock:
                    self._dir_dirty = self._dir_dirty or dir_dirty
                    for seg in todo:
                        seg.dirty = True
                raise SpoolError(f"cannot fsync spool {self._dir!r}: {exc}") from exc
            with self._lock:
                self._synced_seq = max(self._synced_seq, upto)
                if todo or dir_dirty or ckpt is not None:
                    self._syncs += 1
            return upto

    def close(self) -> None:
        """Sync, then release the directory. Idempotent."""
        if self._closed:
            return
        try:
            if self._broken is None:
                self.sync()
        finally:
            self._close_fds()

    def _close_fds(self) -> None:
        """Release every descriptor without syncing (a crash looks like this, too)."""
        with self._lock:
            self._closed = True
        for seg in self._segments:
            if seg.wfd is not None:
                os.close(seg.wfd)
                seg.wfd = None
        if self._read_fd is not None:
            os.close(self._read_fd[1])
            self._read_fd = None
        if self._ckpt is not None:
            self._ckpt.close()
            self._ckpt = None
        for fd in (self._dir_fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)  # closing the lock file's descriptor releases the flock
        self._dir_fd = self._lock_fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self._dir!r} is closed")
        if self._broken is not None:
            raise SpoolError(f"spool {self._dir!r} unusable ({self._broken}); restart marketd")

    # -- observation --------------------------------------------------------------------

    def _missing(self, above: int, upto: int) -> int:
        return sum(max(0, min(hi, upto) - max(lo, above + 1) + 1) for lo, hi in self._gaps)

    def _pending(self) -> int:
        return self._next_seq - 1 - self._ack_seq - self._missing(self._ack_seq, self._next_seq)

    def _oldest_ns(self) -> int | None:
        key = (*self._ack_at, self._next_seq)
        if self._peeked is not None and self._peeked[0] == key:
            return self._peeked[1]
        found, _ = self._fetch(self._ack_at, 1, self._ack_seq, False)
        if not found:
            return None
        self._peeked = (key, found[0][1].received_ns)
        return self._peeked[1]

    def statistics(self) -> SpoolStatistics:
        pending = self._pending()
        oldest = self._oldest_ns() if pending and not self._closed else None
        age = max(0.0, (time.time_ns() - oldest) / 1e9) if oldest is not None else 0.0
        return SpoolStatistics(
            directory=self._dir,
            bytes=self._bytes,
            max_bytes=self.settings.max_bytes,
            segments=len(self._segments),
            records_pending=pending,
            records_unread=max(0, self._next_seq - 1 - self._read_seq),
            oldest_pending_age_s=age,
            appended=self._appended,
            acknowledged=self._acked,
            refused_appends=self._refused,
            full=self._full,
            corrupted_entries=self._corrupted,
            corrupted_bytes=self._corrupted_bytes,
            truncated_bytes=self._truncated,
            checkpoint_corrupted=self._checkpoint_corrupted,
            next_seq=self._next_seq,
            ack_seq=self._ack_seq,
            synced_seq=self._synced_seq,
            syncs=self._syncs,
            appends=self._appends,
        )

    def metrics(self) -> Iterable[Metric]:
        """Scrape-time families (``marketd_spool_*``) from :meth:`statistics`."""
        return spool_metrics(self.statistics())


def _fdatasync_path(path: str) -> None:
    """fdatasync a file through a descriptor of its own (Linux syncs the inode, whichever
    descriptor wrote the pages). A segment deleted meanwhile was acked: nothing to do."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
