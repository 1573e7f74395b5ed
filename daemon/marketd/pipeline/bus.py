"""The embedded in-process bus: the sink used when no Kafka is configured.

It accepts record batches like the Kafka publisher does, counts them per topic and
kind, and fans them out to in-process subscribers (the detector, later) over bounded
channels — a subscriber that falls behind slows the bus, it never loses records.
"""

from __future__ import annotations

import time
from collections import Counter

import attrs
import trio

from marketd.pipeline.records import Record


@attrs.frozen
class BusStatistics:
    batches: int
    records: int
    by_topic: dict[str, int]
    by_kind: dict[str, int]
    subscribers: int
    last_latency_s: float


@attrs.define
class MemoryBus:
    subscriber_capacity: int = 64
    _subscribers: list[trio.MemorySendChannel[list[Record]]] = attrs.field(factory=list)
    batches: int = 0
    records: int = 0
    by_topic: Counter[str] = attrs.field(factory=Counter)
    by_kind: Counter[str] = attrs.field(factory=Counter)
    last_latency_s: float = 0.0

    def subscribe(self) -> trio.MemoryReceiveChannel[list[Record]]:
        """A channel that receives every batch published from now on."""
        send, receive = trio.open_memory_channel[list[Record]](self.subscriber_capacity)
        self._subscribers.append(send)
        return receive

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            batches=self.batches,
            records=self.records,
            by_topic=dict(self.by_topic),
            by_kind=dict(self.by_kind),
            subscribers=len(self._subscribers),
            last_latency_s=self.last_latency_s,
        )

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Consume ``batches`` until closed, then close every subscriber channel."""
        try:
            async with batches:
                task_status.started()
                async for batch in batches:
                    self._count(batch)
                    for sub in list(self._subscribers):
                        try:
                            await sub.send(batch)
                        except (trio.BrokenResourceError, trio.ClosedResourceError):
                            self._subscribers.remove(sub)
        finally:
            for sub in self._subscribers:
                sub.close()
            self._subscribers.clear()

    def _count(self, batch: list[Record]) -> None:
        self.batches += 1
        self.records += len(batch)
        by_topic = self.by_topic
        by_kind = self.by_kind
        for record in batch:
            by_topic[record.topic] += 1
            by_kind[record.kind] += 1
        self.last_latency_s = max(0.0, (time.time_ns() - batch[-1].received_ns) / 1e9)
