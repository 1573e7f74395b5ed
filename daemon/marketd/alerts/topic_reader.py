"""The alerts topic → alert listeners (the gateway's hub), for a process without a detector.

A gateway whose process has no detector role reads ``kafka.topics.alerts`` as the detector
publishes it (``marketd.v1.Alert``, :func:`marketd.alerts.encoding.decode_alert`), and
``kafka.topics.outcomes`` beside it (``marketd.v1.AlertOutcome``: what happened after each
alert, handed to the listeners that take outcomes after the alerts read with them), with
the same trio-asyncio hosting as the detector on Kafka (:mod:`marketd.kafka.hosting`):

* **Every replica reads every partition.** Partitions are assigned by hand, with no
  consumer group: each browser-facing replica must see every alert. The reader uses
  ``isolation_level=read_committed``: a detector on Kafka writes alerts in transactions,
  and an aborted one (a detector killed mid-transaction) is never shown.
* **Replay on start.** On its first start the reader goes back, per partition, far enough
  for the last ``history`` alerts (``2 * history`` offsets: every transaction's commit
  marker takes an offset too), reads up to the end, and hands the newest ``history`` of
  them, in detection order, to the listeners in one batch *before* it reports started: a
  browser connecting to a ready gateway gets its replay at once.
* **Then it follows the topic**; each poll's alerts go out in detection order (one
  symbol's alerts are in order anyway: records are keyed by symbol). Every
  ``CHECK_INTERVAL_S`` it refreshes the topic's metadata: that is its connection check
  (``/readyz``), and a partition added meanwhile is read from its beginning.
* **A restart** (the supervisor's, after an error) resumes each partition where the reader
  got to, so nothing is handed on twice; the hub drops ids it already holds anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
import structlog
import trio
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from google.protobuf.message import DecodeError
from prometheus_client.core import Metric

from marketd.alerts.encoding import decode_alert, decode_outcome
from marketd.alerts.model import Alert, AlertListener, Outcome, OutcomeListener
from marketd.config.settings import KafkaSettings
from marketd.errors import RetryableError
from marketd.kafka.hosting import aio_as_trio, client_kwargs, close_client, open_hosted
from marketd.obs.logs import RateLimitedLog
from marketd.obs.metrics import counter, gauge

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 5.0
POLL_TIMEOUT_MS = 500
CATCH_UP_POLL_MS = 200
MAX_RECORDS = 1000


class AlertsReaderError(RetryableError):
    """Reading the alerts topic failed; the supervisor restarts the reader, which resumes
    where it got to."""


def detection_order(alerts: Iterable[Alert]) -> list[Alert]:
    """Oldest first by detection time; event time and id make the order total."""
    return sorted(alerts, key=lambda a: (a.detected_at_ms, a.price_time_ms, a.id))


def replay_start(beginning: int, end: int, wanted: int) -> int:
    """The offset to read a partition from to find its last ``wanted`` alerts: each alert
    may be followed by three outcome records, and transaction markers take offsets too
    (one per transaction, at most one per record)."""
    return max(beginning, end - 8 * wanted)


@attrs.frozen
class ReaderStatistics:
    running: bool
    connected: bool  # the last metadata refresh was answered
    partitions: int
    read: int  # alerts read from the topic (the replay included)
    malformed: int  # records that are not a marketd.v1.Alert


class AlertsTopicReader:
    """Owns the listeners, the positions and the counters across restarts of the reader."""

    def __init__(
        self,
        kafka: KafkaSettings,
        listeners: Sequence[AlertListener],
        *,
        history: int,
        check_interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        if history < 1 or check_interval_s <= 0:
            raise ValueError("history >= 1 and check_interval_s > 0 are required")
        self.kafka = kafka
        self.check_interval_s = check_interval_s
        self.topic = kafka.topics.alerts
        # The alerts, then what happened after them (read the same way, beside them).
        self.outcomes_topic = kafka.topics.outcomes
        self.topics = (kafka.topics.alerts, kafka.topics.outcomes)
        self.listeners = list(listeners)
        self.history = history
        # (topic, partition) → the next offset to read; known once the replay was read.
        self.positions: dict[tuple[str, int], int] = {}
        self.replayed = False
        self.running = False
        self.connected = False
        self.partitions = 0
        self.read = 0
        self.malformed = 0
        self.outcomes: list[Outcome] = []

    def ready(self) -> bool:
        return self.running and self.connected

    def decode(self, messages: Iterable[Any]) -> list[Alert]:
        """The alerts of consumer records; the outcomes (records of the outcomes topic)
        wait in ``outcomes`` for :meth:`deliver`."""
        alerts = []
        for message in messages:
            try:
                if message.topic == self.outcomes_topic:
                    self.outcomes.append(decode_outcome(message.value))
                else:
                    alerts.append(decode_alert(message.value))
            except (DecodeError, KeyError, ValueError):  # KeyError: an unknown enum value
                self.malformed += 1
        self.read += len(alerts)
        return alerts

    def deliver(self, alerts: list[Alert], *, preload: bool = False) -> None:
        """Alerts, then the outcomes read with them (an outcome follows its alert)."""
        outcomes, self.outcomes = self.outcomes, []
        for listener in self.listeners:
            if alerts:
                if preload and (load := getattr(listener, "preload", None)) is not None:
                    load(alerts)
                else:
                    listener.publish(alerts)
            if outcomes and isinstance(listener, OutcomeListener):
                listener.publish_outcomes(outcomes)

    def statistics(self) -> ReaderStatistics:
        return ReaderStatistics(
            running=self.running,
            connected=self.connected,
            partitions=self.partitions,
            read=self.read,
            malformed=self.malformed,
        )

    def metrics(self) -> Iterable[Metric]:
        st = self.statistics()
        yield gauge(
            "marketd_gateway_kafka_connected",
            "1 when the gateway's reader of the alerts topic is up and Kafka answers.",
            (),
            {(): float(st.running and st.connected)},
        )
        yield counter(
            "marketd_gateway_alerts_read_total",
            "Alerts read from the alerts topic by the gateway (the start-up replay included).",
            (),
            {(): st.read},
        )
        yield counter(
            "marketd_gateway_alerts_malformed_total",
            "Records on the alerts topic that are not a marketd.v1.Alert (skipped).",
            (),
            {(): st.malformed},
        )


class _Reader:
    """One run of the reader: an aiokafka consumer on the asyncio side, the loop on trio's."""

    def __init__(self, owner: AlertsTopicReader) -> None:
        self.owner = owner
        self.topic = owner.topic
        self.topics = owner.topics
        self.consumer: Any = None
        self.assigned: set[TopicPartition] = set()
        self.unreachable = RateLimitedLog(interval=60.0)

    # -- asyncio side ---------------------------------------------------------------------

    async def start(self) -> None:
        self.consumer = AIOKafkaConsumer(
            **client_kwargs(self.owner.kafka),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        await self.consumer.start()
        # Metadata is then refreshed for these topics only (aiokafka's client, no public API).
        for topic in self.topics:
            await self.consumer._client.add_topic(topic)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - asyncio side
        if self.consumer is not None:
            await close_client(self.consumer, timeout)

    async def partitions(self) -> set[TopicPartition] | None:
        """The topics' partitions from fresh metadata; None when no broker answered."""
        if not await self.consumer._client.force_metadata_update():
            return None
        return {
            TopicPartition(topic, p)
            for topic in self.topics
            for p in self.consumer.partitions_for_topic(topic) or ()
        }

    async def assign(
        self, partitions: set[TopicPartition], replay: bool
    ) -> dict[TopicPartition, int]:
        """Read ``partitions`` from where the reader got to; one it has not read yet from its
        replay start (``replay``: the first start) or its beginning (a partition added
        later). Returns their end offsets."""
        consumer, positions = self.consumer, self.owner.positions
        tps = sorted(partitions)
        consumer.assign(tps)
        beginnings = await consumer.beginning_offsets(tps)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        for tp in tps:
            if (tp.topic, tp.partition) in positions:
                consumer.seek(tp, max(beginnings[tp], positions[(tp.topic, tp.partition)]))
            elif replay:
                consumer.seek(tp, replay_start(beginnings[tp], ends[tp], self.owner.history))
            else:
                consumer.seek(tp, beginnings[tp])
        return ends

    # -- trio side ------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None]) -> None:
        owner = self.owner
        partitions = await aio_as_trio(self.partitions)()
        if partitions is None:
            raise AlertsReaderError(f"no Kafka broker answered for topic {self.topic!r}")
        replay = not owner.replayed
        alerts = await self._follow(partitions, replay=replay)
        owner.replayed = True
        ordered = detection_order(alerts)
        if replay:  # alerts from before this process: history only, not pushed live
            owner.deliver(ordered[-owner.history :], preload=True)
        else:
            owner.deliver(ordered)
        log.info("reading the alerts topic", topic=self.topic, partitions=len(self.assigned),
                 replayed=min(len(alerts), owner.history) if replay else 0)  # fmt: skip
        owner.connected = owner.running = True
        task_status.started()
        next_check = trio.current_time() + owner.check_interval_s
        while True:
            if self.assigned:
                batch = await aio_as_trio(self.consumer.getmany)(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_RECORDS
                )
                owner.deliver(detection_order(self._take(batch)))
            else:  # the topic does not exist (yet)
                await trio.sleep(POLL_TIMEOUT_MS / 1000)
            if trio.current_time() >= next_check:
                next_check = trio.current_time() + owner.check_interval_s
                await self._check()

    async def _follow(self, partitions: set[TopicPartition], *, replay: bool) -> list[Alert]:
        """Assign ``partitions`` and read each up to its end offset now (bounded in time);
        return the alerts read."""
        self.assigned = partitions
        self.owner.partitions = sum(tp.topic == self.topic for tp in partitions)
        if not partitions:
            return []
        ends = await aio_as_trio(self.assign)(partitions, replay)
        alerts: list[Alert] = []
        deadline = trio.current_time() + 2 * self.owner.kafka.request_timeout_ms / 1000 + 5
        pending = await self._behind(ends, set(ends))
        while pending and trio.current_time() < deadline:
            batch = await aio_as_trio(self.consumer.getmany)(
                *pending, timeout_ms=CATCH_UP_POLL_MS, max_records=MAX_RECORDS
            )
            alerts += self._take(batch)
            pending = await self._behind(ends, pending)
        if pending:
            late = sorted(f"{tp.topic}:{tp.partition}" for tp in pending)
            log.warning("alerts topic not read to its end in time; following it from here",
                        partitions=late)  # fmt: skip
        for tp in partitions:
            where = await aio_as_trio(self.consumer.position)(tp)
            self.owner.positions[(tp.topic, tp.partition)] = where
        return alerts

    async def _behind(
        self, ends: dict[TopicPartition, int], partitions: set[TopicPartition]
    ) -> set[TopicPartition]:
        position = aio_as_trio(self.consumer.position)
        return {tp for tp in partitions if await position(tp) < ends[tp]}

    def _take(self, batch: dict[TopicPartition, list[Any]]) -> list[Alert]:
        alerts = []
        for tp, messages in batch.items():
            if messages:
                alerts += self.owner.decode(messages)
                self.owner.positions[(tp.topic, tp.partition)] = messages[-1].offset + 1
        return alerts

    async def _check(self) -> None:
        """Refresh the topic's metadata: Kafka answers (readiness), partitions added."""
        owner = self.owner
        partitions = None
        with trio.move_on_after(owner.kafka.request_timeout_ms / 1000):
            partitions = await aio_as_trio(self.partitions)()
        owner.connected = partitions is not None
        if partitions is None:
            if self.unreachable.ready() is not None:
                log.warning("Kafka does not answer the alerts reader", topic=self.topic)
            return
        added = partitions - self.assigned
        if added:
            log.info("alerts topic partitions added", topic=self.topic,
                     partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in added))  # fmt: skip
            owner.deliver(detection_order(await self._follow(partitions, replay=False)))


async def serve_alerts_reader(
    reader: AlertsTopicReader, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Feed ``reader``'s listeners from the alerts topic until cancelled (see the module
    doc); ``started()`` once the replay is delivered. Failures raise
    :class:`AlertsReaderError` for the supervisor to restart it."""
    worker = _Reader(reader)
    async with open_hosted(worker, reader.kafka.request_timeout_ms / 1000, _as_reader_error):
        try:
            await worker.run(task_status)
        finally:
            reader.running = reader.connected = False


def _as_reader_error(exc: Exception) -> Exception:
    if isinstance(exc, AlertsReaderError):
        return exc
    return AlertsReaderError(
        f"reading the alerts topic failed ({exc!r}); the reader restarts where it got to"
    )
