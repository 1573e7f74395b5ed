"""Exactly-once delivery (``kafka.delivery: exactly_once``) against a real broker.

The spool stage feeds the transactional publisher as in the daemon; records are read
back with ``isolation.level=read_committed``: each must be there once, in per-key order,
whatever happened to the publisher (a restart whose spool acks were lost, a zombie with
the same transactional id, a kill in the middle of a transaction).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest
import trio
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from kit.outage import ConnectionWatch
from kit.wait import poll_until

from marketd.config.load import load_settings
from marketd.config.settings import BackoffSettings, KafkaSettings, TopicSettings
from marketd.data.records import Market, Record
from marketd.errors import ConfigError, leaves
from marketd.kafka.exactly_once import (
    ExactlyOncePublisher,
    ProducerFencedError,
    Progress,
    decode_progress,
    encode_progress,
    fingerprint,
    read_progress,
    transactional_id,
)
from marketd.spool.settings import SpoolSettings
from marketd.spool.stage import SpoolStage
from marketd.testing.devkafka import KafkaBroker

pytestmark = pytest.mark.kafka

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")


def settings_for(bootstrap: str, raw: str, depth: str, **overrides: Any) -> KafkaSettings:
    values: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "request_timeout_ms": 5000,
        "retry": BackoffSettings(initial_s=0.05, max_s=1.0),
        "delivery": "exactly_once",
        "transactional_id": f"test.eos.{uuid.uuid4().hex[:8]}",
        "progress_topic": f"test.progress.{uuid.uuid4().hex[:8]}",
        "transaction_interval_ms": 50,
        "max_records_per_send": 100,
        "topics": TopicSettings(raw=raw, depth=depth),
    }
    values.update(overrides)
    return KafkaSettings(**values)


class Source:
    """Records numbered per (topic, symbol); ``tag`` tells runs or instances apart."""

    def __init__(self, topics: Sequence[str], tag: str = "r") -> None:
        self.topics, self.tag = topics, tag
        self.next_seq: dict[tuple[str, str], int] = defaultdict(int)
        self.count = 0

    def batch(self, size: int) -> list[Record]:
        out = []
        for _ in range(size):
            topic = self.topics[self.count % len(self.topics)]
            symbol = SYMBOLS[(self.count // len(self.topics)) % len(SYMBOLS)]
            seq = self.next_seq[topic, symbol]
            self.next_seq[topic, symbol] = seq + 1
            out.append(
                Record(
                    topic=topic,
                    key=symbol.encode(),
                    value=f"{self.tag}:{symbol}:{seq}".encode(),
                    headers=(("type", b"trade"),),
                    received_ns=time.time_ns(),
                    market=Market.SPOT,
                    kind="trade",
                    symbol=symbol,
                    seq=seq,
                )
            )
            self.count += 1
        return out


def spool_settings(path: Path) -> SpoolSettings:
    return SpoolSettings(directory=str(path), sync_interval_s=0.05, read_batch_records=300)


def read_committed(bootstrap: str, topics: Sequence[str], *, committed: bool = True,
                   timeout: float = 20.0) -> list[tuple[str, bytes, bytes]]:  # fmt: skip
    """Every record of ``topics`` up to their end offsets (the last stable offset under
    read_committed): (topic, key, value), per partition in offset order. Blocking."""

    async def read() -> list[tuple[str, bytes, bytes]]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed" if committed else "read_uncommitted",
            fetch_max_wait_ms=100,
        )
        out: list[tuple[str, bytes, bytes]] = []
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            tps = sorted(
                TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()
            )
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    break
                batch = await consumer.getmany(timeout_ms=200)
                for tp in sorted(batch):
                    out.extend((m.topic, m.key, m.value) for m in batch[tp])
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


def copies(records: list[tuple[str, bytes, bytes]]) -> dict[tuple[str, bytes], int]:
    counts: dict[tuple[str, bytes], int] = defaultdict(int)
    for topic, _, value in records:
        counts[topic, value] += 1
    return counts


def check_once(sources: Sequence[Source], records: list[tuple[str, bytes, bytes]]) -> None:
    """Every record of ``sources`` exactly once, nothing else, per-key order kept."""
    seen: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for topic, key, value in records:
        tag, symbol, seq = value.decode().split(":")
        assert key == symbol.encode()
        seen[tag, topic, symbol].append(int(seq))
    expected = {
        (s.tag, topic, symbol): list(range(n))
        for s in sources
        for (topic, symbol), n in s.next_seq.items()
    }
    assert set(seen) == set(expected)
    for stream, seqs in seen.items():
        assert seqs == expected[stream], f"{stream}: duplicates, gaps or order broken"


async def run_pipeline(
    stage: SpoolStage,
    publisher: ExactlyOncePublisher,
    batches: list[list[Record]],
    *,
    after_start: Callable[[], Any] | None = None,
) -> None:
    """Spool stage → publisher, as the daemon wires them; returns once the publisher has
    committed everything (input ended)."""
    in_send, in_recv = trio.open_memory_channel[list[Record]](16)
    mid_send, mid_recv = trio.open_memory_channel[list[Record]](16)
    async with trio.open_nursery() as nursery:
        await nursery.start(publisher.serve, mid_recv)
        await nursery.start(stage.serve, in_recv, mid_send)
        async with in_send:
            for batch in batches:
                await in_send.send(batch)
    await stage.close()


async def test_each_record_once_under_read_committed(kafka_broker: Any, tmp_path: Path) -> None:
    uid = uuid.uuid4().hex[:8]
    topics = [f"test.eos.raw.{uid}", f"test.eos.depth.{uid}"]
    settings = settings_for(kafka_broker.bootstrap, *topics)
    source = Source(topics)
    stage = SpoolStage(spool_settings(tmp_path / "spool"))
    publisher = ExactlyOncePublisher(settings, stage)
    with trio.fail_after(60):
        await run_pipeline(
            stage, publisher, [source.batch(n) for n in (1, 7, 250, 900, 3, 600, 239)]
        )
        records = await trio.to_thread.run_sync(read_committed, kafka_broker.bootstrap, topics)
        progress = await trio.to_thread.run_sync(
            read_committed, kafka_broker.bootstrap, [settings.progress_topic]
        )
    check_once([source], records)
    st = publisher.statistics()
    assert st.acknowledged == st.sent == source.count == 2000
    assert st.in_flight == 0
    assert publisher._commits >= 1
    # The spool was acked up to the last record, and Kafka holds that position.
    assert stage.spool is None  # closed
    last = decode_progress(progress[-1][2])
    assert progress[-1][1] == settings.transactional_id.encode()
    assert last is not None
    assert last.seq == 2000


async def test_restart_after_lost_spool_acks_resends_nothing(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """Commits succeeded but the spool never recorded the acks (the process died in
    between): the next run skips what Kafka has, sends only the rest."""
    uid = uuid.uuid4().hex[:8]
    topics = [f"test.eos.raw.{uid}", f"test.eos.depth.{uid}"]
    settings = settings_for(kafka_broker.bootstrap, *topics)
    source = Source(topics)
    directory = tmp_path / "spool"

    class AcksLost:
        """The stage, except that acks never reach the spool."""

        def __init__(self, stage: SpoolStage) -> None:
            self.stage = stage
            self.with_seqs = stage.with_seqs = True

        def identity(self) -> str:
            return self.stage.identity()

        def acked_seq(self) -> int:
            return self.stage.acked_seq()

        def record_at(self, seq: int) -> Record | None:
            return self.stage.record_at(seq)

        def on_settled(self, records: list[Record]) -> None:
            pass

    first = SpoolStage(spool_settings(directory))
    lossy = ExactlyOncePublisher(settings, AcksLost(first))
    with trio.fail_after(90):
        await run_pipeline(first, lossy, [source.batch(n) for n in (500, 400, 100)])
        assert lossy.statistics().acknowledged == 1000
        # The spool still holds every record as unacknowledged.
        second = SpoolStage(spool_settings(directory))
        publisher = ExactlyOncePublisher(settings, second)
        await run_pipeline(second, publisher, [source.batch(n) for n in (300, 200)])
        records = await trio.to_thread.run_sync(read_committed, kafka_broker.bootstrap, topics)
    check_once([source], records)
    assert publisher._skipped == 1000  # re-delivered by the spool, not sent again
    assert publisher.statistics().sent == 500
    reopened = SpoolStage(spool_settings(directory))
    with trio.fail_after(10):
        sink_send, sink_recv = trio.open_memory_channel[list[Record]](16)
        in_send, in_recv = trio.open_memory_channel[list[Record]](1)
        await in_send.aclose()
        async with sink_recv:
            await reopened.serve(in_recv, sink_send)
            # Everything was acknowledged in the second run: nothing is re-delivered.
            with pytest.raises(trio.EndOfChannel):
                sink_recv.receive_nowait()
    assert reopened.acked_seq() == 1500
    await reopened.close()


async def test_zombie_is_fenced_and_duplicates_nothing(kafka_broker: Any, tmp_path: Path) -> None:
    """Two publishers with one transactional id: the newer fences the older, whose next
    transaction fails; it stops with ProducerFencedError. Nothing is duplicated."""
    uid = uuid.uuid4().hex[:8]
    topics = [f"test.eos.raw.{uid}", f"test.eos.depth.{uid}"]
    settings = settings_for(kafka_broker.bootstrap, *topics)
    old_source, new_source = Source(topics, "old"), Source(topics, "new")
    old_stage = SpoolStage(spool_settings(tmp_path / "old"))
    old = ExactlyOncePublisher(settings, old_stage)
    old_in, old_in_recv = trio.open_memory_channel[list[Record]](16)
    old_mid, old_mid_recv = trio.open_memory_channel[list[Record]](16)
    fenced: list[BaseException] = []

    async def run_old(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(old.serve, old_mid_recv)
                await nursery.start(old_stage.serve, old_in_recv, old_mid)
                task_status.started()
        except ProducerFencedError as exc:
            fenced.append(exc)
        except BaseExceptionGroup as group:
            match = group.subgroup(ProducerFencedError)
            if match is None:
                raise
            fenced.extend(leaves(match))

    with trio.fail_after(90):
        async with trio.open_nursery() as outer:
            await outer.start(run_old)
            await old_in.send(old_source.batch(300))
            await poll_until(
                lambda: old.statistics().acknowledged >= 300, timeout=30, what="first commit"
            )
            # The newer incarnation starts (its own spool): it fences the old producer.
            new_stage = SpoolStage(spool_settings(tmp_path / "new"))
            new = ExactlyOncePublisher(settings, new_stage)
            await run_pipeline(new_stage, new, [new_source.batch(200)])
            # The zombie goes on: its next transaction is refused, and it stops loudly.
            late = Source(topics, "late")
            await old_in.send(late.batch(50))
            await poll_until(lambda: fenced, timeout=30, what="the zombie fenced")
            outer.cancel_scope.cancel()
        await old_stage.close()
        records = await trio.to_thread.run_sync(read_committed, kafka_broker.bootstrap, topics)
    assert isinstance(fenced[0], ProducerFencedError)
    assert "transactional id" in str(fenced[0])
    check_once([old_source, new_source], records)
    assert old.statistics().acknowledged == 300


async def test_killed_mid_transaction_leaves_nothing_visible_then_delivers_once(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """A publisher cancelled with a transaction open (records sent, no commit): under
    read_committed nothing of it is visible; the next run (same transactional id, same
    spool) aborts it and delivers those records once."""
    uid = uuid.uuid4().hex[:8]
    topics = [f"test.eos.raw.{uid}", f"test.eos.depth.{uid}"]
    # A long interval: the transaction stays open while the test kills the publisher.
    settings = settings_for(kafka_broker.bootstrap, *topics, transaction_interval_ms=30_000)
    source = Source(topics)
    directory = tmp_path / "spool"
    first = SpoolStage(spool_settings(directory))
    killed = ExactlyOncePublisher(settings, first)
    in_send, in_recv = trio.open_memory_channel[list[Record]](16)
    mid_send, mid_recv = trio.open_memory_channel[list[Record]](16)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            await nursery.start(killed.serve, mid_recv)
            await nursery.start(first.serve, in_recv, mid_send)
            await in_send.send(source.batch(300))  # below the transaction's record cap
            await poll_until(
                lambda: killed.statistics().sent >= 300, timeout=30, what="records handed over"
            )
            await trio.sleep(0.5)  # the batches reach the broker (linger, produce)
            nursery.cancel_scope.cancel()  # "kill": no commit, no abort
        await first.close()
        assert killed._commits == 0
        # Written to the log, but not visible to read_committed readers.
        written = await trio.to_thread.run_sync(
            lambda: read_committed(kafka_broker.bootstrap, topics, committed=False)
        )
        assert len(written) == 300
        visible = await trio.to_thread.run_sync(read_committed, kafka_broker.bootstrap, topics)
        assert visible == []
        # The next run: same id, same spool; 100 more records.
        second = SpoolStage(spool_settings(directory))
        publisher = ExactlyOncePublisher(settings, second)
        await run_pipeline(second, publisher, [source.batch(100)])
        records = await trio.to_thread.run_sync(read_committed, kafka_broker.bootstrap, topics)
        everything = await trio.to_thread.run_sync(
            lambda: read_committed(kafka_broker.bootstrap, topics, committed=False)
        )
    check_once([source], records)
    assert publisher.statistics().sent == 400  # the aborted 300 again, then the new 100
    assert len(everything) == 700  # the aborted copies stay in the log, invisible
    assert set(copies(everything).values()) == {1, 2}  # the 300 aborted ones twice
    assert set(copies(records).values()) == {1}


@pytest.mark.slow
async def test_broker_crash_mid_stream_resumes_after_the_last_commit(
    own_kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """The broker is killed (SIGKILL) while transactions are open or committing, then
    restarted: the publisher aborts, resumes from the committed position; each record
    once."""
    broker = own_kafka_broker
    await trio.to_thread.run_sync(broker.start)
    uid = uuid.uuid4().hex[:8]
    topics = [f"test.eos.raw.{uid}", f"test.eos.depth.{uid}"]
    settings = settings_for(broker.bootstrap, *topics, request_timeout_ms=3000)
    source = Source(topics)
    stage = SpoolStage(spool_settings(tmp_path / "spool"))
    publisher = ExactlyOncePublisher(settings, stage)
    in_send, in_recv = trio.open_memory_channel[list[Record]](16)
    mid_send, mid_recv = trio.open_memory_channel[list[Record]](16)
    with trio.fail_after(150):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, mid_recv)
            await nursery.start(stage.serve, in_recv, mid_send)
            async with in_send:
                for _ in range(20):
                    await in_send.send(source.batch(50))
                    await trio.sleep(0.02)
                await poll_until(lambda: publisher._commits >= 3, timeout=30, what="commits")
                await in_send.send(source.batch(300))  # in flight when the broker dies
                await trio.to_thread.run_sync(broker.kill)
                for _ in range(20):  # accepted by the spool meanwhile
                    await in_send.send(source.batch(50))
                await trio.sleep(2)
                await trio.to_thread.run_sync(broker.start)
                for _ in range(20):
                    await in_send.send(source.batch(50))
                    await trio.sleep(0.02)
        await stage.close()
        records = await trio.to_thread.run_sync(
            lambda: read_committed(broker.bootstrap, topics, timeout=30)
        )
        progress = await trio.to_thread.run_sync(
            lambda: asyncio.run(read_progress(settings, publisher.transactional_id, 10))
        )
    check_once([source], records)
    st = publisher.statistics()
    assert st.acknowledged == source.count == 3300
    assert st.producer_starts >= 2  # a new producer after the crash
    assert progress is not None
    assert progress.seq == 3300


async def test_never_connected_while_every_transaction_fails(
    kafka_broker: Any, tmp_path: Path
) -> None:
    """A record whose topic never resolves (an illegal name; in production a missing or
    denied topic) fails every transaction. From the first failure on, the publisher
    never says it is connected - not while it waits to retry, restarts its producer (it
    reaches the broker: reachable is not delivering) or tries again."""
    uid = uuid.uuid4().hex[:8]
    topics = [f"test.eos.raw.{uid}", f"test.eos.depth.{uid}"]
    settings = settings_for(kafka_broker.bootstrap, *topics, request_timeout_ms=1000)
    stage = SpoolStage(spool_settings(tmp_path / "spool"))
    publisher = ExactlyOncePublisher(settings, stage)
    watch = ConnectionWatch(publisher)
    bad = msgspec.structs.replace(Source(topics).batch(1)[0], topic="no such topic!")
    in_send, in_recv = trio.open_memory_channel[list[Record]](16)
    mid_send, mid_recv = trio.open_memory_channel[list[Record]](16)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(publisher.serve, mid_recv)
            await nursery.start(stage.serve, in_recv, mid_send)
            assert publisher.statistics().connected
            nursery.start_soon(watch.watch)
            await in_send.send([bad])
            await poll_until(
                lambda: publisher.statistics().producer_starts >= 4,
                timeout=40,
                what="three producer restarts after failed transactions",
            )
            watch.stop()
            nursery.cancel_scope.cancel()
    await stage.close()
    st = publisher.statistics()
    assert (st.acknowledged, st.failed_attempts >= 3) == (0, True), st
    assert len(watch.samples) > 20, watch.samples
    assert watch.claimed_connected == 0, f"{watch.claimed_connected}/{len(watch.samples)}"


def test_exactly_once_needs_the_spool() -> None:
    environ = {
        "MARKETD_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "MARKETD_KAFKA__DELIVERY": "exactly_once",
        "MARKETD_SPOOL__ENABLED": "false",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ)
    assert any("exactly_once needs the spool" in p for p in caught.value.problems)
    del environ["MARKETD_SPOOL__ENABLED"]
    settings = load_settings(None, environ)
    assert settings.kafka.exactly_once
    assert load_settings(None, {}).kafka.delivery == "at_least_once"  # the default


def test_unknown_delivery_mode_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {"MARKETD_KAFKA__DELIVERY": "exactly-once"})
    assert any(p.startswith("kafka.delivery: must be one of") for p in caught.value.problems)


def test_progress_round_trip_and_default_transactional_id() -> None:
    record = Source(["t"]).batch(1)[0]
    progress = Progress(42, fingerprint(record))
    assert decode_progress(encode_progress(progress)) == progress
    assert decode_progress(b"not json") is None
    assert decode_progress(None) is None
    kafka = KafkaSettings(client_id="collector")
    assert transactional_id(kafka, "0123456789abcdef") == "collector.0123456789abcdef"
    assert transactional_id(attrs.evolve(kafka, transactional_id="fixed"), "x") == "fixed"


def test_default_transactional_id_is_kept_in_the_spool_directory(tmp_path: Path) -> None:
    stage = SpoolStage(spool_settings(tmp_path / "spool"))
    made = stage.identity()  # creates the directory and the file
    assert len(made) == 16
    assert (tmp_path / "spool" / "producer.id").read_text().strip() == made
    assert SpoolStage(spool_settings(tmp_path / "spool")).identity() == made
    assert SpoolStage(spool_settings(tmp_path / "other")).identity() != made
