"""The detector on Kafka: consume ``topics.raw``, produce ``topics.alerts``, exactly once.

Consume-transform-produce with a transactional aiokafka producer, hosted by trio-asyncio
(:mod:`marketd.kafka.hosting`):

* The consumer joins ``alerts.consumer_group`` (auto-commit off, ``read_committed``), so
  replicas share the raw topic's partitions, i.e. symbols (records are keyed by symbol).
* After each poll, one transaction holds the alerts of the polled records **and** the
  consumer offsets past them (``send_offsets_to_transaction``). Both commit, or neither:
  a crash before the commit aborts the alerts (``read_committed`` readers never see
  them) and the offsets stay, so the records are processed again.
* The producer's ``transactional_id`` is fixed per replica (``alerts.transactional_id``,
  default ``<consumer_group>.<host name>``): a restarted detector fences its previous
  incarnation and aborts its open transaction before consuming.
* **Detector state across a restart.** Each offset commit carries, as its metadata, the
  partition's last alert per (market, symbol, rule) that still matters (younger than the
  longest window or cooldown) with the raw offset that raised it. A (re)assigned
  partition is re-read from ``horizon + REPLAY_MARGIN_S`` before its committed offset (by
  record timestamp; the horizon is the longest window or cooldown, for a volume rule its
  window plus its baseline) up to that offset *without evaluating*: the ticks refill the
  windows of every rule kind, and the recorded alerts are re-applied on the very records
  that raised them (window reset, cooldown; :meth:`~marketd.alerts.detector.Detector.replay_tick`).
  The detector then continues in the state it had when the commit was made, so it raises
  exactly the alerts (same ids) an uninterrupted detector would have raised, each
  committed once. Outcomes still pending at the commit are not recovered.

Not covered: Kafka's KIP-447 zombie fencing by consumer-group generation (aiokafka sends
offsets by group id only), so two replicas that both believe they own a partition during
a rebalance may each publish its alerts; ids are stable, so consumers can deduplicate.
"""

from __future__ import annotations

import json
import socket
from collections import defaultdict
from typing import Any

import structlog
import trio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from marketd.alerts.encoding import alert_record, outcome_record
from marketd.alerts.model import Alert, Outcome
from marketd.alerts.service import DetectorError, DetectorService
from marketd.config.settings import KafkaSettings
from marketd.kafka.delivery import producer_kwargs
from marketd.kafka.hosting import aio_as_trio, client_kwargs, close_client, open_hosted

log = structlog.get_logger(__name__)

REPLAY_MARGIN_S = 60.0
MARGIN_MS = round(REPLAY_MARGIN_S * 1000)
MAX_METADATA_BYTES = 4000  # Kafka's offset.metadata.max.bytes default is 4096
POLL_TIMEOUT_MS = 500

# (market, symbol, rule, direction) -> (event time ms, raw offset) of the last alert (per
# direction: a liquidation rule's two sides have a window and a quiet period each)
AlertState = dict[tuple[str, str, str, str], tuple[int, int]]


def transactional_id(service: DetectorService) -> str:
    return service.settings.transactional_id or (
        f"{service.settings.consumer_group}.{socket.gethostname()}"
    )


def encode_metadata(state: AlertState, newest_ms: int, horizon_ms: int) -> str:
    """The still-relevant last alerts of one partition, compact JSON within Kafka's limit
    (the oldest are left out first if it would not fit, logged)."""
    edge = newest_ms - horizon_ms
    items = sorted(
        ((t, o, m, s, r, d) for (m, s, r, d), (t, o) in state.items() if t >= edge),
        reverse=True,
    )
    rows = [[m, s, r, d, t, o] for t, o, m, s, r, d in items]
    text = json.dumps({"v": 2, "a": rows}, separators=(",", ":"))
    while len(text) > MAX_METADATA_BYTES and rows:
        rows.pop()
        text = json.dumps({"v": 2, "a": rows}, separators=(",", ":"))
        log.warning("detector offset metadata full; oldest alert state left out")
    return text


def decode_metadata(text: str) -> AlertState:
    if not text:
        return {}
    try:
        data = json.loads(text)
        if data["v"] == 1:  # before directions were kept
            return {(m, s, r, ""): (int(t), int(o)) for m, s, r, t, o in data["a"]}
        return {(m, s, r, d): (int(t), int(o)) for m, s, r, d, t, o in data["a"]}
    except (ValueError, KeyError, TypeError):
        log.warning("unreadable detector offset metadata; state starts empty", metadata=text)
        return {}


class _Partitions(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes partition changes; the trio side acts on them between polls."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.revoked: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.revoked |= set(revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.assigned |= set(assigned)


class _KafkaDetector:
    def __init__(self, service: DetectorService, kafka: KafkaSettings, max_records: int) -> None:
        self.service = service
        self.kafka = kafka
        self.settings = service.settings
        self.group = service.settings.consumer_group
        self.raw_topic = kafka.topics.raw
        self.alerts_topic = kafka.topics.alerts
        self.outcomes_topic = kafka.topics.outcomes
        self.max_records = max_records
        self.partitions = _Partitions()
        self.replay_until: dict[TopicPartition, int] = {}
        self.seeded: dict[TopicPartition, dict[int, list[tuple[str, str, str]]]] = {}
        self.alert_state: dict[TopicPartition, AlertState] = defaultdict(dict)
        self.newest_ms: dict[TopicPartition, int] = defaultdict(int)
        self.instruments: dict[TopicPartition, set[tuple[str, str]]] = defaultdict(set)
        self.kinds = {k.encode() for k in self.settings.kinds}
        self.consumer: Any = None
        self.producer: Any = None
        self.outcomes: list[Outcome] = []  # found by the last _process, delivered after commit

    @property
    def horizon_ms(self) -> int:
        """How far back the ticks that make a rule's state reach: its window or cooldown,
        for a volume rule its window and baseline together (replayed after a restart)."""
        rules = self.service.detector.rules
        reach = (
            max(r.window_s + (r.baseline_s if r.kind == "volume" else 0.0), r.cooldown_s)
            for r in rules
        )
        return round(max(reach) * 1000)

    @property
    def alert_reach_ms(self) -> int:
        """How long an alert still matters: its rule's window (which it reset) or cooldown."""
        rules = self.service.detector.rules
        return round(max(max(r.window_s, r.cooldown_s) for r in rules) * 1000)

    # -- asyncio side ---------------------------------------------------------------------

    async def start(self) -> None:
        common = client_kwargs(self.kafka)
        producer = AIOKafkaProducer(
            **producer_kwargs(self.kafka), transactional_id=transactional_id(self.service)
        )
        consumer = AIOKafkaConsumer(
            **common,
            group_id=self.group,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset=self.settings.start_from,
            fetch_max_wait_ms=100,
        )
        self.producer, self.consumer = producer, consumer
        await producer.start()  # fences a previous incarnation, aborts its transaction
        consumer.subscribe([self.raw_topic], listener=self.partitions)
        await consumer.start()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - asyncio side
        for client in (self.consumer, self.producer):
            if client is not None:
                await close_client(client, timeout)

    async def transact(
        self, records: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]], offsets: Any
    ) -> None:
        async with self.producer.transaction():
            sent = [
                await self.producer.send(topic, value=value, key=key, headers=headers)
                for topic, key, value, headers in records
            ]
            await self.producer.send_offsets_to_transaction(offsets, self.group)
            # The commit would flush them anyway; awaiting each one too retrieves a failed
            # delivery's error, which then aborts the transaction here, instead of leaving
            # it on a future nobody reads ("exception was never retrieved").
            for delivery in sent:
                await delivery

    async def warm_up(self, tp: TopicPartition, unread: int | None) -> tuple[int, int, str]:
        """(replay from, committed offset, metadata); seeks ``tp`` to the first.
        ``unread``: the first offset of records polled but not processed, if any."""
        consumer = self.consumer
        committed = await consumer._coordinator.fetch_committed_offsets([tp])  # private API
        entry = committed.get(tp)
        if entry is None or entry.offset is None or entry.offset < 0:
            if unread is not None:  # no commit yet: go on from where the group started
                consumer.seek(tp, unread)
            return -1, -1, ""
        if entry.offset == 0:
            consumer.seek(tp, 0)
            return 0, 0, entry.metadata or ""
        offset, metadata = entry.offset, entry.metadata or ""
        consumer.seek(tp, offset - 1)
        got = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        start = offset
        if got.get(tp):
            since = got[tp][0].timestamp - self.horizon_ms - MARGIN_MS
            found = await consumer.offsets_for_times({tp: max(0, since)})
            if found.get(tp) is not None:
                start = min(found[tp].offset, offset)
        consumer.seek(tp, start)
        return start, offset, metadata

    # -- trio side ------------------------------------------------------------------------

    async def run(self) -> None:
        service = self.service
        service.new_detector()  # state is rebuilt from the topic
        while True:
            batch = await aio_as_trio(self.consumer.getmany)(
                timeout_ms=POLL_TIMEOUT_MS, max_records=self.max_records
            )
            if self.partitions.revoked:
                self._revoke()
            if self.partitions.assigned:
                # Records of a partition just assigned wait for its warm-up (re-read then).
                fresh = self.partitions.assigned
                unread = {tp: ms[0].offset for tp, ms in batch.items() if tp in fresh and ms}
                batch = {tp: ms for tp, ms in batch.items() if tp not in fresh}
                await self._assign(unread)
            service.sync_rules()
            alerts, records, offsets = self._process(batch)
            if offsets:
                await aio_as_trio(self.transact)(records, offsets)
                service.transactions += 1
                service.alerts_published += len(alerts)
            if alerts:
                service.deliver(alerts)
            if self.outcomes:
                service.deliver_outcomes(self.outcomes)
                self.outcomes = []

    def _process(
        self, batch: dict[TopicPartition, list[Any]]
    ) -> tuple[list[Alert], list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]], Any]:
        service = self.service
        detector = service.detector
        reader = service.reader
        kinds = self.kinds
        alerts: list[Alert] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, messages in batch.items():
            replay_until = self.replay_until.get(tp, -1)
            seeded = self.seeded.get(tp, {})
            state = self.alert_state[tp]
            instruments = self.instruments[tp]
            newest = self.newest_ms[tp]
            last_offset = -1
            for m in messages:
                last_offset = m.offset
                kind = next((v for k, v in m.headers if k == "type"), None)
                if kind is not None and kind not in kinds:
                    continue
                tick = reader.tick(m.value)
                if tick is None:
                    continue
                instruments.add((tick.market, tick.symbol))
                newest = max(newest, tick.time_ms)
                if m.offset < replay_until:
                    service.replayed += 1
                    fired = seeded.get(m.offset, ())
                    names = [r for (mk, sym, r) in fired if (mk, sym) == (tick.market, tick.symbol)]
                    detector.replay_tick(tick, names)
                    continue
                found = detector.observe_tick(tick)
                for alert in found:
                    alerts.append(alert)
                    state[(alert.market, alert.symbol, alert.rule, alert.direction.value)] = (
                        alert.price_time_ms,
                        m.offset,
                    )
            self.newest_ms[tp] = newest
            if last_offset >= replay_until and last_offset >= 0:
                metadata = encode_metadata(state, newest, self.alert_reach_ms + MARGIN_MS)
                offsets[tp] = OffsetAndMetadata(last_offset + 1, metadata)
            elif last_offset >= 0 and last_offset + 1 >= replay_until:
                self.replay_until.pop(tp, None)
                self.seeded.pop(tp, None)
        records = []
        outcomes = detector.take_outcomes()
        made = [alert_record(a, self.alerts_topic) for a in alerts]
        made += [outcome_record(o, self.outcomes_topic) for o in outcomes]
        for r in made:
            records.append((r.topic, r.key, r.value, list(r.headers)))
        self.outcomes = outcomes
        return alerts, records, offsets

    def _revoke(self) -> None:
        detector = self.service.detector
        for tp in self.partitions.revoked:
            for market, symbol in self.instruments.pop(tp, set()):
                detector.forget(market, symbol)
            for table in (self.replay_until, self.seeded, self.alert_state, self.newest_ms):
                table.pop(tp, None)
        self.partitions.revoked.clear()

    async def _assign(self, unread: dict[TopicPartition, int]) -> None:
        assigned, self.partitions.assigned = self.partitions.assigned, set()
        detector = self.service.detector
        for tp in sorted(assigned):
            start, committed, metadata = await aio_as_trio(self.warm_up)(tp, unread.get(tp))
            state = decode_metadata(metadata)
            self.alert_state[tp] = state
            self.replay_until[tp] = committed
            by_offset: dict[int, list[tuple[str, str, str]]] = defaultdict(list)
            for (market, symbol, rule, direction), (time_ms, offset) in state.items():
                detector.restore_alert(market, symbol, rule, time_ms, direction)
                by_offset[offset].append((market, symbol, rule))
            self.seeded[tp] = dict(by_offset)
            log.info("detector partition assigned", partition=tp.partition, replay_from=start,
                     committed=committed, alert_state=len(state))  # fmt: skip


async def serve_kafka_detector(
    service: DetectorService,
    kafka: KafkaSettings,
    *,
    max_records: int = 2000,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the detector on Kafka until cancelled (see the module doc); failures raise
    :class:`DetectorError` for the supervisor to restart it."""
    worker = _KafkaDetector(service, kafka, max_records)
    async with open_hosted(worker, kafka.request_timeout_ms / 1000, _as_detector_error):
        service.running = True
        try:
            task_status.started()
            await worker.run()
        finally:
            service.running = False


def _as_detector_error(exc: Exception) -> Exception:
    if isinstance(exc, DetectorError):
        return exc
    return DetectorError(
        f"detector on Kafka failed ({exc!r}); it restarts and rebuilds its state from the topic"
    )
