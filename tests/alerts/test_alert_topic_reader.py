"""The gateway's reader of the alerts topic, against a real broker.

Alerts are written as a detector on Kafka writes them (``alert_record``, in transactions),
spread over partitions so that detection order interleaves them. The reader must replay
the newest ``history`` alerts of all partitions in detection order before it reports
started, never show an aborted transaction's alerts, follow the topic, resume after a
restart without handing anything on twice, and pick up partitions added later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import trio
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from kit.wait import poll_until

from marketd.alerts.encoding import alert_record, outcome_record
from marketd.alerts.model import Alert, Direction, Outcome
from marketd.alerts.topic_reader import (
    AlertsTopicReader,
    detection_order,
    replay_start,
    serve_alerts_reader,
)
from marketd.config.settings import KafkaSettings, TopicSettings
from marketd.gateway import AlertHub
from marketd.testing.devkafka import KafkaBroker, create_topics

BASE_MS = 1_760_000_000_000


def alert(n: int, symbol: str = "BTCUSDT", direction: Direction = Direction.UP) -> Alert:
    at = BASE_MS + n * 1000
    return Alert(
        id=f"alert-{n}",
        symbol=symbol,
        market="usdm",
        rule="default",
        direction=direction,
        change_pct=2.5,
        price=f"{100 + n}.5",
        price_time_ms=at,
        base_price="100.0",
        base_time_ms=at - 30_000,
        detected_at_ms=at + 2,
    )


class Collect:
    """A listener keeping each batch as it was handed on."""

    def __init__(self) -> None:
        self.batches: list[list[Alert]] = []
        self.outcomes: list[Outcome] = []
        self.calls: list[str] = []

    def publish(self, alerts: list[Alert]) -> None:
        self.batches.append(list(alerts))
        self.calls.append("alerts")

    def publish_outcomes(self, outcomes: list[Outcome]) -> None:
        self.outcomes += outcomes
        self.calls.append("outcomes")

    def ids(self) -> list[str]:
        return [a.id for batch in self.batches for a in batch]


# One transaction: (commit?, [(partition, alert), ...]).
Transaction = tuple[bool, Sequence[tuple[int, Alert]]]


def produce(bootstrap: str, topic: str, transactions: Sequence[Transaction]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{topic}")
        await producer.start()
        try:
            for commit, alerts in transactions:
                await producer.begin_transaction()
                for partition, a in alerts:
                    r = alert_record(a, topic)
                    await producer.send(
                        topic, r.value, key=r.key, partition=partition, headers=list(r.headers)
                    )
                if commit:
                    await producer.commit_transaction()
                else:
                    await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(run())


def produce_outcomes(bootstrap: str, topic: str, outcomes: Sequence[Outcome]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for o in outcomes:
                r = outcome_record(o, topic)
                await producer.send_and_wait(topic, r.value, key=r.key, headers=list(r.headers))
        finally:
            await producer.stop()

    asyncio.run(run())


def produce_raw(bootstrap: str, topic: str, partition: int, value: bytes) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, partition=partition)
        finally:
            await producer.stop()

    asyncio.run(run())


def add_partitions(bootstrap: str, topic: str, total: int) -> None:
    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=total)})
        finally:
            await admin.close()

    asyncio.run(run())


def test_detection_order_and_replay_start() -> None:
    late, early, same_time = alert(5), alert(1), alert(1, symbol="ETHUSDT")
    assert [a.id for a in detection_order([late, same_time, early])] == [
        "alert-1",
        "alert-1",
        "alert-5",
    ]
    assert detection_order([late, early])[0] is early
    assert replay_start(0, 100, 10) == 20  # room for 3 outcomes each, and commit markers
    assert replay_start(70, 100, 50) == 70  # never before the beginning


@pytest.mark.kafka
async def test_replay_follow_restart_and_added_partitions(
    kafka_broker: KafkaBroker, kafka_topic
) -> None:
    bootstrap = kafka_broker.bootstrap
    topic = kafka_topic("alerts")
    await trio.to_thread.run_sync(create_topics, bootstrap, [topic], 2)
    # 30 alerts, alternating partitions, one per transaction; then 2 more in a transaction
    # that aborts (the newest of all: a reader that showed them would replay them).
    history: list[Transaction] = [(True, [(n % 2, alert(n))]) for n in range(30)]
    history.append((False, [(0, alert(90)), (1, alert(91))]))
    await trio.to_thread.run_sync(produce, bootstrap, topic, history)
    await trio.to_thread.run_sync(produce_raw, bootstrap, topic, 1, b"\xff\x01not an alert")
    # What happened after two of them, on the outcomes topic beside it.
    outcomes_topic = kafka_topic("outcomes")
    before = [Outcome("alert-25", "usdm", "BTCUSDT", 60, "101.5", 5, 1.5),
              Outcome("alert-29", "usdm", "BTCUSDT", 60, "99", 6, -1.0)]  # fmt: skip
    await trio.to_thread.run_sync(produce_outcomes, bootstrap, outcomes_topic, before)

    topics = TopicSettings(alerts=topic, outcomes=outcomes_topic)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topics=topics)
    collect = Collect()
    reader = AlertsTopicReader(kafka, [collect], history=10, check_interval_s=0.5)
    assert not reader.ready()
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_alerts_reader, reader)
            assert reader.ready()
            # The replay: one batch, the newest 10 of both partitions, oldest first.
            assert [[a.id for a in b] for b in collect.batches] == [
                [f"alert-{n}" for n in range(20, 30)]
            ]
            assert collect.batches[0][-1] == alert(29)  # decoded in full
            assert reader.statistics().malformed == 1
            # The outcomes read with the replay follow its alerts.
            assert collect.outcomes == before
            assert collect.calls == ["alerts", "outcomes"]

            # Live: a transaction over both partitions comes out in detection order.
            live: list[Transaction] = [(True, [(1, alert(31)), (0, alert(30))])]
            await trio.to_thread.run_sync(produce, bootstrap, topic, live)
            await poll_until(
                lambda: len(collect.ids()) >= 12, timeout=20, what="12 alerts handed on"
            )
            # Fetched together (the usual case) they are handed on in one batch, in
            # detection order; a loaded broker may answer the two partitions in two fetches.
            if len(collect.batches[-1]) == 2:
                assert collect.batches[-1] == [alert(30), alert(31)]
            assert sorted(collect.ids()[-2:]) == ["alert-30", "alert-31"]
            # A live outcome is handed on as it arrives.
            after = Outcome("alert-30", "usdm", "BTCUSDT", 300, "102.25", 9, 2.25)
            await trio.to_thread.run_sync(produce_outcomes, bootstrap, outcomes_topic, [after])
            await poll_until(lambda: len(collect.outcomes) == 3, timeout=20, what="an outcome")
            assert collect.outcomes[-1] == after
            nursery.cancel_scope.cancel()
        assert not reader.ready()

        # A restart resumes where the reader got to: only what is new is handed on.
        await trio.to_thread.run_sync(produce, bootstrap, topic, [(True, [(0, alert(32))])])
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_alerts_reader, reader)
            await poll_until(
                lambda: len(collect.ids()) >= 13, timeout=20, what="13 alerts handed on"
            )
            assert collect.batches[-1] == [alert(32)]

            # A partition added to the topic is read from its beginning.
            await trio.to_thread.run_sync(add_partitions, bootstrap, topic, 3)
            added = [(True, [(2, alert(33, symbol="SOLUSDT", direction=Direction.DOWN))])]
            await trio.to_thread.run_sync(produce, bootstrap, topic, added)
            await poll_until(
                lambda: len(collect.ids()) >= 14, timeout=20, what="14 alerts handed on"
            )
            assert collect.batches[-1] == [alert(33, symbol="SOLUSDT", direction=Direction.DOWN)]
            assert reader.statistics().partitions == 3
            await trio.sleep(1.5)  # a duplicate would arrive now
            nursery.cancel_scope.cancel()
    ids = collect.ids()
    assert ids == [f"alert-{n}" for n in range(20, 34)]
    assert "alert-90" not in ids
    # The replay reads back more than it hands on (up to 2 * history offsets a partition).
    assert reader.statistics().read >= 14


@pytest.mark.kafka
async def test_a_hub_fed_by_the_reader_replays_to_a_new_client(
    kafka_broker: KafkaBroker, kafka_topic
) -> None:
    """The replay reaches the hub before the reader reports started, newest first in the
    API's order and oldest first in a client's replay; the hub's history bound holds."""
    bootstrap = kafka_broker.bootstrap
    topic = kafka_topic("alerts")
    await trio.to_thread.run_sync(create_topics, bootstrap, [topic], 3)
    written: list[Transaction] = [(True, [(n % 3, alert(n)) for n in range(k, k + 4)])
                                  for k in range(0, 24, 4)]  # fmt: skip
    await trio.to_thread.run_sync(produce, bootstrap, topic, written)
    hub = AlertHub(history=5, replay=3)
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topics=TopicSettings(alerts=topic))
    reader = AlertsTopicReader(kafka, [hub], history=5)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_alerts_reader, reader)
            assert [a.id for a in hub.recent(10)] == [f"alert-{n}" for n in (23, 22, 21, 20, 19)]
            with hub.subscribe() as client:
                assert client.replay == [alert(21), alert(22), alert(23)]
            nursery.cancel_scope.cancel()
