"""What the Kafka publisher decides without doing I/O: error classes, counters, metrics,
the fate of each record of a settled chunk.

``kafka_sink`` is the trio/asyncio adapter; this module holds the pieces it is made of
that can be reasoned about (and unit-tested) on their own.
"""

from __future__ import annotations

import asyncio
import bisect
import enum
import operator
from collections.abc import Callable, Sequence
from typing import Any

import attrs
from aiokafka import codec
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    MessageSizeTooLargeError,
    NodeNotReadyError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from aiokafka.helpers import create_ssl_context
from prometheus_client import Counter, Histogram

from marketd.config.settings import BackoffSettings, KafkaSettings
from marketd.data.records import Record
from marketd.errors import ConfigError, PublishError
from marketd.runtime.backoff import BackoffPolicy

PRODUCE_API_KEY = 0  # Kafka protocol: ProduceRequest

# Fine below 100 ms, where the latency objectives live; coarse above.
LATENCY_BUCKETS_S = (
    *(0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04),
    *(0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
PUBLISH_LATENCY = Histogram(
    "marketd_publish_latency_seconds",
    "Time from a record's local receipt (received_ns, wall clock; a book snapshot: when it "
    "was taken) to its Kafka ack, by topic.",
    ["topic"],
    buckets=LATENCY_BUCKETS_S,
)
RECORDS_ACKED = Counter(
    "marketd_kafka_records_acked", "Records acknowledged by Kafka (acks=all).", ["topic"]
)
DELIVERY_FAILURES = Counter(
    "marketd_kafka_delivery_failures",
    "Record delivery attempts that failed (each is retried or surfaced).",
    ["error"],
)
RECORDS_RETRIED = Counter("marketd_kafka_records_retried", "Records sent again after a failure.")
RECORDS_REJECTED = Counter(
    "marketd_kafka_records_rejected", "Records Kafka can never take (too large), dropped loudly."
)
# aiokafka's default, stated: the publisher checks each record against it (as send() did).
MAX_REQUEST_BYTES = 1_048_576
_acked_children: dict[str, Any] = {}
_failure_children: dict[str, Any] = {}


def acked_counter(topic: str) -> Any:
    """The cached label child (``labels()`` costs ~1.5 µs, a cached ``inc`` ~0.3 µs)."""
    child = _acked_children.get(topic)
    if child is None:
        child = _acked_children[topic] = RECORDS_ACKED.labels(topic=topic)
    return child


def failure_counter(error: str) -> Any:
    child = _failure_children.get(error)
    if child is None:
        child = _failure_children[error] = DELIVERY_FAILURES.labels(error=error)
    return child


def _ns_bounds(bounds: Sequence[float]) -> list[int]:
    """For each finite bound b: the largest n (ns) with ``n / 1e9 <= b``."""
    out = []
    for bound in bounds:
        n = int(bound * 1e9)
        while (n + 1) / 1e9 <= bound:
            n += 1
        while n / 1e9 > bound:
            n -= 1
        out.append(n)
    return out


_BOUNDS_NS = _ns_bounds(LATENCY_BUCKETS_S)
_RECEIVED_NS = operator.attrgetter("received_ns")
_latency_children: dict[str, Any] = {}


def latency_histogram(topic: str) -> Any:
    """The topic's child of :data:`PUBLISH_LATENCY` (cached; made at start for every
    configured topic, so each series exists before its first record)."""
    child = _latency_children.get(topic)
    if child is None:
        child = _latency_children[topic] = PUBLISH_LATENCY.labels(topic=topic)
    return child


def observe_latencies(now_ns: int, received_ns: list[int], topic: str) -> None:
    """``observe(max(0, now_ns - r) / 1e9)`` for each ``r`` on the topic's histogram, in a
    dozen metric updates rather than one ``observe()`` (~1.3 µs) per record.

    Sorts the receipt times and counts per bucket with bisect; updates the histogram's
    bucket and sum values (prometheus_client internals, checked by a unit test; it falls
    back to ``observe()`` if they are missing).
    """
    n = len(received_ns)
    if not n:
        return
    histogram = latency_histogram(topic)
    total = getattr(histogram, "_sum", None)
    buckets = getattr(histogram, "_buckets", None)
    if total is None or buckets is None or len(buckets) != len(_BOUNDS_NS) + 1:
        for r in received_ns:
            histogram.observe(max(0, now_ns - r) / 1e9)
        return
    rs = sorted(received_ns)
    past = bisect.bisect_right(rs, now_ns)  # rs[:past] <= now_ns; the rest count as 0
    total.inc((past * now_ns - sum(rs[:past])) / 1e9)
    counted = 0  # observations in buckets so far: latency <= bound ⇔ r >= now_ns - bound
    for bucket, bound in zip(buckets, _BOUNDS_NS, strict=False):
        within = n - bisect.bisect_left(rs, now_ns - bound)
        if within > counted:
            bucket.inc(within - counted)
            counted = within
    if counted < n:
        buckets[-1].inc(n - counted)


class KafkaDeliveryError(PublishError):
    """Kafka refused records for a reason retrying will not fix (authorization, a batch
    larger than the broker accepts, an unsupported feature, ...).

    Not retried in place: the publisher stops and raises this (a ``RetryableError``) so
    the supervisor restarts it with backoff, loudly. Records not delivered are kept by
    the :class:`KafkaPublisher` and sent first when it serves again. Fix the ACLs,
    broker limits or configuration.
    """


class Failure(enum.Enum):
    RETRY = "retry"  # transient: send again (with backoff), forever
    REJECT = "reject"  # this one record can never be sent (larger than max request size)
    FATAL = "fatal"  # stop and surface KafkaDeliveryError


# An explicit allow-list (plus aiokafka's own ``retriable`` flag on broker errors).
# OutOfOrderSequenceNumber follows a failed earlier batch on the partition: the producer
# is replaced (new producer id) before records are sent again, which clears it.
KAFKA_RETRYABLE: tuple[type[BaseException], ...] = (
    KafkaConnectionError,
    KafkaTimeoutError,
    RequestTimedOutError,
    NodeNotReadyError,
    NotLeaderForPartitionError,
    LeaderNotAvailableError,
    NotEnoughReplicasError,
    NotEnoughReplicasAfterAppendError,
    UnknownTopicOrPartitionError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    OSError,
)
# Raised by send() itself for one record: only that record is at fault.
POISON: tuple[type[BaseException], ...] = (MessageSizeTooLargeError, RecordTooLargeError)


def classify(exc: BaseException, *, at_send: bool) -> Failure:
    if at_send and isinstance(exc, POISON):
        return Failure.REJECT
    if isinstance(exc, KAFKA_RETRYABLE) or getattr(exc, "retriable", False) is True:
        return Failure.RETRY
    return Failure.FATAL


def backoff_policy(s: BackoffSettings) -> BackoffPolicy:
    return BackoffPolicy(
        initial=s.initial_s,
        cap=s.max_s,
        multiplier=s.multiplier,
        jitter=s.jitter,
        reset_after=s.reset_after_s,
    )


_CODECS = {"gzip": codec.has_gzip, "snappy": codec.has_snappy, "lz4": codec.has_lz4}
_CODECS["zstd"] = codec.has_zstd


def producer_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    """``AIOKafkaProducer`` arguments: idempotent, acks=all, the configured batching.

    Raises :class:`ConfigError` if the compression codec's library is not installed
    (only gzip is built in; the others need ``aiokafka[snappy|lz4|zstd]``).
    """
    if settings.compression != "none" and not _CODECS[settings.compression]():
        raise ConfigError(
            [
                f"kafka.compression: {settings.compression!r} needs its library: "
                f"install aiokafka[{settings.compression}] or choose gzip/none"
            ]
        )
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_bytes,
        "request_timeout_ms": settings.request_timeout_ms,
        "max_request_size": MAX_REQUEST_BYTES,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = create_ssl_context()
    if settings.sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password
    return kwargs


@attrs.frozen
class PublisherStatistics:
    """A snapshot of the publisher. Counts are records, since the publisher was made."""

    connected: bool  # started, not recovering, acks on time, an ack since any failure
    sent: int  # records handed to the producer, re-sends included
    acknowledged: int  # records acknowledged by Kafka (acks=all)
    failed_attempts: int  # record deliveries that failed (each then retried or surfaced)
    retried: int  # records sent again after a failure
    rejected: int  # records Kafka can never take (too large): dropped and raised, loudly
    in_flight: int  # records handed to the producer, not yet settled
    pending_retry: int  # failed records waiting to be sent again (kept across restarts)
    oldest_in_flight_s: float  # age of the oldest unsettled batch; grows while Kafka is away
    producer_starts: int
    acknowledged_by_topic: dict[str, int]
    last_error: str | None
    last_error_at: float | None  # wall clock, time.time()
    # Per-batch work, whatever the records: chunks handed over (trio→asyncio crossings),
    # record batches in them (one per partition a chunk touches), produce requests sent.
    handovers: int = 0
    batches: int = 0
    produce_requests: int = 0

    @property
    def delivered(self) -> int:
        """Records the sink delivered (:class:`~marketd.pipeline.sink.SinkStatistics`)."""
        return self.acknowledged


@attrs.define(eq=False)
class Chunk:
    """Records handed to the producer in one crossing, as per-partition batches:
    ``(future, topic, indices)``, ``future`` delivering ``records[i] for i in indices``.
    Records in no batch were not handed over. ``error`` is charged to
    ``records[error_at]`` (``None``: the first record not handed over), raised when sending
    (``at_send``) or, if not, the failure of an earlier batch."""

    records: list[Record]
    sent_at: float
    batches: list[tuple[asyncio.Future[Any], str, list[int]]] = attrs.Factory(list)
    handed: int = 0  # records in batches
    error: Exception | None = None
    error_at: int | None = None
    at_send: bool = True
    # Added to every record's headers: the W3C trace context of this chunk's publish span.
    headers: tuple[tuple[str, bytes], ...] = ()


def sort_out(
    chunk: Chunk,
) -> tuple[dict[str, list[int]], list[tuple[Record, BaseException | None, bool]]]:
    """A settled chunk: the ``received_ns`` of the records acknowledged, per topic, and the
    others in their original order, each with the error to charge it with (``None``: not
    a failure of its own, send it again) and whether that error came at send time.
    Futures still pending (giving up at shutdown) are marked retrieved for later."""
    records, received = chunk.records, dict[str, list[int]]()
    rest: list[tuple[int, BaseException | None, bool]] = []
    for fut, topic, indices in chunk.batches:
        if not fut.done():
            fut.add_done_callback(retrieve)
            rest.extend((i, None, False) for i in indices)
            continue
        exc = ProducerClosed() if fut.cancelled() else fut.exception()
        if exc is None:
            received.setdefault(topic, []).extend(
                map(_RECEIVED_NS, map(records.__getitem__, indices))
            )
        else:
            rest.extend((i, exc, False) for i in indices)
    if chunk.handed < len(records):
        handed = {i for _, _, indices in chunk.batches for i in indices}
        unsent = [i for i in range(len(records)) if i not in handed]
        charged = unsent[0] if chunk.error_at is None else chunk.error_at
        rest.extend(
            (i, chunk.error, chunk.at_send) if i == charged else (i, None, False) for i in unsent
        )
    rest.sort(key=lambda entry: entry[0])
    return received, [(records[i], exc, at_send) for i, exc, at_send in rest]


def count_produce_requests(producer: Any, note: Callable[[], None]) -> None:
    """Call ``note()`` for each produce request ``producer`` sends (asyncio side).

    aiokafka 0.14 has no metric or hook for requests: this wraps the ``send`` method of
    the producer's client instance (``producer.client``, an ``AIOKafkaClient``), through
    which its sender sends every request (it looks ``send`` up at each call).
    """
    client = producer.client
    send = client.send

    async def counted(node_id: int, request: Any, **kwargs: Any) -> Any:
        if getattr(request, "API_KEY", None) == PRODUCE_API_KEY:
            note()
        return await send(node_id, request, **kwargs)

    client.send = counted


def retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark it retrieved: no "exception was never retrieved" noise
