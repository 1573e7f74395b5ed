"""The spool as a pipeline stage: everything accepted is on disk before Kafka sees it.

    books ──list[Record]──► writer ─► Spool (segments on disk) ─► reader ──► Kafka publisher

Its input is the last market-data stage's output (the books, else the normalizer), which
the in-process detector's alerts join. The writer appends each batch and never waits on
Kafka, so a broker outage does not stall the feeds: records pile up on disk. A syncer
beside it fsyncs every ``sync_interval_s`` (group commit) while the writer goes on
appending, so a slow fsync does not hold up intake either; with ``sync_interval_s: 0``
the writer fsyncs after every batch itself. The reader hands spooled records to the
publisher in append order; the publisher reports the records Kafka acknowledged
(``on_settled``) and the spool is acked up to the longest settled prefix. When the spool
is full the writer waits (intake stops; ``full`` makes the daemon not-ready) until
acknowledged segments are deleted. After a crash or restart the reader first
re-delivers what was not acknowledged (at least once; ids identify repeats).

With every fsync the stage also checkpoints the last trade id per symbol that reached
the spool (:mod:`marketd.spool.sequence`); at start-up it hands the recovered ids to
``on_recovered`` (the normalizer), so trades missed while the daemon was down are
backfilled from REST. ``durable`` is set once intake has ended and everything received
is on disk and fsynced: from then on a shutdown loses nothing, whatever Kafka does.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable

import structlog
import trio
from prometheus_client.core import Metric

from marketd.data.records import Record
from marketd.obs.metrics import counter
from marketd.pipeline.sequence import SeqKey
from marketd.spool.acks import AckWindow
from marketd.spool.format import EntryTooLarge
from marketd.spool.identity import spool_identity
from marketd.spool.model import SpoolFull, SpoolStatistics
from marketd.spool.sequence import note_ids, open_spool, write_checkpoint
from marketd.spool.settings import SpoolSettings
from marketd.spool.spool import Spool
from marketd.status import StatusStream

log = structlog.get_logger(__name__)

_FULL_RETRY_S = 0.1
_COALESCE_RECORDS = 2000


class SpooledRecords(list[Record]):
    """A batch read from the spool with each record's spool seq (``seqs[i]`` is that of
    ``self[i]``): what the stage hands on when ``with_seqs`` is set (exactly-once
    delivery resumes by seq, see :mod:`marketd.kafka.exactly_once`)."""

    __slots__ = ("seqs",)

    def __init__(self, records: list[Record], seqs: list[int]) -> None:
        super().__init__(records)
        self.seqs = seqs


class SpoolStage:
    def __init__(
        self,
        settings: SpoolSettings,
        on_recovered: Callable[[dict[SeqKey, int]], None] | None = None,
        ids_elsewhere: Callable[[], dict[SeqKey, int]] | None = None,
    ) -> None:
        self.settings = settings
        # Hand on SpooledRecords (records with their spool seqs) instead of plain lists.
        self.with_seqs = False
        self.spool: Spool | None = None
        self.window = AckWindow()
        self.full = False
        self.durable = trio.Event()
        self.rejected = 0  # records larger than the spool's bound, dropped
        self.last_ids: dict[SeqKey, int] = {}
        self._ids_moved = False  # since the last checkpoint
        self._on_recovered = on_recovered
        # Blocking: last trade ids that other spool directories hold for this process's
        # symbols (a symbol that changed shards; see marketd.spool.layout).
        self._ids_elsewhere = ids_elsewhere
        self._wake = trio.Event()
        self._sync_lock = trio.Lock()  # one fsync + checkpoint at a time, in order
        # Where intake stopping (spool full) and resuming are reported; when it stopped.
        self.status: StatusStream | None = None
        self._full_since_ns = 0

    def pending(self) -> int:
        """Records spooled and not yet acknowledged by Kafka."""
        return self.spool.statistics().records_pending if self.spool is not None else 0

    def statistics(self) -> SpoolStatistics | None:
        """The spool's statistics; None until the stage has opened it."""
        return self.spool.statistics() if self.spool is not None else None

    def metrics(self) -> Iterable[Metric]:
        if self.spool is not None:
            yield from self.spool.metrics()
            yield counter(
                "marketd_spool_records_rejected_total",
                "Records larger than the whole spool bound (spool.max_bytes) or than one "
                "entry (64 MiB), dropped.",
                (),
                {(): self.rejected},
            )

    def _reject(self, record: Record) -> None:
        self.rejected += 1
        log.error(
            "record larger than the spool can hold; dropped",
            topic=record.topic,
            kind=record.kind,
            symbol=record.symbol,
            bytes=len(record.value),
            max_bytes=self.settings.max_bytes,
        )

    def identity(self) -> str:
        """The spool directory's stable id (:mod:`marketd.spool.identity`). Blocking."""
        return spool_identity(self.settings.directory)

    def acked_seq(self) -> int:
        """The spool's ack cursor (0 until the stage has opened the spool)."""
        return self.spool.statistics().ack_seq if self.spool is not None else 0

    def record_at(self, seq: int) -> Record | None:
        """The record with spool seq ``seq`` if it is still in the spool (read from disk,
        no cursor moves), else ``None``. Start-up checks only: it may read a segment."""
        if self.spool is None or seq < 1:
            return None
        found = self.spool.peek_after(seq - 1, 1)
        return found[0][1] if found and found[0][0].seq == seq else None

    def on_settled(self, records: list[Record]) -> None:
        """The publisher's callback: ack the spool up to the settled prefix."""
        if self.spool is not None and (position := self.window.settled(records)) is not None:
            self.spool.ack(position)

    async def serve(
        self,
        records_in: trio.abc.ReceiveChannel[list[Record]],
        publisher_out: trio.abc.SendChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until ``records_in`` ends and everything spooled was handed on."""
        if self.spool is None:
            opened, recovered = await trio.to_thread.run_sync(open_spool, self.settings)
            self.spool = opened
            if self._ids_elsewhere is not None:
                elsewhere = await trio.to_thread.run_sync(self._ids_elsewhere)
                taken = {k: i for k, i in elsewhere.items() if i > recovered.get(k, -1)}
                if taken:
                    log.info("last trade ids taken from other spool directories", keys=len(taken))
                    recovered.update(taken)
            self.last_ids.update(recovered)
            # The first sync writes a checkpoint covering what recovery read: only then
            # may the spool delete the acked records it read them from.
            self._ids_moved = True
            if self._on_recovered is not None:
                self._on_recovered(recovered)
        spool = self.spool
        # After a restart of this stage, unacknowledged records are read (and sent) again.
        spool.rewind()
        self.window = AckWindow()
        try:
            async with records_in, publisher_out, trio.open_nursery() as nursery:
                written = trio.Event()
                nursery.start_soon(self._write, spool, records_in, written)
                task_status.started()
                await self._read(spool, publisher_out, written)
        finally:
            with trio.CancelScope(shield=True):
                await self._sync(spool)

    async def close(self) -> None:
        if self.spool is not None:
            spool, self.spool = self.spool, None
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(spool.close)

    async def _write(
        self,
        spool: Spool,
        records_in: trio.abc.ReceiveChannel[list[Record]],
        written: trio.Event,
    ) -> None:
        interval = self.settings.sync_interval_s
        async with trio.open_nursery() as syncer:
            if interval > 0:
                syncer.start_soon(self._sync_every, spool, interval)
            async for first in records_in:
                batch = first
                # Coalesce what is already queued: one append (one write) for all of it.
                if len(batch) < _COALESCE_RECORDS and isinstance(
                    records_in, trio.MemoryReceiveChannel
                ):
                    batch = list(batch)
                    with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
                        while len(batch) < _COALESCE_RECORDS:
                            batch.extend(records_in.receive_nowait())
                await self._append(spool, batch)
                if interval == 0:
                    await self._sync(spool)
            syncer.cancel_scope.cancel()
        await self._sync(spool)
        self.durable.set()
        written.set()
        self._wake.set()

    async def _append(self, spool: Spool, batch: list[Record]) -> None:
        """Append ``batch``, waiting while the spool is full (intake stops meanwhile).

        An append is all or nothing, so a refused batch is split in halves and appended
        part by part, in order: a batch larger than the free space (or than the whole
        bound) goes in as space frees up instead of waiting forever for room for all of it.
        """
        parts = [batch]
        while parts:
            part = parts[0]
            try:
                spool.append(part)
            except EntryTooLarge as exc:
                # Beyond any entry, however empty the spool: the record is dropped loudly,
                # the rest of its batch goes in.
                self._reject(part[exc.index])
                parts[0:1] = [p for p in (part[: exc.index], part[exc.index + 1 :]) if p]
                continue
            except SpoolFull:
                if spool.holds_acked:
                    # Acked segments wait for a checkpoint of their trade ids: write it.
                    await self._sync(spool)
                    continue
                if len(part) > 1:
                    half = len(part) // 2
                    parts[0:1] = [part[:half], part[half:]]
                    continue
                if spool.statistics().records_pending == 0:
                    # Nothing left to acknowledge, so no room will come: larger than the
                    # spool's bound. Dropped loudly (like a record Kafka can never take).
                    self._reject(part[0])
                    del parts[0]
                    continue
                if not self.full:
                    self.full = True
                    self._full_since_ns = time.time_ns()
                    if self.status is not None:
                        self.status.intake_stopped("spool_full", spool.statistics().records_pending)
                await trio.sleep(_FULL_RETRY_S)
                continue
            # Noted per part: a sync while a later part waits for room must find the ids
            # of every record it covers.
            self._ids_moved |= note_ids(self.last_ids, part)
            del parts[0]
            self._wake.set()  # the reader hands it on: its acks are what frees space
        if self.full:
            self.full = False
            if self.status is not None:
                self.status.intake_resumed(self._full_since_ns)

    async def _sync_every(self, spool: Spool, interval: float) -> None:
        while True:
            began = trio.current_time()
            if spool.last_seq > spool.synced_seq or self._ids_moved or spool.holds_acked:
                await self._sync(spool)
            await trio.sleep_until(began + interval)

    async def _sync(self, spool: Spool) -> None:
        """fsync the spool, then checkpoint the trade ids it now holds durably, then let
        the spool delete the acked records that checkpoint covers.

        The ids and ``upto`` are taken together here, in the trio thread that appends:
        they describe the same records, and the fsync (which covers everything appended
        before it starts) covers at least those, whatever is appended meanwhile.
        """
        async with self._sync_lock:
            ids = dict(self.last_ids) if self._ids_moved else None
            self._ids_moved = False
            upto = spool.last_seq

            def sync_and_checkpoint() -> None:
                spool.sync()
                if ids is not None:
                    write_checkpoint(self.settings.directory, upto, ids)

            try:
                await trio.to_thread.run_sync(sync_and_checkpoint)
            except BaseException:
                self._ids_moved = self._ids_moved or ids is not None  # written next time
                raise
            # Without new ids, the checkpoint on disk already covers the records up to
            # upto: none of those appended since it moved an id.
            spool.release(upto)

    async def _read(
        self,
        spool: Spool,
        publisher_out: trio.abc.SendChannel[list[Record]],
        written: trio.Event,
    ) -> None:
        limit = self.settings.read_batch_records
        while True:
            # A fresh event before reading: an append after the read wakes us.
            wake = self._wake = trio.Event()
            items = spool.read(limit)
            if items:
                records = self.window.sent(items)
                if self.with_seqs:
                    records = SpooledRecords(records, [p.seq for p, _ in items])
                await publisher_out.send(records)
                continue
            if written.is_set():
                return
            await wake.wait()
