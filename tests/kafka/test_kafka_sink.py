"""The Kafka publisher against a real broker: content, order, throughput, outages."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import pytest
import trio
from kit.outage import ConnectionWatch
from kit.wait import poll_until

from marketd.config.settings import BackoffSettings, KafkaSettings, TopicSettings
from marketd.data.records import Market, Record
from marketd.kafka.partition import partition_for
from marketd.kafka.sink import KafkaDeliveryError, KafkaPublisher
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker, create_topics

pytestmark = pytest.mark.kafka

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT")


def settings_for(bootstrap: str, **overrides: object) -> KafkaSettings:
    values: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": 5000,
        "retry": BackoffSettings(initial_s=0.05, max_s=1.0),
    }
    values.update(overrides)
    return KafkaSettings(**values)  # type: ignore[arg-type]


def make_record(topic: str, symbol: str, seq: int, pad: int = 0) -> Record:
    value = f"{symbol}:{seq}:".encode() + b"x" * pad
    return Record(
        topic=topic,
        key=symbol.encode(),
        value=value,
        headers=(("type", b"trade"),),
        received_ns=time.time_ns(),
        market=Market.SPOT,
        kind="trade",
        symbol=symbol,
        seq=seq,
    )


class Source:
    """Records numbered per (topic, symbol) so order and completeness can be checked."""

    def __init__(self, topics: Sequence[str], pad: int = 0) -> None:
        self.topics, self.pad = topics, pad
        self.next_seq: dict[tuple[str, str], int] = defaultdict(int)
        self.count = 0

    def batch(self, size: int) -> list[Record]:
        out = []
        for _ in range(size):
            topic = self.topics[self.count % len(self.topics)]
            symbol = SYMBOLS[(self.count // len(self.topics)) % len(SYMBOLS)]
            seq = self.next_seq[topic, symbol]
            self.next_seq[topic, symbol] = seq + 1
            out.append(make_record(topic, symbol, seq, self.pad))
            self.count += 1
        return out


def check_delivery(source: Source, consumed: list[ConsumedRecord]) -> int:
    """Every record exactly as sent, per-key order kept; returns the duplicate count."""
    seen: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in consumed:
        assert r.key is not None
        assert r.value is not None
        symbol, seq, _pad = r.value.decode().split(":")
        assert r.key == symbol.encode()
        assert r.headers == (("type", b"trade"),)
        assert r.value == f"{symbol}:{seq}:".encode() + b"x" * source.pad
        seen[r.topic, symbol].append(int(seq))
    duplicates = 0
    assert set(seen) == set(source.next_seq)
    for stream, seqs in seen.items():
        expected = list(range(source.next_seq[stream]))
        # Order kept: the first occurrences appear in sequence; nothing is missing.
        firsts = list(dict.fromkeys(seqs))
        assert firsts == expected, f"{stream}: order broken or records missing"
        # A re-sent record may only repeat a suffix already seen (a lost ack).
        duplicates += len(seqs) - len(expected)
    return duplicates


def until_all(source: Source) -> Callable[[list[ConsumedRecord]], bool]:
    return lambda records: len(records) >= source.count


async def test_round_trip_exact_values_order_no_duplicates(
    kafka_broker, kafka_topic, consume_kafka
):
    topics = [kafka_topic("raw"), kafka_topic("depth")]
    source = Source(topics)
    publisher = KafkaPublisher(settings_for(kafka_broker.bootstrap, max_records_per_send=100))
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            async with send:
                for size in (1, 7, 250, 1000, 3, 500, 239):
                    await send.send(source.batch(size))
        # serve() returned: input ended, everything acknowledged.
        consumed = await consume_kafka(topics, until=until_all(source))
    assert check_delivery(source, consumed) == 0
    st = publisher.statistics()
    assert st.acknowledged == st.sent == source.count == 2000
    assert st.failed_attempts == st.retried == st.in_flight == st.pending_retry == 0
    assert st.acknowledged_by_topic == {topics[0]: 1000, topics[1]: 1000}


async def test_throughput_smoke(kafka_broker, kafka_topic):
    topics = [kafka_topic("raw"), kafka_topic("depth")]
    source = Source(topics, pad=130)  # ~150 B values
    n_batches, size = 200, 500
    batches = [source.batch(size) for _ in range(n_batches)]
    publisher = KafkaPublisher(settings_for(kafka_broker.bootstrap))
    send, recv = trio.open_memory_channel[list[Record]](16)
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            start = trio.current_time()
            async with send:
                for batch in batches:
                    await send.send(batch)
        elapsed = trio.current_time() - start
    st = publisher.statistics()
    assert st.acknowledged == source.count
    print(
        f"\npublished {source.count} records of ~150 B in {elapsed:.2f} s: "
        f"{source.count / elapsed:,.0f} records/s (acked, acks=all, idempotent)"
    )


async def test_same_key_same_partition_and_order_across_chunks(
    kafka_broker, kafka_topic, consume_kafka
):
    topics = [kafka_topic("raw"), kafka_topic("depth")]
    await trio.to_thread.run_sync(create_topics, kafka_broker.bootstrap, topics, 5)
    source = Source(topics, pad=100)
    # Small chunks and small batches: many batches per partition per chunk, all pipelined.
    settings = settings_for(
        kafka_broker.bootstrap, max_records_per_send=50, max_batch_bytes=2000, linger_ms=1
    )
    publisher = KafkaPublisher(settings)
    send, recv = trio.open_memory_channel[list[Record]](8)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            async with send:
                for size in [1, 49, 50, 51, 333, 7, 1000] * 3:
                    await send.send(source.batch(size))
        consumed = await consume_kafka(topics, until=until_all(source))
    assert check_delivery(source, consumed) == 0  # every record, per-key order, no dupes
    placed: dict[tuple[str, bytes], set[int]] = defaultdict(set)
    for r in consumed:
        assert r.key is not None
        placed[r.topic, r.key].add(r.partition)
    assert len(placed) == len(topics) * 7
    for (_topic, key), partitions in placed.items():
        assert partitions == {partition_for(key, 5)}, key
    assert len({p for ps in placed.values() for p in ps}) > 1  # keys do spread
    st = publisher.statistics()
    assert st.acknowledged == st.sent == source.count
    assert st.failed_attempts == st.in_flight == st.pending_retry == 0


async def run_with_broker_outage(
    broker: KafkaBroker, topics: list[str], crash: bool
) -> tuple[Source, KafkaPublisher]:
    """Publish ~200 records/s for ~1.5 s, stop the broker for ~3 s, restart it on the
    same port and data, publish ~1.5 s more, end input."""
    source = Source(topics)
    publisher = KafkaPublisher(settings_for(broker.bootstrap, request_timeout_ms=3000))
    send, recv = trio.open_memory_channel[list[Record]](8)

    async def feed() -> None:
        async with send:
            for _ in range(100):
                await send.send(source.batch(20))
                await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.serve, recv)
        nursery.start_soon(feed)
        await trio.sleep(1.5)
        await trio.to_thread.run_sync(broker.kill if crash else broker.stop)
        await trio.sleep(3)
        await trio.to_thread.run_sync(broker.start)
    return source, publisher


@pytest.mark.slow
@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
async def test_broker_restart_mid_stream_loses_nothing(
    own_kafka_broker, kafka_topic, consume_kafka, crash
):
    broker = own_kafka_broker
    await trio.to_thread.run_sync(broker.start)
    topics = [kafka_topic("raw"), kafka_topic("depth")]
    with trio.fail_after(120):
        source, publisher = await run_with_broker_outage(broker, topics, crash)
        consumed = await consume_kafka(topics, until=until_all(source), bootstrap=broker.bootstrap)
    duplicates = check_delivery(source, consumed)  # nothing lost, per-key order kept
    st = publisher.statistics()
    print(f"\n{source.count} records, {duplicates} duplicates, {st}")
    assert st.acknowledged >= source.count
    # docs/DELIVERY.md: at least once. A batch the broker wrote but whose ack died with the
    # connection is resent by a new producer, so repeats are possible (seen in about one
    # run in four on two busy cores), bounded by what was in flight. Exactly once is the
    # transactional producer's job (issue 15).
    settings = publisher.settings
    assert duplicates <= settings.max_inflight_batches * settings.max_records_per_send


async def test_never_connected_while_every_attempt_fails(kafka_broker):
    """Records whose topic never resolves (here an illegal name; in production a topic
    that does not exist or is denied): every attempt fails at send time and is retried.
    Between the first failure and the next acknowledgement the publisher never says it
    is connected - not even while a resend waits for metadata (/readyz flapped to ready
    on every retry)."""
    publisher = KafkaPublisher(settings_for(kafka_broker.bootstrap, request_timeout_ms=1000))
    watch = ConnectionWatch(publisher)
    send, recv = trio.open_memory_channel[list[Record]](8)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            nursery.start_soon(watch.watch)
            await send.send([make_record("no such topic!", "BTCUSDT", 0)])
            await poll_until(
                lambda: publisher.statistics().retried >= 3,
                timeout=40,
                what="three resends of the unresolvable record",
            )
            watch.stop()
            nursery.cancel_scope.cancel()
    st = publisher.statistics()
    assert (st.acknowledged, st.pending_retry) == (0, 1), st
    assert len(watch.samples) > 20, watch.samples
    assert watch.claimed_connected == 0, f"{watch.claimed_connected}/{len(watch.samples)}"


async def test_end_of_input_flushes_lingering_records(kafka_broker, kafka_topic, consume_kafka):
    topic = kafka_topic()
    source = Source([topic])
    # A long linger: without the flush on end of input these would sit in the producer.
    settings = settings_for(kafka_broker.bootstrap, linger_ms=3000)
    send, recv = trio.open_memory_channel[list[Record]](4)
    publisher = KafkaPublisher(settings)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            async with send:
                await send.send(source.batch(10))
        assert publisher.statistics().acknowledged == 10
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0


async def test_cancel_flushes_in_flight_records(kafka_broker, kafka_topic, consume_kafka):
    topic = kafka_topic()
    source = Source([topic])
    publisher = KafkaPublisher(settings_for(kafka_broker.bootstrap, linger_ms=2000))
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(30):
        await trio.to_thread.run_sync(create_topics, kafka_broker.bootstrap, [topic])
        async with send, trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            await send.send(source.batch(50))
            # Handed to the producer, lingering (the topic exists: no metadata wait).
            await poll_until(
                lambda: publisher.statistics().in_flight == 50,
                timeout=20,
                what="50 records in flight",
            )
            assert publisher.statistics().acknowledged == 0
            nursery.cancel_scope.cancel()
        st = publisher.statistics()
        assert (st.acknowledged, st.in_flight, st.pending_retry) == (50, 0, 0)
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0


@pytest.mark.slow
async def test_starts_when_the_broker_appears(own_kafka_broker, kafka_topic, consume_kafka):
    broker = own_kafka_broker  # created, not running
    topic = kafka_topic()
    source = Source([topic])
    publisher = KafkaPublisher(settings_for(broker.bootstrap))
    send, recv = trio.open_memory_channel[list[Record]](4)
    started = trio.Event()

    async def serve() -> None:
        await nursery.start(publisher.serve, recv)
        started.set()

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await trio.sleep(2)
            # It has been trying: waited for (an attempt may take longer than 2 s on a
            # loaded machine), and meanwhile it has not claimed to be started.
            await poll_until(
                lambda: publisher.statistics().last_error is not None,
                timeout=60,
                what="a failed attempt to reach the broker",
            )
            assert not started.is_set()
            assert not publisher.statistics().connected
            await trio.to_thread.run_sync(broker.start)
            await started.wait()
            assert publisher.statistics().connected
            async with send:
                await send.send(source.batch(100))
        consumed = await consume_kafka([topic], until=until_all(source), bootstrap=broker.bootstrap)
    assert check_delivery(source, consumed) == 0


async def test_oversized_record_is_surfaced_and_the_rest_kept(
    kafka_broker, kafka_topic, consume_kafka
):
    topic = kafka_topic()
    source = Source([topic])
    first, later = source.batch(30), source.batch(30)
    huge = make_record(topic, "HUGE", 0, pad=2_000_000)  # over the 1 MiB request limit
    publisher = KafkaPublisher(settings_for(kafka_broker.bootstrap))
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(60):
        async with send:
            await send.send(first)
            await send.send([huge, *later])
        with pytest.raises(KafkaDeliveryError, match="exceeds"):
            await publisher.serve(recv)
        st = publisher.statistics()
        assert st.rejected == 1
        assert st.pending_retry == 30  # `later` is kept, in order, for the next serve()
        send2, recv2 = trio.open_memory_channel[list[Record]](1)
        send2.close()
        await publisher.serve(recv2)  # the supervisor's restart
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0
    assert publisher.statistics().acknowledged == 60


@pytest.mark.slow
async def test_cancelled_while_broker_down_keeps_records_for_next_serve(
    own_kafka_broker, kafka_topic, consume_kafka
):
    broker = own_kafka_broker
    await trio.to_thread.run_sync(broker.start)
    topic = kafka_topic()
    source = Source([topic])
    publisher = KafkaPublisher(settings_for(broker.bootstrap), shutdown_grace_s=1.0)
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(90):
        async with send, trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            await send.send(source.batch(100))
            await poll_until(
                lambda: publisher.statistics().acknowledged == 100,
                timeout=60,
                what="100 records acknowledged",
            )
            await trio.to_thread.run_sync(broker.stop)
            await send.send(source.batch(100))
            await send.send(source.batch(2500))  # more than one chunk: some never handed over
            await trio.sleep(1)
            nursery.cancel_scope.cancel()  # the shutdown grace runs out with Kafka away
        st = publisher.statistics()
        assert (st.acknowledged, st.in_flight, st.pending_retry) == (100, 0, 2600)
        await trio.to_thread.run_sync(broker.start)
        send2, recv2 = trio.open_memory_channel[list[Record]](1)
        send2.close()
        await publisher.serve(recv2)  # a later run sends what was kept, in order
        consumed = await consume_kafka([topic], until=until_all(source), bootstrap=broker.bootstrap)
    assert check_delivery(source, consumed) == 0
    assert publisher.statistics().acknowledged == 2700


# --- the adaptive linger (kafka.linger_records / linger_max_ms) -----------------------


async def test_trickling_input_is_gathered_into_one_hand_over(
    kafka_broker, kafka_topic, consume_kafka
):
    topic = kafka_topic()
    source = Source([topic])
    settings = settings_for(kafka_broker.bootstrap, linger_records=100, linger_max_ms=30_000)
    publisher = KafkaPublisher(settings)
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(60):
        await trio.to_thread.run_sync(create_topics, kafka_broker.bootstrap, [topic])
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            async with send:
                for _ in range(9):
                    await send.send(source.batch(10))
                    await trio.sleep(0.05)
                # 90 records: below linger_records, so still gathering, nothing handed over.
                assert publisher.statistics().sent == 0
                await send.send(source.batch(10))  # the 100th record: handed over at once
                await poll_until(
                    lambda: publisher.statistics().acknowledged == 100,
                    timeout=20,  # far below linger_max_ms
                    what="100 records acknowledged",
                )
                st = publisher.statistics()
                assert st.handovers == 1  # one produce cycle, not ten
                # Its requests are counted (produce requests only: not the metadata, API
                # versions and producer id requests of the start).
                assert 1 <= st.produce_requests <= st.batches <= 3
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0


async def test_a_small_chunk_waits_no_longer_than_linger_max_ms(
    kafka_broker, kafka_topic, consume_kafka
):
    topic = kafka_topic()
    source = Source([topic])
    settings = settings_for(kafka_broker.bootstrap, linger_records=1000, linger_max_ms=2000)
    publisher = KafkaPublisher(settings)
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(60):
        await trio.to_thread.run_sync(create_topics, kafka_broker.bootstrap, [topic])
        async with send, trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            began = trio.current_time()
            await send.send(source.batch(10))
            await trio.sleep(0.5)
            assert publisher.statistics().sent == 0  # waiting for more
            await poll_until(
                lambda: publisher.statistics().acknowledged == 10,
                timeout=30,
                what="10 records acknowledged without the 990 more they waited for",
            )
            assert trio.current_time() - began >= 2.0
            nursery.cancel_scope.cancel()
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0


async def test_end_of_input_ends_the_wait(kafka_broker, kafka_topic, consume_kafka):
    topic = kafka_topic()
    source = Source([topic])
    settings = settings_for(kafka_broker.bootstrap, linger_records=1000, linger_max_ms=60_000)
    publisher = KafkaPublisher(settings)
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(30):  # well within linger_max_ms: the end of input sends them
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            async with send:
                await send.send(source.batch(10))
                await trio.sleep(0.2)
                await send.send(source.batch(5))
        assert publisher.statistics().acknowledged == 15
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0


async def test_cancelled_while_gathering_keeps_the_records_for_next_serve(
    kafka_broker, kafka_topic, consume_kafka
):
    topic = kafka_topic()
    source = Source([topic])
    settings = settings_for(kafka_broker.bootstrap, linger_records=1000, linger_max_ms=60_000)
    publisher = KafkaPublisher(settings)
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(60):
        async with send, trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            await send.send(source.batch(20))
            await send.send(source.batch(10))
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()  # a shutdown while they wait for more
        st = publisher.statistics()
        assert (st.sent, st.pending_retry) == (0, 30)
        send2, recv2 = trio.open_memory_channel[list[Record]](1)
        send2.close()
        await publisher.serve(recv2)  # the next run sends what was kept, in order
        consumed = await consume_kafka([topic], until=until_all(source))
    assert check_delivery(source, consumed) == 0
    assert publisher.statistics().acknowledged == 30


async def test_an_alert_is_never_held_back_by_the_linger(kafka_broker, kafka_topic, consume_kafka):
    raw, alerts = kafka_topic(), kafka_topic()
    market, signals = Source([raw]), Source([alerts])
    settings = settings_for(kafka_broker.bootstrap, linger_records=1000, linger_max_ms=60_000,
                            topics=TopicSettings(alerts=alerts))  # fmt: skip
    publisher = KafkaPublisher(settings)
    send, recv = trio.open_memory_channel[list[Record]](4)
    with trio.fail_after(60):  # far below linger_max_ms
        await trio.to_thread.run_sync(create_topics, kafka_broker.bootstrap, [raw, alerts])
        async with send, trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, recv)
            # Arriving while 10 market records wait for more: all go at once.
            await send.send(market.batch(10))
            await trio.sleep(0.3)
            assert publisher.statistics().sent == 0
            await send.send(signals.batch(1))
            await poll_until(lambda: publisher.statistics().acknowledged == 11, timeout=20,
                             what="the waiting records sent with the alert")  # fmt: skip
            # An alert first: handed over without waiting at all.
            await send.send(signals.batch(1))
            await poll_until(lambda: publisher.statistics().acknowledged == 12, timeout=20,
                             what="a lone alert sent")  # fmt: skip
            nursery.cancel_scope.cancel()
        consumed = await consume_kafka([raw, alerts], until=lambda got: len(got) >= 12)
    assert check_delivery(market, [c for c in consumed if c.topic == raw]) == 0
    assert check_delivery(signals, [c for c in consumed if c.topic == alerts]) == 0
