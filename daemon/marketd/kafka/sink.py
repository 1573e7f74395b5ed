"""The Kafka publisher: the sink that delivers to Kafka; every record acknowledged by it.

It implements :class:`~marketd.pipeline.sink.Sink`. An idempotent aiokafka producer
(``acks=all``) runs on a trio-asyncio loop opened by :mod:`marketd.kafka.hosting`.
Records cross the trio→asyncio boundary in chunks of up to ``max_records_per_send`` (one
crossing per chunk, never one per record), and up to ``max_inflight_batches`` chunks may
await their acks at once (pipelining). A chunk takes whatever input is queued; with
fewer than ``linger_records`` it waits for more, up to ``linger_max_ms`` (the adaptive
linger): each hand-over costs a produce cycle whatever its size, so the cycles per
second follow the records, not the clock, and N shards at 1/N of the rate each make
about 1/N of the cycles one process makes (while each takes in more than
``linger_records`` per ``linger_max_ms``; below that, one cycle per ``linger_max_ms``).
A chunk is handed over as record batches, one per partition (``kafka_partition``: the
default partitioner's choice, cached), through ``send_batch()``, so aiokafka costs per
batch, not per record (no per-record coroutine, partitioner or future). aiokafka sets
the idempotence sequence numbers when it drains a batch, as for ``send()``; a
partition's next batch waits until the previous one is drained, so per-partition order
holds. Each acknowledged record is observed in the latency histogram, in bulk per
settled chunk. ``on_settled`` hears of every record Kafka acknowledged (or can never
take) as its chunk settles: the spool acks by it.

Delivery: every batch's future is inspected. On a failure the publisher stops taking
input, lets the in-flight chunks settle, replaces the producer if a sent batch failed
(its sequence numbers are then unusable), waits a backoff delay, and sends the failed
records again in their original order before anything newer, so per-key order holds.
Retryable errors are retried forever. While Kafka is merely unreachable aiokafka itself
keeps retrying (idempotence: no duplicates); the input channel then fills up, which is
the backpressure. A record too large for a request is dropped (counted and logged) and
:class:`KafkaDeliveryError` is raised, as for any other non-retryable error
(authorization, a batch the broker refuses): the supervisor restarts the publisher with
backoff, and records not yet delivered are kept here and sent first on the next serve.

Topics are not created here: the dev broker auto-creates them; in production create them
beforehand (partitions = the parallelism you want; records are keyed by symbol).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, ClassVar

import attrs
import structlog
import trio
from aiokafka import AIOKafkaProducer
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from marketd.config.settings import KafkaSettings
from marketd.data.records import Record
from marketd.kafka.delivery import (
    RECORDS_REJECTED,
    RECORDS_RETRIED,
    Chunk,
    Failure,
    KafkaDeliveryError,
    PublisherStatistics,
    acked_counter,
    backoff_policy,
    classify,
    count_produce_requests,
    failure_counter,
    latency_histogram,
    observe_latencies,
    producer_kwargs,
    sort_out,
)
from marketd.kafka.hosting import aio_as_trio, close_client, open_loop, start_client
from marketd.kafka.partition import PartitionRouter, hand_over
from marketd.obs.logs import RateLimitedLog
from marketd.obs.telemetry import end_span, kafka_headers, start_span
from marketd.runtime.backoff import Backoff

__all__ = ["KafkaDeliveryError", "KafkaPublisher", "PublisherStatistics"]

log = structlog.get_logger(__name__)


def _take_queued(
    records: list[Record], batches: trio.abc.ReceiveChannel[list[Record]], limit: int
) -> None:
    """Extend ``records`` (a list of our own) by the batches already queued, up to about
    ``limit`` records: one crossing for all of them."""
    if isinstance(batches, trio.MemoryReceiveChannel):
        with contextlib.suppress(trio.WouldBlock, trio.EndOfChannel):
            while len(records) < limit:
                records.extend(batches.receive_nowait())


def _holds_topic(records: list[Record], topic: str) -> bool:
    return any(r.topic == topic for r in records)


class KafkaPublisher:
    """Publishes record batches to Kafka; keeps counters and undelivered records across
    restarts of :meth:`serve` (make one, serve it as often as the supervisor needs)."""

    name: ClassVar[str] = "kafka"
    remote: ClassVar[bool] = True  # /readyz names Kafka's connection as its own component

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        shutdown_grace_s: float = 5.0,
        on_settled: Callable[[list[Record]], None] | None = None,
    ) -> None:
        """``on_settled`` is called with the records Kafka acknowledged, and those it can
        never take (dropped loudly), as they settle: the spool acks its entries by it."""
        self.settings = settings
        self._on_settled = on_settled
        self._settled_extra: list[Record] = []  # rejected: reported at the next settlement
        self._grace = shutdown_grace_s
        self._timeout_s = settings.request_timeout_ms / 1000
        self._backoff = Backoff(backoff_policy(settings.retry))
        self._retry: list[Record] = []  # failed, in original order: sent before anything new
        self._held: list[Record] = []  # input not handed over yet (a failure or cancel came)
        self._failed = False  # a failure was seen: take no new input until recovered
        # A delivery failed and nothing has been acknowledged since: not connected, even
        # while a resend is in flight or a new producer started (else /readyz flaps to
        # ready on every retry of an outage, for as long as the resend takes to fail).
        self._doubted = False
        self._fatal: KafkaDeliveryError | None = None
        self._reset = False  # a sent batch failed: replace the producer before resending
        self._window: collections.deque[Chunk] = collections.deque()
        self._producer: Any = None
        self._router = PartitionRouter()
        self._wake: trio.CancelScope | None = None
        self._slots = trio.Semaphore(settings.max_inflight_batches)
        self._tokens: trio.MemorySendChannel[None] | None = None
        self._started = False
        self._sent = self._acked = self._failures = self._retried = self._rejected = 0
        self._starts = 0
        # Per-batch work (the cost that does not scale with records): chunks handed over
        # (trio→asyncio crossings), record batches in them, produce requests sent.
        self._handovers = self._batches = self._requests = 0
        self._by_topic: dict[str, int] = {}
        # Every topic's series exist from the start (at 0), not after its first record.
        for topic in attrs.astuple(settings.topics):
            acked_counter(topic)
            latency_histogram(topic)
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._kwargs = producer_kwargs(settings)  # ConfigError now, not at each restart
        self._failure_log = RateLimitedLog()
        self._overdue_log = RateLimitedLog()
        self._start_log = RateLimitedLog(interval=5.0)
        self._spans: dict[int, Any] = {}  # id(chunk) → its "kafka.publish" span (tracing on)

    # -- observation ------------------------------------------------------------------

    def statistics(self) -> PublisherStatistics:
        # time.monotonic, not trio's clock: this may be called from outside trio.
        oldest = time.monotonic() - self._window[0].sent_at if self._window else 0.0
        return PublisherStatistics(
            connected=(
                self._started
                and not self._failed
                and not self._doubted
                and oldest < self._timeout_s
            ),
            sent=self._sent,
            acknowledged=self._acked,
            failed_attempts=self._failures,
            retried=self._retried,
            rejected=self._rejected,
            in_flight=sum(item.handed for item in self._window),
            pending_retry=len(self._retry) + len(self._held),
            oldest_in_flight_s=oldest,
            producer_starts=self._starts,
            acknowledged_by_topic=dict(self._by_topic),
            handovers=self._handovers,
            batches=self._batches,
            produce_requests=self._requests,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    def metrics(self) -> Iterable[Metric]:
        """Scrape-time gauges (counters and the latency histogram are module metrics)."""
        st = self.statistics()
        for name, doc, value in (
            ("marketd_kafka_connected", "1 when the Kafka producer is up and acks are on time.",
             float(st.connected)),
            ("marketd_kafka_records_in_flight", "Records handed to the producer, not settled.",
             float(st.in_flight)),
            ("marketd_kafka_records_pending_retry", "Failed records waiting to be sent again.",
             float(st.pending_retry)),
            ("marketd_kafka_oldest_in_flight_seconds", "Age of the oldest unsettled chunk.",
             st.oldest_in_flight_s),
        ):  # fmt: skip
            yield GaugeMetricFamily(name, doc, value=value)
        for name, doc, count in (
            ("marketd_kafka_handovers", "Chunks of records handed to the producer (each one "
             "trio→asyncio crossing).", st.handovers),
            ("marketd_kafka_batches", "Record batches handed to the producer (one per "
             "partition in a chunk).", st.batches),
            ("marketd_kafka_produce_requests", "Produce requests the producer sent.",
             st.produce_requests),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=count)

    # -- serving ----------------------------------------------------------------------

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Publish until ``batches`` ends (then flush, await every ack, return) or until
        cancelled (then a bounded, shielded flush). ``started()`` once connected."""
        async with batches, open_loop():
            await self._serve(batches, task_status)

    async def _serve(
        self, batches: trio.abc.ReceiveChannel[list[Record]], task_status: trio.TaskStatus[None]
    ) -> None:
        tokens_send, tokens_recv = trio.open_memory_channel[None](math.inf)
        self._tokens = tokens_send
        self._slots = trio.Semaphore(self.settings.max_inflight_batches)
        self._failed = bool(self._retry or self._held)  # carried over from a previous serve
        self._fatal = None  # still fatal? it fails again on the resend
        await self._start_producer()
        self._reset = False
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._ack_loop, tokens_recv)
                await self._feed(batches)
                await self._drain()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._close_producer()

    async def _feed(self, batches: trio.abc.ReceiveChannel[list[Record]]) -> None:
        limit = self.settings.max_records_per_send
        target = min(self.settings.linger_records, limit)
        urgent = self.settings.topics.alerts
        while True:
            if self._failed:
                await self._recover()
                continue
            records: list[Record] | None = None
            with trio.CancelScope() as self._wake:  # cancelled when a failure arrives
                try:
                    records = await batches.receive()
                except trio.EndOfChannel:
                    return
            self._wake = None
            if records is None:
                continue
            ended = False
            if len(records) < limit:
                records = list(records)  # ours: what is queued behind it joins it
                _take_queued(records, batches, limit)
                if len(records) < target and not _holds_topic(records, urgent):
                    ended = await self._gather(records, batches, target, urgent)
            await self._send(records)
            if ended:
                return

    async def _gather(
        self,
        records: list[Record],
        batches: trio.abc.ReceiveChannel[list[Record]],
        target: int,
        urgent: str,
    ) -> bool:
        """The adaptive linger: add input to ``records`` (a list of our own) until it holds
        ``target`` records or a record of the ``urgent`` topic (alerts: a trader waits for
        them), ``linger_max_ms`` has passed or a failure arrives. Returns whether the
        input ended. A cancellation keeps what was gathered (``_held``)."""
        limit = self.settings.max_records_per_send
        deadline = trio.current_time() + self.settings.linger_max_ms / 1000
        try:
            with trio.move_on_at(deadline), trio.CancelScope() as self._wake:
                while len(records) < target:
                    try:
                        more = await batches.receive()
                    except trio.EndOfChannel:
                        return True
                    records.extend(more)
                    _take_queued(records, batches, limit)
                    if _holds_topic(more, urgent):
                        break
        except BaseException:
            self._held = records  # not handed over: kept for the next serve
            raise
        finally:
            self._wake = None
        return False

    async def _send(self, records: list[Record]) -> None:
        step = self.settings.max_records_per_send
        for start in range(0, len(records), step):
            # Until handed over, these are held: a failure or a cancellation keeps them
            # (after the older in-flight records) instead of sending them out of order.
            self._held = records[start:]
            if self._failed:
                return
            await self._slots.acquire()
            if self._failed:
                self._slots.release()
                return
            item = Chunk(records[start : start + step], time.monotonic())
            self._window.append(item)
            # One span per chunk, from hand-over to settlement (acks), never per record.
            sp = start_span("kafka.publish", records=len(item.records))
            if sp.is_recording():
                self._spans[id(item)] = sp
                item.headers = kafka_headers(sp)
            self._held = records[start + step :]
            try:
                await aio_as_trio(hand_over)(self._producer, self._router, item)
            finally:
                self._sent += item.handed
                self._handovers += 1
                self._batches += len(item.batches)
                assert self._tokens is not None
                self._tokens.send_nowait(None)
            if item.error is not None:
                self._failed = True  # nothing newer goes out before these are resent
                return
        self._held = []

    async def _ack_loop(self, tokens: trio.MemoryReceiveChannel[None]) -> None:
        async for _ in tokens:
            item = self._window[0]
            pending = [fut for fut, _, _ in item.batches if not fut.done()]
            while pending:
                with trio.move_on_after(self._timeout_s):
                    await aio_as_trio(asyncio.wait)(pending)
                pending = [fut for fut in pending if not fut.done()]
                if pending and (n := self._overdue_log.ready()) is not None:
                    age = round(time.monotonic() - item.sent_at, 1)
                    log.warning("kafka acks overdue", batches=len(pending), age_s=age, more=n)
            self._window.popleft()
            self._settle(item)
            self._slots.release()

    def _settle(self, item: Chunk, *, final: bool = False) -> None:
        failed_before = self._failures
        received, rest = sort_out(item)
        now_ns = time.time_ns()
        for topic, times in received.items():
            observe_latencies(now_ns, times, topic)
        if self._on_settled is not None:
            settled: list[Record]
            if not rest:
                # All of them, acknowledged: in the order taken (the spool's, so that its
                # ack window moves its head past them without looking each one up).
                settled = list(item.records)
            else:
                settled = []
                record_at = item.records.__getitem__
                for fut, _, indices in item.batches:
                    if fut.done() and not fut.cancelled() and fut.exception() is None:
                        settled.extend(map(record_at, indices))
        for record, exc, at_send in rest:  # in their original order
            if exc is not None:
                self._fail(record, exc, at_send=at_send)
            else:  # unsent, or in flight when giving up at shutdown: kept for the next serve
                self._retry.append(record)
                self._failed = True
        if self._on_settled is not None:
            settled.extend(self._settled_extra)
            self._settled_extra.clear()
            if settled:
                self._on_settled(settled)
        acked = sum(len(times) for times in received.values())
        self._acked += acked
        if acked:
            self._doubted = False
        totals = self._by_topic
        for topic, times in received.items():
            acked_counter(topic).inc(len(times))
            totals[topic] = totals.get(topic, 0) + len(times)
        if (sp := self._spans.pop(id(item), None)) is not None:
            failed = self._failures - failed_before
            error = self._last_error if failed else None
            end_span(sp, error, acked=acked, failed=failed, unsettled=len(rest) - failed)
        if self._failures > failed_before:
            if (n := self._failure_log.ready()) is not None:
                log.warning(
                    "kafka delivery failed",
                    error=self._last_error,
                    failures=self._failures - failed_before,
                    pending_retry=len(self._retry) + len(self._held),
                    suppressed=n,
                )
            if self._wake is not None:
                self._wake.cancel()
        elif acked and not final:
            self._backoff.attempt = 0

    def _fail(self, record: Record, exc: BaseException, *, at_send: bool) -> None:
        self._failures += 1
        failure_counter(type(exc).__name__).inc()
        self._last_error, self._last_error_at = repr(exc), time.time()
        self._failed = True
        self._reset = self._reset or not at_send
        kind = classify(exc, at_send=at_send)
        if kind is not Failure.REJECT:  # a record too large says nothing of the connection
            self._doubted = True
        if kind is Failure.REJECT:
            self._settled_extra.append(record)
            self._rejected += 1
            RECORDS_REJECTED.inc()
            log.error("kafka rejects a record; dropped", topic=record.topic, key=record.key,
                      bytes=len(record.value), error=repr(exc))  # fmt: skip
            self._fatal = self._fatal or KafkaDeliveryError(
                f"a record for {record.topic} ({len(record.value)} B) exceeds the producer's "
                f"max request size and was dropped ({exc!r}); check the codec or limits"
            )
            return
        self._retry.append(record)
        if kind is Failure.FATAL and self._fatal is None:
            self._fatal = KafkaDeliveryError(
                f"Kafka refused delivery to {record.topic}: {exc!r}; not retryable - check "
                "ACLs, credentials and broker limits (message.max.bytes vs max_batch_bytes)"
            )

    @contextlib.asynccontextmanager
    async def _all_settled(self) -> AsyncIterator[None]:
        """Hold every in-flight slot: nothing is in flight inside."""
        held = 0
        try:
            for _ in range(self.settings.max_inflight_batches):
                await self._slots.acquire()
                held += 1
            yield
        finally:
            for _ in range(held):
                self._slots.release()

    async def _recover(self) -> None:
        async with self._all_settled():
            if self._fatal is not None:
                fatal, self._fatal = self._fatal, None
                raise fatal  # undelivered records stay in self._retry for the next serve()
            delay = self._backoff.next_delay()
            await trio.sleep(delay)
            if self._reset:
                await self._stop_producer()
                await self._start_producer()
                self._reset = False
            retried = len(self._retry)
            records = self._retry + self._held
            self._retry, self._held, self._failed = [], [], False
        self._retried += retried
        RECORDS_RETRIED.inc(retried)
        await self._send(records)

    async def _drain(self) -> None:
        """End of input: resend what failed until nothing is pending, then return."""
        while True:
            if self._failed:
                await self._recover()
                continue
            async with self._all_settled():
                if not self._failed:
                    return

    # -- the producer -----------------------------------------------------------------

    async def _start_producer(self) -> None:
        backoff = Backoff(backoff_policy(self.settings.retry))
        while True:
            try:
                self._producer = await start_client(self._new_producer, self._timeout_s)
                break
            except Exception as exc:
                if (
                    not isinstance(exc, trio.TooSlowError)
                    and classify(exc, at_send=False) is not Failure.RETRY
                ):
                    raise KafkaDeliveryError(
                        f"cannot start the Kafka producer ({exc!r}); check "
                        "kafka.security_protocol, SASL settings and ACLs"
                    ) from exc
                delay = backoff.next_delay()
                self._last_error, self._last_error_at = repr(exc), time.time()
                if (n := self._start_log.ready()) is not None:
                    log.warning(
                        "kafka not reachable; retrying",
                        bootstrap=self.settings.bootstrap_servers,
                        attempt=backoff.attempt,
                        retry_in_s=round(delay, 2),
                        error=repr(exc),
                        suppressed=n,
                    )
                await trio.sleep(delay)
        self._started = True  # a doubt stays until an ack: reachable is not delivering
        self._starts += 1
        log.info("kafka producer started", bootstrap=self.settings.bootstrap_servers)

    def _new_producer(self) -> Any:  # runs in asyncio
        producer = AIOKafkaProducer(**self._kwargs)
        count_produce_requests(producer, self._count_request)
        return producer

    def _count_request(self) -> None:
        self._requests += 1

    async def _stop_producer(self, within_s: float | None = None) -> None:
        producer, self._producer, self._started = self._producer, None, False
        within_s = self._timeout_s if within_s is None else within_s
        if producer is not None:
            with trio.move_on_after(within_s + 1):
                await aio_as_trio(close_client)(producer, within_s)

    async def _close_producer(self) -> None:
        """Last words, all within ``shutdown_grace_s`` (the caller shields): flush what is
        in flight, settle it, keep what is unacknowledged, stop the producer."""
        deadline = trio.current_time() + self._grace
        if self._producer is not None and self._window:
            with trio.move_on_at(deadline - 1), contextlib.suppress(Exception):
                await aio_as_trio(self._producer.flush)()
        while self._window:
            self._settle(self._window.popleft(), final=True)
        self._retry.extend(self._held)
        self._held = []
        if self._retry:
            log.error(
                "kafka publisher stopped with records undelivered; kept for the next run",
                records=len(self._retry),
            )
        await self._stop_producer(max(0.5, deadline - trio.current_time() - 0.5))
