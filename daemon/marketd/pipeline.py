"""The normalizer stage: frame batches → decoded, sequenced records, in batches.

It decodes with the codec, drops duplicate trades, backfills trade gaps from REST
(see :mod:`marketd.backfill`), and hands record batches to the sink. Both of its
channels are bounded, so a slow sink slows the feeds rather than growing memory.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import attrs
import structlog
import trio

from marketd.backfill import Backfiller
from marketd.logs import RateLimitedLog
from marketd.records import FrameBatch, Record
from marketd.sequence import Gap, TradeSequencer
from marketd.telemetry import span

log = structlog.get_logger(__name__)


class DecodeResultLike(Protocol):
    @property
    def records(self) -> list[Record]: ...
    @property
    def malformed(self) -> int: ...
    @property
    def unknown(self) -> int: ...
    @property
    def error(self) -> str: ...


class BatchDecoder(Protocol):
    def decode_batch(self, batch: FrameBatch) -> DecodeResultLike: ...


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
    _bad_frame_log: RateLimitedLog = attrs.field(factory=RateLimitedLog)

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
        )

    async def serve(
        self,
        frames_in: trio.abc.ReceiveChannel[FrameBatch],
        records_out: trio.abc.SendChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until ``frames_in`` is closed by every feed, then close ``records_out``."""
        async with frames_in, records_out:
            task_status.started()
            async for batch in frames_in:
                await self._process(batch, records_out)

    async def _process(
        self, batch: FrameBatch, records_out: trio.abc.SendChannel[list[Record]]
    ) -> None:
        with span("pipeline.normalize", connection=batch.connection, frames=len(batch.frames)):
            out = await self._normalize(batch)
        if out:
            self.records += len(out)
            await records_out.send(out)

    async def _normalize(self, batch: FrameBatch) -> list[Record]:
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
        out: list[Record] = []
        check = self.sequencer.check
        events = self.events
        for record in result.records:
            verdict = check(record)
            if verdict is True:
                out.append(record)
            elif verdict is False:
                continue
            else:
                assert isinstance(verdict, Gap)
                out.extend(await self._fill(verdict))
                self.sequencer.advance(record)
                out.append(record)
            events[(record.market.value, record.kind)] += 1
        return out

    async def _fill(self, gap: Gap) -> list[Record]:
        if self.backfiller is None:
            log.warning("trade gap not backfilled (backfill disabled)", gap=str(gap))
            return []
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
        return filled
