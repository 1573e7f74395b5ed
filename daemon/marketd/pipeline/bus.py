"""The embedded in-process bus: the sink when no Kafka is configured.

It takes record batches as the Kafka publisher does (:class:`~marketd.pipeline.sink.Sink`)
and counts them per topic and kind; a record is delivered on receipt and nothing is kept.
The in-process detector does not read the bus: it has its own branch of the pipeline
(:mod:`marketd.pipeline.tap`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import ClassVar

import attrs
import trio
from prometheus_client.core import Metric

from marketd.data.records import Record
from marketd.obs.metrics import counter, seeded


@attrs.frozen
class BusStatistics:
    batches: int
    records: int
    by_topic: dict[str, int]
    by_kind: dict[str, int]
    last_latency_s: float

    @property
    def delivered(self) -> int:
        return self.records

    @property
    def connected(self) -> bool:
        return True  # nothing outside the process to reach


@attrs.define
class MemoryBus:
    name: ClassVar[str] = "memory-bus"
    remote: ClassVar[bool] = False
    batches: int = 0
    records: int = 0
    by_topic: Counter[str] = attrs.field(factory=Counter)
    by_kind: Counter[str] = attrs.field(factory=Counter)
    last_latency_s: float = 0.0
    # The topics whose series exist from the start (at 0), not after their first record.
    topics: tuple[str, ...] = ()

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            batches=self.batches,
            records=self.records,
            by_topic=dict(self.by_topic),
            by_kind=dict(self.by_kind),
            last_latency_s=self.last_latency_s,
        )

    def metrics(self) -> Iterable[Metric]:
        yield counter(
            "marketd_bus_records_total",
            "Records delivered on the embedded bus (no Kafka), by topic.",
            ("topic",),
            seeded([(t,) for t in self.topics], {(t,): n for t, n in self.by_topic.items()}),
        )

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Consume ``batches`` until the channel ends."""
        async with batches:
            task_status.started()
            async for batch in batches:
                self._count(batch)

    def _count(self, batch: list[Record]) -> None:
        self.batches += 1
        self.records += len(batch)
        by_topic = self.by_topic
        by_kind = self.by_kind
        for record in batch:
            by_topic[record.topic] += 1
            by_kind[record.kind] += 1
        self.last_latency_s = max(0.0, (time.time_ns() - batch[-1].received_ns) / 1e9)
