"""The sink: where the pipeline's record batches end. The Kafka publisher
(:class:`marketd.kafka.sink.KafkaPublisher`) and the embedded bus
(:class:`marketd.pipeline.bus.MemoryBus`) are interchangeable behind it.

**Input.** ``serve`` takes batches from one bounded channel, the spool's output (Kafka
with the spool on) or the last market-data stage's (the books, else the normalizer), into
which the in-process detector also sends its alerts. It owns the channel: it closes it
when it returns. It calls ``task_status.started()`` once it takes records, and returns
once the channel has ended and everything taken was delivered (or, cancelled, after a
bounded flush). The supervisor restarts it on a retryable error; a sink keeps its
counters, and whatever it took but did not deliver, across restarts.

**Acknowledgement.** A record is *delivered* once its destination has it: Kafka with
``acks=all``, the bus on receipt. A sink that delivers outside the process reports every
record Kafka acknowledged (or can never take, dropped loudly) to the ``on_settled``
callback it was made with, as its batch settles: the spool acks its entries by it
(``docs/DELIVERY.md``). The bus persists nothing and is never behind the spool.

**Observation.** ``statistics()`` is a frozen snapshot with at least ``delivered`` and
``connected`` (the destination takes records now); ``metrics()`` yields its metric
families; ``name`` is what logs call it. A ``remote`` sink's connection is a readiness
component of its own, named ``name`` (``kafka`` in ``/readyz``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import trio
from prometheus_client.core import Metric

from marketd.data.records import Record


class SinkStatistics(Protocol):
    @property
    def delivered(self) -> int: ...  # records delivered since the sink was made

    @property
    def connected(self) -> bool: ...  # the destination takes records now


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def remote(self) -> bool: ...

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = ...,
    ) -> None: ...

    def statistics(self) -> SinkStatistics: ...

    def metrics(self) -> Iterable[Metric]: ...
