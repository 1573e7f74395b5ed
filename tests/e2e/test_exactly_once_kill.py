"""Issue 15, item 1: with ``kafka.delivery: exactly_once``, ``kill -9`` under load and a
restart leave every trade in Kafka exactly once for ``read_committed`` readers.

The daemon is killed while transactions are open and acks are in flight; the next start
fences the dead producer's transactional id (its open transaction is aborted), reads the
committed spool position from the progress topic, skips what the spool re-delivers up to
it, and backfills the downtime from REST. Under ``isolation.level=read_committed`` each
symbol's trade ids are consecutive with no repeat (the at-least-once mode may repeat the
in-flight records here: see ``tests/e2e/test_spool_outage.py``).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from e2ekit import assert_trades_complete, daemon_config, last_trade_ids
from kit.wait import poll_until_blocking

from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def read_committed(
    bootstrap: str,
    topics: Sequence[str],
    until: Callable[[list[ConsumedRecord]], bool],
    wait_s: float,
) -> list[ConsumedRecord]:
    """``topics`` from the beginning with ``isolation.level=read_committed`` until
    ``until(records)`` holds or ``wait_s`` pass (blocking)."""

    async def read() -> list[ConsumedRecord]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
        )
        out: list[ConsumedRecord] = []
        deadline = time.monotonic() + wait_s
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            tps = sorted(
                TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()
            )
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while time.monotonic() < deadline and not until(out):
                batch = await consumer.getmany(timeout_ms=200)
                for tp in sorted(batch):
                    out.extend(
                        ConsumedRecord(
                            m.topic,
                            m.partition,
                            m.offset,
                            m.key,
                            m.value,
                            tuple(m.headers),
                            m.timestamp,
                        )
                        for m in batch[tp]
                    )
        finally:
            await consumer.stop()
        return out

    return asyncio.run(read())


async def test_kill_9_under_load_then_restart_delivers_each_trade_once(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    uid = uuid.uuid4().hex[:8]
    raw, depth = f"test.eos.e2e.raw.{uid}", f"test.eos.e2e.depth.{uid}"

    def scenario() -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
        facts: dict[str, float] = {}
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "41", "--rate", "600") as fx:
            config = daemon_config(fx, kafka_broker.bootstrap, raw, depth)
            config["kafka"].update(
                delivery="exactly_once",  # the default transactional id: the spool's
                progress_topic=f"test.eos.e2e.progress.{uid}",
                request_timeout_ms=5000,
            )
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready(timeout=60)
                poll_until_blocking(
                    lambda: (
                        metric_value(daemon.metrics(), "marketd_kafka_records_acked_total") > 1000
                    ),
                    timeout=60,
                    what="1000 records committed to Kafka",
                )
                daemon.signal(signal.SIGKILL)
                assert daemon.wait(10) == -signal.SIGKILL
            time.sleep(1.0)  # the exchange trades on while no daemon runs
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready(timeout=60)
                poll_until_blocking(
                    lambda: metric_value(daemon.metrics(), "marketd_trades_backfilled_total") > 0,
                    timeout=60,
                    what="the downtime backfilled from REST",
                )
                fx.control("pause")
                spot, usdm = last_trade_ids(fx)
                poll_until_blocking(
                    lambda: metric_value(daemon.metrics(), "marketd_backfills_running") == 0,
                    timeout=60,
                    what="the backfills done",
                )
                poll_until_blocking(
                    lambda: metric_value(daemon.metrics(), "marketd_spool_records_pending") == 0,
                    timeout=60,
                    what="the spool drained",
                )
                text = daemon.metrics()
                facts["skipped"] = metric_value(text, "marketd_kafka_records_skipped_total")
                facts["unfilled"] = metric_value(text, "marketd_trades_unfilled_total")
                assert daemon.stop(timeout=30) == 0, daemon.log_tail()
        return spot, usdm, facts

    spot_last, usdm_last, facts = await trio.to_thread.run_sync(scenario)
    assert facts["unfilled"] == 0, facts

    async def consume(
        topics: Sequence[str], *, until: Any = None, wait_s: float = 60.0, **_: Any
    ) -> list[ConsumedRecord]:
        return await trio.to_thread.run_sync(
            read_committed, kafka_broker.bootstrap, list(topics), until, wait_s
        )

    duplicates = await assert_trades_complete(
        consume, raw, kafka_broker.bootstrap, spot_last, usdm_last
    )
    assert duplicates == 0, facts
