"""Records → per-partition record batches, partitioned as Kafka's default partitioner does.

The publisher hands aiokafka whole batches (``create_batch()`` / ``send_batch()``: one
future per batch) instead of one ``send()`` per record, so it chooses each record's
partition itself, exactly as the Java client's and aiokafka's default partitioner do for a
keyed record: ``(murmur2(key) & 0x7fffffff) % partitions``. Keys (symbols) are few, so
the choice is cached per (topic, key) and recomputed when a topic's partition count
changes. :func:`hand_over` (asyncio side) builds a chunk's batches and submits them.
"""

from __future__ import annotations

from typing import Any

import attrs
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from marketd.data.records import Record
from marketd.kafka.delivery import MAX_REQUEST_BYTES, POISON, Chunk

__all__ = ["PartitionBatch", "PartitionRouter", "build_batches", "hand_over", "partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` (never ``None`` here)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class PartitionRouter:
    """``routes[(topic, key)]`` → its ``TopicPartition``, cached across chunks."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, bytes], TopicPartition] = {}
        self._counts: dict[str, int] = {}

    def check(self, cluster: Any) -> None:
        """Forget the routes of a topic whose partition count changed (or whose metadata
        this producer does not hold yet): they are recomputed on their next use."""
        for topic, count in list(self._counts.items()):
            partitions = cluster.partitions_for_topic(topic)
            if partitions is None or len(partitions) != count:
                self._forget(topic)

    async def route(self, producer: Any, topic: str, key: bytes) -> TopicPartition:
        """Waits for the topic's metadata (as ``send()`` would), then caches the route."""
        partitions = sorted(await producer.partitions_for(topic))
        if self._counts.get(topic) != len(partitions):
            self._forget(topic)
            self._counts[topic] = len(partitions)
        tp = TopicPartition(topic, partitions[partition_for(key, len(partitions))])
        self.routes[topic, key] = tp
        return tp

    def _forget(self, topic: str) -> None:
        self._counts.pop(topic, None)
        self.routes = {k: tp for k, tp in self.routes.items() if k[0] != topic}


@attrs.define(eq=False)
class PartitionBatch:
    """One aiokafka ``BatchBuilder`` for ``tp``; ``indices`` are its records' positions in
    the chunk, in order."""

    tp: TopicPartition
    builder: Any
    indices: list[int] = attrs.Factory(list)


async def build_batches(
    producer: Any,
    router: PartitionRouter,
    records: list[Record],
    max_request_bytes: int,
    extra_headers: tuple[tuple[str, bytes], ...] = (),
) -> tuple[list[PartitionBatch], Exception | None, int]:
    """Append ``records`` in order to one builder per partition (a further one when a
    builder is full: ``max_batch_size`` holds). Returns the batches in creation order
    (within a partition, record order), plus the error and position of the first record
    that could not be taken (unknown topic, larger than ``max_request_bytes``): records
    from there on are in no batch."""
    router.check(producer.client.cluster)
    routes, route = router.routes, router.route
    current: dict[TopicPartition, PartitionBatch] = {}
    out: list[PartitionBatch] = []
    near_limit = max_request_bytes - 1024  # a record's size ≥ size_of(); see _too_large
    for i, r in enumerate(records):
        tp = routes.get((r.topic, r.key))
        if tp is None:
            try:
                tp = await route(producer, r.topic, r.key)
            except Exception as exc:  # no metadata for the topic in time, ...
                return out, exc, i
        batch = current.get(tp)
        headers = [*r.headers, *extra_headers]
        if (
            batch is None
            or (meta := batch.builder.append(timestamp=None, key=r.key, value=r.value,
                                             headers=headers)) is None
        ):  # fmt: skip
            # No builder yet, or it is full (and now closed): another one.
            batch = current[tp] = PartitionBatch(tp, producer.create_batch())
            out.append(batch)
            meta = batch.builder.append(timestamp=None, key=r.key, value=r.value, headers=headers)
        if meta.size > near_limit and (error := _too_large(r, headers, max_request_bytes)):
            _rebuild(producer, batch, records, extra_headers)  # without records[i]
            return [b for b in out if b.indices], error, i
        batch.indices.append(i)
    return out, None, len(records)


async def hand_over(producer: Any, router: PartitionRouter, chunk: Chunk) -> None:
    """Hand ``chunk`` to ``producer`` (runs in asyncio): its batches, in creation order,
    until one cannot be handed over (its records and the later ones stay unsent)."""
    batches, error, stop = await build_batches(
        producer, router, chunk.records, MAX_REQUEST_BYTES, chunk.headers
    )
    if error is not None:  # records[stop] is too large, or its topic unknown
        chunk.error, chunk.error_at = error, stop
    for batch in batches:
        tp = batch.tp
        try:
            # Waits while the partition's previous batch is not drained yet.
            fut = await producer.send_batch(batch.builder, tp.topic, partition=tp.partition)
        except Exception as exc:  # KafkaTimeoutError (not drained in time), closed, ...
            if chunk.error is None:
                # POISON here is an earlier batch's failure (wait_drain), not a record's.
                chunk.error, chunk.at_send = exc, not isinstance(exc, POISON)
            return
        chunk.batches.append((fut, tp.topic, batch.indices))
        chunk.handed += len(batch.indices)


def _too_large(r: Record, headers: list[Any], limit: int) -> Exception | None:
    """As ``AIOKafkaProducer.send()`` checks a record before taking it."""
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, headers)
    if size <= limit:
        return None
    error: Exception = MessageSizeTooLargeError(
        f"The message is {size} bytes when serialized which is larger than the maximum "
        "request size you have configured with the max_request_size configuration"
    )
    return error


def _rebuild(
    producer: Any,
    batch: PartitionBatch,
    records: list[Record],
    extra_headers: tuple[tuple[str, bytes], ...],
) -> None:
    batch.builder = producer.create_batch()
    for i in batch.indices:
        r = records[i]
        meta = batch.builder.append(
            timestamp=None, key=r.key, value=r.value, headers=[*r.headers, *extra_headers]
        )
        assert meta is not None  # they fitted before
