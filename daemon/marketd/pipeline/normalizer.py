"""The normalizer stage: frame batches → decoded, sequenced records, in batches.

It decodes with the codec, drops duplicate trades, backfills trade gaps from REST
(see :mod:`marketd.pipeline.backfill`), and hands record batches to the sink. Both of its
channels are bounded, so a slow sink slows the feeds rather than growing memory.

Under load it hands on at most one record batch per ``batch_interval_s``
(``pipeline.batch_interval_ms``), made of every frame batch that came in meanwhile from all
connections, in arrival order, up to ``batch_frames`` frames: the stages behind it pay their
per-batch work for many records. A batch that comes after a quiet interval goes on at once.

A trade gap parks only its own (market, kind, symbol): the live records of that key are
held, in order, while a background task fetches the missing trades (within the REST
weight budget, which may take a while after a mass reconnect) and then publishes the
filled trades followed by the held ones. Every other symbol keeps flowing, so one slow
backfill never stalls the feeds. Held records are bounded in total
(``MAX_PARKED_RECORDS``); past it the normalizer waits for the backfills (backpressure).
"""

from __future__ import annotations

import math
import operator
from collections import Counter, deque
from collections.abc import Callable
from typing import Protocol

import attrs
import structlog
import trio

from marketd.data.events import DepthDiff
from marketd.data.records import Event, FrameBatch, Market, Record, RecordBatch
from marketd.exchanges.seam import DecodeResult
from marketd.obs.logs import RateLimitedLog
from marketd.obs.telemetry import span
from marketd.pipeline.backfill import Backfiller
from marketd.pipeline.sequence import DepthChains, Gap, SeqKey, TradeSequencer, missing_ranges
from marketd.status import StatusStream

log = structlog.get_logger(__name__)

# Live records held behind trade gaps being backfilled, all symbols together.
MAX_PARKED_RECORDS = 200_000

_MARKET_KIND = operator.attrgetter("market", "kind")


class BatchDecoder(Protocol):
    def decode_batch(self, batch: FrameBatch) -> DecodeResult: ...


@attrs.frozen
class NormalizerStatistics:
    frames: int
    records: int
    malformed: dict[str, int]
    unknown: dict[str, int]
    events: dict[tuple[str, ...], int]
    duplicates: int
    duplicates_by_kind: dict[str, int]
    gaps: int
    gaps_closed: int  # gaps whose every missing trade was backfilled
    backfilled: int
    unfilled: int
    backfills_running: int  # symbols parked behind a gap being filled
    parked_records: int  # live records held behind those gaps


@attrs.define
class Normalizer:
    decoder: BatchDecoder
    backfiller: Backfiller | None = None
    sequencer: TradeSequencer = attrs.field(factory=TradeSequencer)
    frames: int = 0
    records: int = 0
    malformed: Counter[str] = attrs.field(factory=Counter)
    unknown: Counter[str] = attrs.field(factory=Counter)
    events: Counter[tuple[str, ...]] = attrs.field(factory=Counter)
    gaps_closed: int = 0
    # Per parked key, in order: the gaps to fill and the live records (with their events)
    # behind them.
    _parked: dict[SeqKey, deque[tuple[Record, Event] | Gap]] = attrs.field(factory=dict)
    _parked_records: int = 0
    _room: trio.Event = attrs.field(factory=trio.Event)
    _bad_frame_log: RateLimitedLog = attrs.field(factory=RateLimitedLog)
    # Per connection: (exchange event time ms, receipt time ns) of the newest decoded event
    # (a depth diff, a watched price) that ended a batch; read by the status page. One look
    # per batch, at what the codec decoded anyway: nothing is added per frame.
    event_times: dict[str, tuple[int, int]] = attrs.field(factory=dict, init=False)
    # Offered every frame batch as it comes in, its control frames included (the
    # recorder's non-blocking queue); the normalizer itself ignores control frames.
    record: Callable[[FrameBatch], None] | None = attrs.field(default=None, init=False)
    # Where what could not be seen is reported: depth diffs that never arrived, trades
    # neither received nor backfilled (the status stream).
    status: StatusStream | None = attrs.field(default=None, init=False)
    _chains: DepthChains = attrs.field(factory=DepthChains, init=False)
    # Under load, at most one record batch per this many seconds (``pipeline.
    # batch_interval_ms``): see :meth:`serve`.
    batch_interval_s: float = attrs.field(default=0.0, init=False)
    # ... of at most this many frames (or one frame batch, if larger).
    batch_frames: int = attrs.field(default=500, init=False)
    # Taken from the channel but past ``batch_frames``: the first of the next lot (kept
    # here, so that a restart of the stage starts with it).
    _carried: FrameBatch | None = attrs.field(default=None, init=False)

    def statistics(self) -> NormalizerStatistics:
        bf = self.backfiller
        return NormalizerStatistics(
            frames=self.frames,
            records=self.records,
            malformed=dict(self.malformed),
            unknown=dict(self.unknown),
            events=dict(self.events),
            duplicates=self.sequencer.duplicates,
            duplicates_by_kind=dict(self.sequencer.duplicates_by_kind),
            gaps=self.sequencer.gaps,
            gaps_closed=self.gaps_closed,
            backfilled=bf.filled if bf else 0,
            unfilled=bf.unfilled if bf else 0,
            backfills_running=len(self._parked),
            parked_records=self._parked_records,
        )

    async def serve(
        self,
        frames_in: trio.MemoryReceiveChannel[FrameBatch],
        records_out: trio.abc.SendChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until ``frames_in`` is closed by every feed and the running backfills have
        published what they hold, then close ``records_out``."""
        async with frames_in, records_out, trio.open_nursery() as backfills:
            # After a restart of this stage, what was parked is filled and published.
            for key in self._parked:
                backfills.start_soon(self._backfill, key, records_out)
            task_status.started()
            last_out = -math.inf
            while True:
                try:
                    batches = await self._next_batches(frames_in, last_out)
                except trio.EndOfChannel:
                    break
                out = RecordBatch()
                parked: list[SeqKey] = []
                for batch in batches:
                    if self.record is not None:
                        self.record(batch)
                    if not batch.frames:
                        continue  # control frames alone: the recorder's only
                    while self._parked_records >= MAX_PARKED_RECORDS:
                        self._room = trio.Event()
                        await self._room.wait()
                    with span("pipeline.normalize", connection=batch.connection,
                              frames=len(batch.frames)):  # fmt: skip
                        part, new = self._normalize(batch)
                    if part:
                        out += part
                        out.events += part.events
                    parked += new
                if out:
                    await self._emit(out, records_out)
                last_out = trio.current_time()
                # Started after the batch went out: its records of a parked key that came
                # before the gap are ahead of the backfilled ones.
                for key in parked:
                    backfills.start_soon(self._backfill, key, records_out)

    async def _next_batches(
        self, frames_in: trio.MemoryReceiveChannel[FrameBatch], last_out: float
    ) -> list[FrameBatch]:
        """The next frame batches to normalize as one: the first, and every other that
        came before the batch interval since ``last_out`` ran out, up to ``batch_frames``
        frames. Raises ``EndOfChannel`` when the feeds are done."""
        if self._carried is not None:
            batches, self._carried = [self._carried], None
        else:
            batches = [await frames_in.receive()]
        frames = self._take_queued(frames_in, batches)
        due = last_out + self.batch_interval_s
        if frames < self.batch_frames and self._carried is None and trio.current_time() < due:
            # Batches come faster than the interval: let more come in meanwhile.
            await trio.sleep_until(due)
            self._take_queued(frames_in, batches)
        return batches

    def _take_queued(
        self, channel: trio.MemoryReceiveChannel[FrameBatch], into: list[FrameBatch]
    ) -> int:
        """Append to ``into`` the batches ``channel`` holds now while their frames stay
        within ``batch_frames``; the one that would pass it is kept for next time
        (``_carried``). Returns the frames in ``into``."""
        frames, limit = sum(len(b.frames) for b in into), self.batch_frames
        receive = channel.receive_nowait
        while frames < limit:
            try:
                batch = receive()
            except (trio.WouldBlock, trio.EndOfChannel):
                break  # an ended channel: the next ``receive`` says so
            if frames + len(batch.frames) > limit:
                self._carried = batch
                break
            into.append(batch)
            frames += len(batch.frames)
        return frames

    async def _emit(
        self, records: RecordBatch, records_out: trio.abc.SendChannel[list[Record]]
    ) -> None:
        self.records += len(records)
        await records_out.send(records)

    def _normalize(self, batch: FrameBatch) -> tuple[RecordBatch, list[SeqKey]]:
        """Decode and sequence ``batch``: the records to publish now, and the keys that a
        gap has just parked."""
        result = self.decoder.decode_batch(batch)
        market = batch.market.value
        self.frames += len(batch.frames)
        if result.malformed:
            self.malformed[market] += result.malformed
        if result.unknown:
            self.unknown[market] += result.unknown
        if (result.malformed or result.unknown) and (
            held := self._bad_frame_log.ready()
        ) is not None:
            log.warning(
                "frames skipped",
                connection=batch.connection,
                malformed=result.malformed,
                unknown=result.unknown,
                example=result.error,
                suppressed=held,
            )
        decoded = result.records
        if decoded and (last := decoded.events[-1]) is not None:
            event_ms = last.event_time_ms if isinstance(last, DepthDiff) else last.time_ms
            if event_ms:
                self.event_times[batch.connection] = (event_ms, decoded[-1].received_ns)
        # The records go on with the events decoded beside them (for books and detector).
        out = RecordBatch()
        out_events = out.events
        append, append_event = out.append, out_events.append
        new: list[SeqKey] = []
        check = self.sequencer.check
        # Records counted by (market, kind) once per batch: those published now in one
        # C-level pass over ``out`` below, the parked ones here as they are held.
        kept: Counter[tuple[Market, str]] = Counter()
        parked = self._parked
        follow = self.status is not None
        for record, event in zip(decoded, decoded.events, strict=True):
            verdict = check(record)
            if verdict is True and not parked:
                append(record)
                append_event(event)
                if follow and type(event) is DepthDiff:
                    self._follow(record, event)
                continue
            if verdict is False:
                continue
            if (
                parked
                and (queue := parked.get((record.market, record.kind, record.symbol))) is not None
            ):
                kept[(record.market, record.kind)] += 1
                if verdict is not True:  # another gap behind the one being filled
                    self.sequencer.advance(record)
                    queue.append(verdict)
                queue.append((record, event))
                self._parked_records += 1
            elif verdict is True:
                append(record)
                append_event(event)
                if follow and type(event) is DepthDiff:
                    self._follow(record, event)
            else:
                self.sequencer.advance(record)
                if self.backfiller is None:
                    log.warning("trade gap not backfilled (backfill disabled)", gap=str(verdict))
                    if self.status is not None:
                        self.status.trades_unfilled(
                            verdict.market, verdict.symbol, verdict.kind,
                            verdict.first, verdict.last, "backfill_off",
                        )  # fmt: skip
                    out.append(record)
                    out_events.append(event)
                    continue
                key = (record.market, record.kind, record.symbol)
                parked[key] = deque((verdict, (record, event)))
                kept[(record.market, record.kind)] += 1
                self._parked_records += 1
                new.append(key)
        if out:
            kept.update(map(_MARKET_KIND, out))
        counts = self.events
        for (market_of, kind), n in kept.items():
            counts[(market_of.value, kind)] += n
        return out, new

    def _follow(self, record: Record, diff: DepthDiff) -> None:
        """Report the depth diffs missing before ``diff``, if any."""
        assert self.status is not None
        missing = self._chains.check(record.market, record.symbol, diff.first, diff.final,
                                     diff.prev)  # fmt: skip
        if missing is not None:
            self.status.depth_gap(record.market, record.symbol, *missing)

    async def _backfill(self, key: SeqKey, records_out: trio.abc.SendChannel[list[Record]]) -> None:
        """Fill the gaps parked under ``key`` and publish them with the records held behind,
        in order, until nothing is held; then unpark ``key``. An item leaves the queue only
        once published, so a restart of the stage resumes where this one stopped."""
        queue = self._parked[key]
        while queue:
            first = queue[0]
            if isinstance(first, Gap):
                filled = await self._fill(first)
                if filled:
                    await self._emit(RecordBatch(filled), records_out)
                queue.popleft()
                continue
            run = RecordBatch()
            for item in queue:
                if isinstance(item, Gap):
                    break
                run.add(*item)
            await self._emit(run, records_out)
            for _ in run:
                queue.popleft()
            self._parked_records -= len(run)
            if self._parked_records < MAX_PARKED_RECORDS:
                self._room.set()
        del self._parked[key]

    async def _fill(self, gap: Gap) -> list[Record]:
        assert self.backfiller is not None
        with span("pipeline.backfill", symbol=gap.symbol, kind=gap.kind, missing=gap.size):
            filled = await self.backfiller.fill(gap)
        closed = len(filled) == gap.size
        self.gaps_closed += closed
        emit = log.info if closed else log.warning
        emit(
            "trade gap backfilled",
            market=gap.market.value,
            symbol=gap.symbol,
            kind=gap.kind,
            first=gap.first,
            last=gap.last,
            filled=len(filled),
        )
        for record in filled:
            self.events[(record.market.value, record.kind)] += 1
        if not closed and self.status is not None:
            reason = self.backfiller.last_reason or "not_held"
            for first, last in missing_ranges(gap.first, gap.last, [r.seq for r in filled]):
                self.status.trades_unfilled(gap.market, gap.symbol, gap.kind, first, last, reason)
        return filled
