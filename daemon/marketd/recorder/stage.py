"""The recorder stage: every frame batch the feeds deliver, to segment files (trio).

The normalizer offers each :class:`~marketd.data.records.FrameBatch` it takes in to
:meth:`Recorder.offer`, which never blocks: the batch goes into a bounded queue
(``recorder.queue_batches``), and when the disk cannot keep up a batch that does not fit
is dropped and its frames counted (``marketd_recorder_frames_total{result="dropped"}``) —
the feeds never wait for the recorder. :meth:`Recorder.serve` gathers a round of batches
(``ROUND_S``, or until the queue is half full), and appends and flushes it in a worker
thread (compression and file writes stay off the event loop): large rounds make few,
large blocks, which zstd compresses better and faster. At a stop it writes what is still
queued, then finishes the segment and its index. Each frame is recorded whole, as
received (the combined stream's ``{"stream":..,"data":..}`` text), with its connection,
its stream name and its receive time; so are the connection's control frames
(subscription replies, ``serverShutdown``) and its ``connected`` / ``closed`` markers,
which the feeds hand on beside the data while the recorder records (stream "", in their
place among the frames: see :mod:`marketd.recorder.format`).

A write that fails (a full disk) loses that round's frames, counted as ``failed``, logged
at most once a minute; the writer stays usable and the next round tries again. The
recorder is ready while its last write succeeded (``/readyz`` names it ``recorder``).
The REST responses the book snapshots and the trade backfill use are recorded too
(:meth:`Recorder.recording` wraps their GET): kind ``rest``, the base URL as the
connection, the path and query as the stream, the body as the payload.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import attrs
import structlog
import trio
from prometheus_client.core import Metric

from marketd.config.recorder import RecorderSettings
from marketd.data.records import FrameBatch
from marketd.obs.logs import RateLimitedLog
from marketd.obs.metrics import counter, gauge
from marketd.recorder import Entry, SegmentWriter
from marketd.rest.client import HttpGet, RestResponse

log = structlog.get_logger(__name__)

# A write round gathers batches this long, unless the queue gets half full first.
ROUND_S = 0.25

_STREAM_PREFIX = '{"stream":"'


def stream_of(frame: str) -> str:
    """The stream name of a combined-stream frame, without parsing it ("" if none)."""
    if not frame.startswith(_STREAM_PREFIX):
        return ""
    end = frame.find('"', len(_STREAM_PREFIX))
    return frame[len(_STREAM_PREFIX) : end] if end > 0 else ""


def streams_of(frames: Sequence[str]) -> list[str]:
    """:func:`stream_of` of each frame, inlined: a call per frame costs as much again."""
    prefix, at = _STREAM_PREFIX, len(_STREAM_PREFIX)
    return [
        frame[at:end] if frame.startswith(prefix) and (end := frame.find('"', at)) > 0 else ""
        for frame in frames
    ]


def _entries(batch: FrameBatch | Entry) -> int:
    return 1 if isinstance(batch, Entry) else len(batch.frames) + len(batch.control)


@attrs.frozen
class RecorderStatistics:
    running: bool
    recorded: int  # frames (control frames, markers, REST responses) written to segments
    dropped: int  # those the queue had no room for
    failed: int  # those lost to a failed write
    bytes_written: int  # compressed
    segments_finished: int
    segments_deleted: int  # by retention
    queued: int  # batches waiting for the disk
    healthy: bool  # the last write succeeded


class Recorder:
    """Owns the queue, the writer and the counters across restarts of ``serve``."""

    def __init__(self, settings: RecorderSettings) -> None:
        self.settings = settings
        self._send, self._receive = trio.open_memory_channel[FrameBatch | Entry](
            settings.queue_batches
        )
        self._queued = 0  # batches in the queue
        self._crowded = trio.Event()  # the queue is half full: write now
        self._writer: SegmentWriter | None = None
        self.running = False
        self.healthy = True
        self.recorded = self.dropped = self.failed = 0
        self._finished = self._deleted = self._bytes = 0  # of writers already closed
        self._errors = RateLimitedLog(interval=60.0)

    def offer(self, batch: FrameBatch | Entry) -> None:
        """Queue ``batch`` (or one REST entry) for the disk; drop it (counted) when the
        queue is full."""
        try:
            self._send.send_nowait(batch)
        except trio.WouldBlock:
            self.dropped += _entries(batch)
            return
        self._queued += 1
        if 2 * self._queued >= self.settings.queue_batches:
            self._crowded.set()

    def recording(self, get: HttpGet) -> HttpGet:
        """``get`` (:func:`marketd.rest.client.http_get`), with each 2xx response body also
        offered to the recorder: kind ``rest``, the base URL as its connection, the path
        and query as its stream, received when the body was complete."""

        async def recorded_get(
            base_url: str,
            path: str,
            params: Mapping[str, str | int] | None = None,
            **kwargs: Any,
        ) -> RestResponse:
            response = await get(base_url, path, params, **kwargs)
            if 200 <= response.status < 300:
                target = path + ("?" + urlencode(params) if params else "")
                self.offer(Entry(time.time_ns(), "rest", base_url, target, response.body))
            return response

        return recorded_get

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write what is queued until cancelled; the segment is finished on the way out."""
        s = self.settings
        writer = await trio.to_thread.run_sync(
            lambda: SegmentWriter(
                Path(s.directory),
                max_segment_s=s.segment_s,
                max_segment_bytes=s.segment_bytes,
                max_total_bytes=s.max_bytes,
                max_age_s=s.max_age_s or None,
            )
        )
        self._writer = writer
        self.running = True
        batches: list[FrameBatch | Entry] = []  # taken from the queue, not written yet
        try:
            task_status.started()
            while True:
                batches.append(await self._receive.receive())
                with trio.move_on_after(ROUND_S):
                    await self._crowded.wait()
                self._crowded = trio.Event()
                self._take_queued(batches)
                await trio.to_thread.run_sync(self._write, writer, batches)
                batches = []
        finally:
            self.running = False
            # What the feeds delivered before the stop is written before the segment closes.
            self._take_queued(batches)
            with trio.CancelScope(shield=True):
                if batches:
                    await trio.to_thread.run_sync(self._write, writer, batches)
                await trio.to_thread.run_sync(self._close, writer)

    def _take_queued(self, batches: list[FrameBatch | Entry]) -> None:
        with contextlib.suppress(trio.WouldBlock):
            while True:
                batches.append(self._receive.receive_nowait())
        self._queued = 0

    def _write(self, writer: SegmentWriter, batches: list[FrameBatch | Entry]) -> None:
        """Append and flush one round (in a worker thread)."""
        entries = refused = 0
        try:
            for batch in _runs(batches):
                entries += _entries(batch)
                try:
                    if isinstance(batch, Entry):
                        writer.append(batch)
                    elif not batch.control:
                        frames = batch.frames
                        writer.append_frames(
                            batch.connection, frames, batch.received_ns, streams_of(frames)
                        )
                    else:
                        _append_with_control(writer, batch)
                except ValueError as exc:  # the format cannot hold it (a 64 KiB stream name)
                    refused += _entries(batch)
                    self._report("frames the format cannot hold are lost", exc)
            writer.flush()
        except OSError as exc:
            self.failed += sum(map(_entries, batches))
            self.healthy = False
            self._report("recording failed; its frames are lost", exc)
            return
        self.failed += refused
        self.recorded += entries - refused
        self.healthy = True

    def _report(self, event: str, exc: Exception) -> None:
        if (suppressed := self._errors.ready()) is not None:
            # The error says it; no traceback.
            log.error(
                event, error=str(exc), directory=self.settings.directory, suppressed=suppressed
            )

    def _close(self, writer: SegmentWriter) -> None:
        try:
            writer.close()
        except OSError as exc:
            log.error("closing the recording failed", error=str(exc))  # noqa: TRY400
        st = writer.statistics()
        self._finished += st.segments_finished
        self._deleted += st.segments_deleted
        self._bytes += st.bytes_written
        self._writer = None

    def statistics(self) -> RecorderStatistics:
        st = self._writer.statistics() if self._writer is not None else None
        return RecorderStatistics(
            running=self.running,
            recorded=self.recorded,
            dropped=self.dropped,
            failed=self.failed,
            bytes_written=self._bytes + (st.bytes_written if st else 0),
            segments_finished=self._finished + (st.segments_finished if st else 0),
            segments_deleted=self._deleted + (st.segments_deleted if st else 0),
            queued=self._receive.statistics().current_buffer_used,
            healthy=self.healthy,
        )

    def ready(self) -> bool:
        return self.running and self.healthy

    def metrics(self) -> Iterable[Metric]:
        st = self.statistics()
        yield counter(
            "marketd_recorder_frames_total",
            "Frames offered to the recorder: recorded, dropped (its queue was full: the disk "
            "did not keep up), failed (a write failed).",
            ("result",),
            {("recorded",): st.recorded, ("dropped",): st.dropped, ("failed",): st.failed},
        )
        yield counter("marketd_recorder_bytes_total", "Compressed bytes written to segments.",
                      (), {(): st.bytes_written})  # fmt: skip
        yield counter(
            "marketd_recorder_segments_total",
            "Recording segments finished, and deleted by retention.",
            ("event",),
            {("finished",): st.segments_finished, ("deleted",): st.segments_deleted},
        )
        yield gauge("marketd_recorder_queue_batches", "Frame batches waiting for the disk.", (),
                    {(): float(st.queued)})  # fmt: skip
        yield gauge("marketd_recorder_healthy", "1 while the recorder's last write succeeded.",
                    (), {(): float(st.healthy and st.running)})  # fmt: skip


def _runs(batches: list[FrameBatch | Entry]) -> Iterator[FrameBatch | Entry]:
    """``batches`` with each run of consecutive frame batches of one connection joined
    into one: one append (and its fixed costs) per run instead of per batch, the order of
    everything kept. A batch with control frames ends a run."""
    run: list[FrameBatch] = []
    for batch in batches:
        if (
            run
            and isinstance(batch, FrameBatch)
            and not batch.control
            and batch.connection == run[0].connection
        ):
            run.append(batch)
            continue
        if run:
            yield _joined(run)
            run = []
        if isinstance(batch, FrameBatch) and not batch.control:
            run.append(batch)
        else:
            yield batch
    if run:
        yield _joined(run)


def _joined(run: list[FrameBatch]) -> FrameBatch:
    first = run[0]
    if len(run) == 1:
        return first
    frames: list[str] = []
    received_ns: list[int] = []
    for batch in run:
        frames += batch.frames
        received_ns += batch.received_ns
    return FrameBatch(first.market, first.connection, frames, received_ns)


def _append_with_control(writer: SegmentWriter, batch: FrameBatch) -> None:
    """A batch's frames with its control frames in their places (stream "")."""
    frames, received_ns, connection = batch.frames, batch.received_ns, batch.connection
    streams = streams_of(frames)
    start = 0
    for control in batch.control:
        if control.at > start:
            cut = slice(start, control.at)
            writer.append_frames(connection, frames[cut], received_ns[cut], streams[cut])
            start = control.at
        payload = control.text.encode()
        writer.append(Entry(control.received_ns, "ws", connection, "", payload))
    if start < len(frames):
        writer.append_frames(connection, frames[start:], received_ns[start:], streams[start:])
