"""The status stream as a pipeline stage: status records join the market data on their
way to the spool (or the sink), between its batches.

    books/normalizer + detector ──list[Record]──► StatusStream ──► spool ──► Kafka

Every part of the collector reports what it could not see through the typed methods
(``stream_down``, ``depth_gap``, ...), from any trio task, without waiting: a report is
queued (bounded: past :data:`MAX_QUEUED` the oldest waits are not kept; dropped and
counted, never blocking a feed). The stage forwards each market-data batch as it is and
sends what is queued as batches of its own, at once when the data is quiet. At a stop it
ends after its input has ended (the feeds, the normalizer and the books have drained), so
the reports of the stop itself (streams down, "stopped") are in the spool with the rest.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable

import structlog
import trio
from google.protobuf.message import Message
from prometheus_client.core import Metric

from marketd import __version__
from marketd.data.records import Market, Record
from marketd.obs.logs import RateLimitedLog
from marketd.obs.metrics import counter, seeded
from marketd.status.events import EVENT_TYPES, status_record, symbol_of_stream
from marketd.v1 import status_pb2

log = structlog.get_logger(__name__)

MAX_QUEUED = 100_000  # reports waiting for the stage (a burst: every stream of a market)
_SEND_RECORDS = 5_000  # reports per batch handed on


class StatusStream:
    """Queues status reports and hands them on (see the module documentation)."""

    def __init__(self, topic: str, collector: str) -> None:
        self.topic = topic
        self.collector = collector
        self._queue: collections.deque[Record] = collections.deque()
        self._ready = trio.Event()
        self.emitted: collections.Counter[str] = collections.Counter()  # by type
        self.dropped = 0
        self._drop_log = RateLimitedLog()
        self.collector_started()

    # -- reports ----------------------------------------------------------------------------

    def stream_up(self, market: Market, stream: str, connection: str) -> None:
        message = status_pb2.StreamUp(stream=stream, connection=connection)
        self._add(market, symbol_of_stream(stream), stream_up=message)

    def stream_down(
        self, market: Market, stream: str, connection: str, reason: str, last_frame_ns: int
    ) -> None:
        message = status_pb2.StreamDown(
            stream=stream, connection=connection, reason=reason,
            last_frame_ms=last_frame_ns // 1_000_000,
        )  # fmt: skip
        self._add(market, symbol_of_stream(stream), stream_down=message)

    def depth_gap(self, market: Market, symbol: str, last_update_id: int, below: int) -> None:
        message = status_pb2.DepthGap(
            last_update_id=last_update_id, first_missing_below=below, kind="depthUpdate"
        )
        self._add(market, symbol, depth_gap=message)

    def trades_unfilled(
        self, market: Market, symbol: str, kind: str, first: int, last: int, reason: str
    ) -> None:
        message = status_pb2.TradesUnfilled(kind=kind, first_id=first, last_id=last, reason=reason)
        self._add(market, symbol, trades_unfilled=message)

    def book_resync(self, market: Market, symbol: str, reason: str, last_update_id: int) -> None:
        message = status_pb2.BookResync(reason=reason, last_update_id=last_update_id)
        self._add(market, symbol, book_resync=message)

    def book_synced(self, market: Market, symbol: str, snapshot_update_id: int) -> None:
        message = status_pb2.BookSynced(snapshot_update_id=snapshot_update_id)
        self._add(market, symbol, book_synced=message)

    def book_mismatch(
        self,
        market: Market,
        symbol: str,
        update_id: int,
        differences: Iterable[tuple[str, str, str, str]],
    ) -> None:
        """``differences``: (side, price, ours, theirs) of the first differing levels."""
        message = status_pb2.BookMismatch(
            update_id=update_id,
            differences=[
                status_pb2.LevelDifference(side=side, price=price, ours=ours, theirs=theirs)
                for side, price, ours, theirs in differences
            ],
        )
        self._add(market, symbol, book_mismatch=message)

    def intake_stopped(self, reason: str, pending_records: int) -> None:
        message = status_pb2.IntakeStopped(reason=reason, pending_records=pending_records)
        self._add(None, "", intake_stopped=message)

    def intake_resumed(self, stopped_ns: int) -> None:
        message = status_pb2.IntakeResumed(stopped_ms=stopped_ns // 1_000_000)
        self._add(None, "", intake_resumed=message)

    def collector_started(self) -> None:
        self._add(None, "", collector_started=status_pb2.CollectorStarted(version=__version__))

    def _add(self, market: Market | None, symbol: str, **event: Message) -> None:
        record = status_record(self.topic, self.collector, market, symbol, time.time_ns(), **event)
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self.dropped += 1
            if (held := self._drop_log.ready()) is not None:
                log.warning("status stream queue full; oldest report dropped",
                            queued=MAX_QUEUED, suppressed=held)  # fmt: skip
        self._queue.append(record)
        self.emitted[record.kind] += 1
        self._ready.set()

    # -- the stage --------------------------------------------------------------------------

    async def serve(
        self,
        records_in: trio.abc.ReceiveChannel[list[Record]],
        records_out: trio.abc.SendChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Forward ``records_in`` to ``records_out`` with the reports between batches, until
        ``records_in`` ends; then hand on what is queued and close ``records_out``."""
        async with records_in, records_out:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, records_out)
                task_status.started()
                async for batch in records_in:
                    await records_out.send(batch)
                nursery.cancel_scope.cancel()
            while self._queue:
                await records_out.send(self._take())

    async def _pump(self, records_out: trio.abc.SendChannel[list[Record]]) -> None:
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            while self._queue:
                batch = self._take()
                try:
                    await records_out.send(batch)
                except BaseException:
                    self._queue.extendleft(reversed(batch))  # not handed on: kept in order
                    raise

    def _take(self) -> list[Record]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(len(queue), _SEND_RECORDS))]

    def metrics(self) -> Iterable[Metric]:
        yield counter(
            "marketd_status_events_total",
            "Status events reported (marketd.v1.StatusEvent on topics.status), by type.",
            ("type",),
            seeded(
                [(t,) for t in EVENT_TYPES.values()], {(k,): v for k, v in self.emitted.items()}
            ),
        )
        yield counter(
            "marketd_status_events_dropped_total",
            "Status events dropped because the queue to the sink was full.",
            (),
            {(): self.dropped},
        )
