"""Exactly-once delivery from the spool into Kafka (``kafka.delivery: exactly_once``).

A transactional aiokafka producer (``transactional_id``: ``kafka.transactional_id``, by
default ``<client_id>.<spool directory id>``, stable per collector) publishes the records the
spool stage hands on, and in the **same transaction** a progress record: key = the
transactional id, value = the spool seq (and a fingerprint) of the transaction's last
record, on the compacted ``kafka.progress_topic``. A transaction gathers records for
``transaction_interval_ms`` (or up to ``max_inflight_batches x max_records_per_send``
records), sent as they come (per-partition batches, as the at-least-once publisher);
then the progress record, every batch's ack, the commit; only then are its records
settled (``on_settled``: the spool acks them).

Resuming. At start, and after any failure inside a transaction (a send refused, acks
overdue, a commit whose outcome is unknown), the producer is closed and a new one is
made with the same transactional id: ``InitProducerId`` fences any older producer of
that id and completes or aborts its open transaction. Then the progress topic is read
with ``read_committed`` (after every transaction below its high watermark is decided)
for the last committed position of our key. Records the spool hands on at or below it
are in Kafka already: they are settled without being sent. Everything above it is sent
again, in order, in a new transaction. A restart of the process is the same case: the
spool re-delivers what it had not acknowledged, and what Kafka had committed is skipped.

The committed position is checked against the spool before anything is skipped: the
record at that seq must still be in the spool with the same fingerprint. If it is not
(the spool directory was replaced, an OS crash lost its unsynced tail and the seqs were
reused, two collectors share a transactional id), nothing is skipped: duplicates rather
than loss, logged as an error.

Fencing: a producer fenced by a newer one with the same id (``ProducerFenced``) stops
with :class:`ProducerFencedError`, which is not retried: two live collectors must not
share an id. Consumers read with ``isolation.level=read_committed``.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Iterable
from typing import Any, ClassVar, NoReturn, Protocol

import attrs
import structlog
import trio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import ProducerFenced, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from marketd.config.settings import KafkaSettings
from marketd.data.records import Record
from marketd.errors import MarketdError
from marketd.kafka.delivery import (
    POISON,
    RECORDS_REJECTED,
    Chunk,
    Failure,
    KafkaDeliveryError,
    PublisherStatistics,
    acked_counter,
    backoff_policy,
    classify,
    failure_counter,
    latency_histogram,
    observe_latencies,
    producer_kwargs,
    retrieve,
)
from marketd.kafka.hosting import (
    aio_as_trio,
    client_kwargs,
    close_client,
    open_loop,
    start_client,
    start_within_s,
)
from marketd.kafka.partition import PartitionRouter, hand_over, partition_for
from marketd.obs.logs import RateLimitedLog
from marketd.runtime.backoff import Backoff

__all__ = [
    "ExactlyOncePublisher",
    "ProducerFencedError",
    "Progress",
    "SpoolCursor",
    "decode_progress",
    "encode_progress",
    "fingerprint",
    "read_progress",
    "transactional_id",
]

log = structlog.get_logger(__name__)

# The broker's transaction.max.timeout.ms default (15 min): a transaction left open by
# an outage is aborted by the coordinator only after this long (the next start of a
# producer with the same id aborts it at once).
TRANSACTION_TIMEOUT_MS = 900_000
_PROGRESS_WINDOW = 256  # progress records read back first when looking for our key


class ProducerFencedError(MarketdError):
    """Another producer with the same ``kafka.transactional_id`` started: this one is a
    zombie and stops (not retried). Give every collector its own id."""


class SpoolCursor(Protocol):
    """What the publisher needs of the spool stage (:class:`~marketd.spool.stage.SpoolStage`)."""

    with_seqs: bool

    def identity(self) -> str: ...  # blocking (may create a file)

    def acked_seq(self) -> int: ...

    def record_at(self, seq: int) -> Record | None: ...

    def on_settled(self, records: list[Record]) -> None: ...


@attrs.frozen
class Progress:
    """The last record of a committed transaction: its spool seq and fingerprint."""

    seq: int
    fingerprint: str


def fingerprint(record: Record) -> str:
    """Identifies a spooled record (topic, key, value, receipt time) cheaply."""
    crc = zlib.crc32(record.value, zlib.crc32(record.key, zlib.crc32(record.topic.encode())))
    return f"{crc:08x}.{record.received_ns}"


def encode_progress(progress: Progress) -> bytes:
    body = {
        "v": 1,
        "seq": progress.seq,
        "fp": progress.fingerprint,
        "at_ms": time.time_ns() // 1_000_000,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_progress(value: bytes | None) -> Progress | None:
    if not value:
        return None
    try:
        body = json.loads(value)
        return Progress(int(body["seq"]), str(body["fp"]))
    except (ValueError, KeyError, TypeError):
        log.warning("unreadable progress record; ignored", value=value[:200])
        return None


def transactional_id(settings: KafkaSettings, spool_id: str) -> str:
    """``kafka.transactional_id``, else ``<client_id>.<spool id>``: the spool directory's
    stable id (:mod:`marketd.spool.identity`), the same for every run of a collector."""
    return settings.transactional_id or f"{settings.client_id}.{spool_id}"


async def ensure_progress_topic(settings: KafkaSettings) -> None:
    """(asyncio side) Create the compacted progress topic if it is missing."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    try:
        await admin.start()
        brokers = len((await admin.describe_cluster()).get("brokers") or ()) or 1
        topic = NewTopic(
            settings.progress_topic,
            num_partitions=1,
            replication_factor=min(3, brokers),
            topic_configs={"cleanup.policy": "compact"},
        )
        response = await admin.create_topics([topic])
    finally:
        await admin.close()
    for name, code, *rest in response.topic_errors:
        if code and code != TopicAlreadyExistsError.errno:
            log.warning("cannot create the progress topic; create it (compacted) beforehand",
                        topic=name, error=code, detail=rest)  # fmt: skip


async def read_progress(settings: KafkaSettings, tid: str, timeout_s: float) -> Progress | None:
    """(asyncio side) The last committed progress of ``tid``, or ``None`` if it has none.

    Waits until every transaction below the partition's high watermark is decided (the
    last stable offset reaches it), then reads backwards in growing windows."""
    topic, key = settings.progress_topic, tid.encode()
    common = client_kwargs(settings)
    committed = AIOKafkaConsumer(
        **common, enable_auto_commit=False, isolation_level="read_committed",
        fetch_max_wait_ms=100,
    )  # fmt: skip
    uncommitted = AIOKafkaConsumer(**common, enable_auto_commit=False)
    deadline = time.monotonic() + timeout_s
    try:
        await committed.start()
        await uncommitted.start()
        while True:  # a topic just created may take a moment to appear in the metadata
            cluster = await committed._client.fetch_all_metadata()  # private (aiokafka 0.14)
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                break
            if time.monotonic() > deadline:
                raise KafkaDeliveryError(f"progress topic {topic!r} does not exist")
            await asyncio.sleep(0.1)
        ordered = sorted(partitions)
        tp = TopicPartition(topic, ordered[partition_for(key, len(ordered))])
        committed.assign([tp])
        uncommitted.assign([tp])
        high = (await uncommitted.end_offsets([tp]))[tp]
        begin = (await committed.beginning_offsets([tp]))[tp]
        while (await committed.end_offsets([tp]))[tp] < high:  # the LSO under read_committed
            if time.monotonic() > deadline:
                raise TimeoutError("progress topic: open transactions not decided")
            await asyncio.sleep(0.05)
        stop, window = high, _PROGRESS_WINDOW
        while stop > begin:
            start = max(begin, stop - window)
            committed.seek(tp, start)
            found: bytes | None = None
            seen = False
            while await committed.position(tp) < stop:
                if time.monotonic() > deadline:
                    raise TimeoutError("progress topic: reading timed out")
                batch = await committed.getmany(tp, timeout_ms=200)
                for message in batch.get(tp, ()):
                    if message.offset < stop and message.key == key:
                        found, seen = message.value, True
            if seen:
                return decode_progress(found)
            stop, window = start, window * 8
        return None
    finally:
        for consumer in (committed, uncommitted):
            await close_client(consumer, timeout_s)


class _Retry(Exception):
    """A transaction failed: abort it (new producer), resume from the committed position."""


class ExactlyOncePublisher:
    """The sink for ``kafka.delivery: exactly_once`` (see the module doc). Keeps its
    counters and the records it took but did not commit across restarts of :meth:`serve`."""

    name: ClassVar[str] = "kafka"
    remote: ClassVar[bool] = True

    def __init__(
        self, settings: KafkaSettings, spool: SpoolCursor, *, shutdown_grace_s: float = 5.0
    ) -> None:
        self.settings = settings
        # Known at the first serve (the default is read from the spool directory).
        self.transactional_id: str = settings.transactional_id
        self._spool = spool
        spool.with_seqs = True
        self._grace = shutdown_grace_s
        self._timeout_s = settings.request_timeout_ms / 1000
        self._kwargs = producer_kwargs(settings) | {
            "transaction_timeout_ms": TRANSACTION_TIMEOUT_MS
        }
        self._cap = settings.max_inflight_batches * settings.max_records_per_send
        self._router = PartitionRouter()
        self._producer: Any = None
        self._started = False
        self._topic_ready = False
        # Taken from the spool, not known to be committed: (seq, record), in seq order.
        self._pending: list[tuple[int, Record]] = []
        # Copies handed on again (the spool stage restarted): settled once committed.
        self._shadow: list[tuple[int, Record]] = []
        self._taken = 0  # highest seq taken
        self._progress: Progress | None = None  # as read from Kafka at the last resync
        self._verified = False  # the progress was checked against the spool
        self._skip_upto = 0  # records up to this seq are in Kafka: settled, not sent
        self._in_txn_since: float | None = None
        # A failure was seen and no transaction committed since: not connected, also while
        # retrying or restarting the producer (else /readyz flaps to ready during an
        # outage, or while every transaction fails).
        self._doubted = False
        self._sent = self._acked = self._failures = self._retried = self._rejected = 0
        self._starts = self._commits = self._aborts = self._skipped = 0
        self._by_topic: dict[str, int] = {}
        for topic in attrs.astuple(settings.topics):
            acked_counter(topic)
            latency_histogram(topic)
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._failure_log = RateLimitedLog()

    # -- observation ------------------------------------------------------------------

    def statistics(self) -> PublisherStatistics:
        since = self._in_txn_since
        oldest = time.monotonic() - since if since is not None else 0.0
        return PublisherStatistics(
            connected=self._started and not self._doubted and oldest < self._timeout_s,
            sent=self._sent,
            acknowledged=self._acked,
            failed_attempts=self._failures,
            retried=self._retried,
            rejected=self._rejected,
            in_flight=len(self._pending),
            pending_retry=0,
            oldest_in_flight_s=oldest,
            producer_starts=self._starts,
            acknowledged_by_topic=dict(self._by_topic),
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    def metrics(self) -> Iterable[Metric]:
        st = self.statistics()
        for name, doc, value in (
            ("marketd_kafka_connected", "1 when the Kafka producer is up and acks are on time.",
             float(st.connected)),
            ("marketd_kafka_records_in_flight", "Records taken, not committed yet.",
             float(st.in_flight)),
            ("marketd_kafka_records_pending_retry", "Failed records waiting to be sent again.",
             0.0),
            ("marketd_kafka_oldest_in_flight_seconds", "Age of the open transaction.",
             st.oldest_in_flight_s),
        ):  # fmt: skip
            yield GaugeMetricFamily(name, doc, value=value)
        for name, doc, value in (
            ("marketd_kafka_transactions_committed", "Kafka transactions committed.",
             self._commits),
            ("marketd_kafka_transactions_aborted", "Kafka transactions given up (aborted by "
             "the next producer of the same id) after a failure.", self._aborts),
            ("marketd_kafka_records_skipped", "Records the spool handed on that Kafka had "
             "committed already (not sent again).", self._skipped),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=value)

    # -- serving ----------------------------------------------------------------------

    async def serve(
        self,
        batches: trio.abc.ReceiveChannel[list[Record]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Publish until ``batches`` ends (then commit what was taken and return) or until
        cancelled (what is not committed is aborted and sent again later)."""
        async with batches, open_loop():
            await self._serve(batches, task_status)

    async def _serve(
        self, batches: trio.abc.ReceiveChannel[list[Record]], task_status: trio.TaskStatus[None]
    ) -> None:
        backoff = Backoff(backoff_policy(self.settings.retry))
        try:
            await self._resync(backoff)
            task_status.started()
            ended = False
            while True:
                if not self._pending:
                    if ended:
                        return
                    try:
                        self._take(await batches.receive())
                    except trio.EndOfChannel:
                        return
                    continue
                try:
                    ended = await self._transaction(batches, ended)
                    backoff.attempt = 0
                except _Retry as exc:
                    if self._was_fenced(exc):
                        raise self._fenced(exc.__cause__ or exc) from exc
                    self._aborts += 1
                    self._retried += len(self._pending)
                    cause = exc.__cause__ or exc
                    if (n := self._failure_log.ready()) is not None:
                        log.warning("kafka transaction failed; resuming from the committed "
                                    "position", error=repr(cause), records=len(self._pending),
                                    suppressed=n)  # fmt: skip
                    await trio.sleep(backoff.next_delay())
                    await self._resync(backoff)
        finally:
            self._in_txn_since = None
            with trio.CancelScope(shield=True):
                await self._stop_producer(max(0.5, min(self._grace, self._timeout_s)))

    def _take(self, batch: list[Record]) -> None:
        """Sort a batch from the spool: committed already (settled now), a copy of one
        taken (settled once committed), or new (pending)."""
        seqs = getattr(batch, "seqs", None)
        if seqs is None:
            raise KafkaDeliveryError(
                "kafka.delivery: exactly_once needs the spool's positions (spool.enabled)"
            )
        self._verify()
        settled: list[Record] = []
        for seq, record in zip(seqs, batch, strict=True):
            if seq <= self._skip_upto:
                settled.append(record)
            elif seq <= self._taken:
                self._shadow.append((seq, record))
            else:
                self._pending.append((seq, record))
                self._taken = seq
        if settled:
            self._skipped += len(settled)
            self._spool.on_settled(settled)

    def _verify(self) -> None:
        """Check the committed progress against the spool; settle what it covers."""
        if self._verified:
            return
        self._verified = True
        progress = self._progress
        skip = self._skip_upto
        if progress is not None and progress.seq > skip:
            if progress.seq <= self._spool.acked_seq():
                skip = progress.seq
            else:
                record = self._spool.record_at(progress.seq)
                if record is not None and fingerprint(record) == progress.fingerprint:
                    skip = progress.seq
                else:
                    log.error(
                        "the progress committed in Kafka does not match the spool (spool "
                        "replaced, its unsynced tail lost, or another collector uses this "
                        "transactional id); nothing is skipped: duplicates possible",
                        transactional_id=self.transactional_id,
                        committed_seq=progress.seq,
                        spool_record_found=record is not None,
                    )
        self._skip_upto = skip
        self._settle_upto(skip, count_skipped=True)

    def _settle_upto(self, seq: int, *, count_skipped: bool = False) -> list[Record]:
        """Settle pending records and copies up to ``seq``; returns the pending ones."""
        done = [r for s, r in self._pending if s <= seq]
        if done:
            self._pending = [(s, r) for s, r in self._pending if s > seq]
            if count_skipped:
                self._skipped += len(done)
        copies = [r for s, r in self._shadow if s <= seq]
        if copies:
            self._shadow = [(s, r) for s, r in self._shadow if s > seq]
        if done or copies:
            self._spool.on_settled(done + copies)
        return done

    async def _transaction(
        self, batches: trio.abc.ReceiveChannel[list[Record]], ended: bool
    ) -> bool:
        """One transaction over the pending records and what arrives within the interval.
        Returns whether the input has ended. Raises :class:`_Retry` on a failure."""
        self._verify()
        pending = self._pending
        if not pending:
            return ended
        producer = self._producer
        step = self.settings.max_records_per_send
        deadline = trio.current_time() + self.settings.transaction_interval_ms / 1000
        chunks: list[Chunk] = []
        sent = 0
        self._in_txn_since = time.monotonic()
        try:
            with trio.fail_after(start_within_s(self._timeout_s)):  # it may wait for an id
                await aio_as_trio(producer.begin_transaction)()
            while True:
                pending = self._pending
                while sent < len(pending):
                    part = pending[sent : sent + step]
                    chunk = Chunk([r for _, r in part], time.monotonic())
                    chunks.append(chunk)
                    await aio_as_trio(hand_over)(producer, self._router, chunk)
                    self._sent += chunk.handed
                    if chunk.error is not None:
                        self._refuse(chunk, sent)
                    sent += len(part)
                if ended or len(pending) >= self._cap or trio.current_time() >= deadline:
                    break
                with trio.move_on_at(deadline):
                    try:
                        self._take(await batches.receive())
                    except trio.EndOfChannel:
                        ended = True
                        continue
                    if isinstance(batches, trio.MemoryReceiveChannel):
                        while len(self._pending) < self._cap:
                            try:
                                self._take(batches.receive_nowait())
                            except trio.WouldBlock:
                                break
                            except trio.EndOfChannel:
                                ended = True
                                break
            last_seq, last = self._pending[-1]
            value = encode_progress(Progress(last_seq, fingerprint(last)))
            with trio.fail_after(start_within_s(self._timeout_s)):
                await aio_as_trio(self._finish)(chunks, value)
        except (_Retry, trio.Cancelled):
            _forget(chunks)
            raise
        except trio.TooSlowError as exc:
            _forget(chunks)
            self._note(exc)
            raise _Retry() from exc
        except Exception as exc:
            _forget(chunks)
            if self._was_fenced(exc):
                raise self._fenced(exc) from exc
            self._note(exc)
            if classify(exc, at_send=False) is Failure.FATAL and not _transactional(exc):
                raise KafkaDeliveryError(
                    f"Kafka refused the transaction: {exc!r}; not retryable - check ACLs "
                    "(transactional id, topics, the progress topic) and broker limits"
                ) from exc
            raise _Retry() from exc
        finally:
            self._in_txn_since = None
        self._commits += 1
        self._doubted = False
        self._skip_upto = max(self._skip_upto, last_seq)
        self._progress = Progress(last_seq, fingerprint(last))
        self._count(chunks)
        self._settle_upto(last_seq)
        return ended

    async def _finish(self, chunks: list[Chunk], value: bytes) -> None:
        """(asyncio side) The progress record, every ack, the commit."""
        producer = self._producer
        key, topic = self.transactional_id.encode(), self.settings.progress_topic
        # The partition read_progress() reads: the default partitioner's choice, stated.
        partitions = sorted(await producer.partitions_for(topic))
        partition = partitions[partition_for(key, len(partitions))]
        marker = await producer.send(topic, value=value, key=key, partition=partition)
        futures = [fut for chunk in chunks for fut, _, _ in chunk.batches]
        futures.append(marker)
        await asyncio.wait(futures)  # aiokafka expires a batch after request_timeout_ms
        errors = [ProducerFenced() if fut.cancelled() else fut.exception() for fut in futures]
        first = next((exc for exc in errors if exc is not None), None)  # all retrieved
        if first is not None:
            raise first
        await producer.commit_transaction()

    def _refuse(self, chunk: Chunk, offset: int) -> NoReturn:
        """A record refused at hand-over: one too large is dropped loudly (settled); the
        transaction is given up either way (raises :class:`_Retry`)."""
        exc = chunk.error
        assert exc is not None
        at = chunk.error_at if chunk.at_send and isinstance(exc, POISON) else None
        self._note(exc, doubt=at is None)  # a record too large says nothing of Kafka
        if at is not None:
            seq, record = self._pending.pop(offset + at)
            self._rejected += 1
            RECORDS_REJECTED.inc()
            log.error("kafka rejects a record; dropped", topic=record.topic, key=record.key,
                      bytes=len(record.value), seq=seq, error=repr(exc))  # fmt: skip
            self._spool.on_settled([record])
        raise _Retry() from exc

    def _count(self, chunks: list[Chunk]) -> None:
        now_ns = time.time_ns()
        by_topic: dict[str, list[int]] = {}
        for chunk in chunks:
            for _, topic, indices in chunk.batches:
                by_topic.setdefault(topic, []).extend(chunk.records[i].received_ns for i in indices)
        for topic, times in by_topic.items():
            observe_latencies(now_ns, times, topic)
            acked_counter(topic).inc(len(times))
            self._by_topic[topic] = self._by_topic.get(topic, 0) + len(times)
            self._acked += len(times)

    def _note(self, exc: BaseException, *, doubt: bool = True) -> None:
        self._failures += 1
        failure_counter(type(exc).__name__).inc()
        self._last_error, self._last_error_at = repr(exc), time.time()
        self._doubted = self._doubted or doubt

    def _was_fenced(self, exc: BaseException) -> bool:
        """Fenced, however aiokafka said it: once its sender task died of ProducerFenced
        (e.g. in AddPartitionsToTxn), sends fail with IllegalOperation instead."""
        if isinstance(exc, ProducerFenced) or isinstance(exc.__cause__, ProducerFenced):
            return True
        sender = getattr(self._producer, "_sender", None)  # private (aiokafka 0.14)
        task = getattr(sender, "sender_task", None)
        if task is None or not task.done() or task.cancelled():
            return False
        return isinstance(task.exception(), ProducerFenced)

    def _fenced(self, exc: BaseException) -> ProducerFencedError:
        self._note(exc)
        log.error("kafka producer fenced: another collector started with the same "
                  "transactional id; stopping", transactional_id=self.transactional_id)  # fmt: skip
        return ProducerFencedError(
            f"fenced: another producer with transactional id {self.transactional_id!r} "
            "started (this one is a zombie); give every collector its own "
            "kafka.transactional_id"
        )

    # -- the producer -----------------------------------------------------------------

    async def _resync(self, backoff: Backoff) -> None:
        """A new producer (fences older ones, decides their open transaction), then the
        committed progress; retried with backoff while Kafka is unreachable."""
        if not self.transactional_id:
            spool_id = await trio.to_thread.run_sync(self._spool.identity)
            self.transactional_id = transactional_id(self.settings, spool_id)
        while True:
            await self._stop_producer(self._timeout_s)
            try:
                if not self._topic_ready:
                    with trio.fail_after(start_within_s(self._timeout_s)):
                        await aio_as_trio(ensure_progress_topic)(self.settings)
                    self._topic_ready = True
                self._producer = await start_client(self._new_producer, self._timeout_s)
                with trio.fail_after(start_within_s(self._timeout_s)):
                    await aio_as_trio(self._wait_for_pid)()
                    progress = await aio_as_trio(read_progress)(
                        self.settings, self.transactional_id, self._timeout_s
                    )
                break
            except ProducerFenced as exc:
                raise self._fenced(exc) from exc
            except Exception as exc:
                if (
                    not isinstance(exc, (trio.TooSlowError, TimeoutError))
                    and classify(exc, at_send=False) is not Failure.RETRY
                    and not _transactional(exc)
                ):
                    raise KafkaDeliveryError(
                        f"cannot start the transactional Kafka producer ({exc!r}); check "
                        "kafka.security_protocol, SASL settings and ACLs (transactional id)"
                    ) from exc
                self._note(exc, doubt=False)  # not started: not connected already
                delay = backoff.next_delay()
                if (n := self._failure_log.ready()) is not None:
                    log.warning("kafka not reachable; retrying", error=repr(exc),
                                retry_in_s=round(delay, 2), suppressed=n)  # fmt: skip
                await trio.sleep(delay)
        self._started = True  # a doubt stays until a commit: reachable is not delivering
        self._starts += 1
        self._progress, self._verified = progress, False
        log.info("kafka transactional producer started", transactional_id=self.transactional_id,
                 committed_seq=progress.seq if progress else None)  # fmt: skip

    def _new_producer(self) -> Any:  # runs in asyncio
        return AIOKafkaProducer(**self._kwargs, transactional_id=self.transactional_id)

    async def _wait_for_pid(self) -> None:
        """(asyncio side) InitProducerId done: older producers of this id are fenced and
        their open transaction is decided. Private aiokafka API (0.14)."""
        sender_task = self._producer._sender.sender_task
        pid = asyncio.ensure_future(self._producer._txn_manager.wait_for_pid())
        done, _ = await asyncio.wait([pid, sender_task], return_when=asyncio.FIRST_COMPLETED)
        if pid not in done:
            pid.cancel()
            exc = sender_task.exception() if not sender_task.cancelled() else None
            raise exc or KafkaDeliveryError("the Kafka producer stopped before it had an id")

    async def _stop_producer(self, within_s: float) -> None:
        producer, self._producer, self._started = self._producer, None, False
        if producer is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(within_s + 1):
                await aio_as_trio(close_client)(producer, within_s)
            # A failed transaction's waiter (private, aiokafka 0.14): mark it retrieved,
            # no "exception was never retrieved" noise (the failure was handled).
            waiter = getattr(producer._txn_manager, "_transaction_waiter", None)
            if isinstance(waiter, asyncio.Future) and waiter.done() and not waiter.cancelled():
                waiter.exception()


def _forget(chunks: list[Chunk]) -> None:
    for chunk in chunks:
        for fut, _, _ in chunk.batches:
            fut.add_done_callback(retrieve)


def _transactional(exc: BaseException) -> bool:
    """Transaction-state errors a new producer clears (aborted, concurrent, ...)."""
    name = type(exc).__name__
    return name in {
        "ConcurrentTransactions",
        "InvalidTxnState",
        "IllegalStateError",
        "IllegalOperation",
        "CoordinatorNotAvailableError",
        "NotCoordinatorError",
        "CoordinatorLoadInProgressError",
        "OutOfOrderSequenceNumber",
    } or isinstance(exc, AssertionError)
