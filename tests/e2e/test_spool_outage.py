"""Issue 6 (first step): with the spool on, a Kafka outage under load costs nothing.

The broker is stopped for several seconds while the fake exchange keeps trading: the
feeds keep reading (frames keep arriving, records pile up in the spool on disk), and when
the broker returns every trade reaches Kafka, in per-symbol order. A batch whose ack was
lost with the broker is sent again, so a few duplicates are possible: they are counted,
bounded by what was in flight, and identifiable by trade id.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from e2ekit import assert_trades_complete, daemon_config, last_trade_ids
from kit.wait import poll_until_blocking

from marketd.config.settings import KafkaSettings
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = 8.0


async def test_broker_outage_is_absorbed_by_the_spool(
    tmp_path: Path,
    own_kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    broker = own_kafka_broker
    await trio.to_thread.run_sync(broker.start)
    raw, depth = kafka_topic("raw"), kafka_topic("depth")

    def scenario() -> tuple[dict[str, int], dict[str, int], dict[str, float], object]:
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "31", "--rate", "600") as fx:
            config = daemon_config(fx, broker.bootstrap, raw, depth)
            config["spool"] = {"enabled": True, "directory": str(tmp_path / "spool")}
            config["kafka"]["request_timeout_ms"] = 3000
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready()

                def value(name: str) -> float:
                    return metric_value(daemon.metrics(), name)

                poll_until_blocking(
                    lambda: value("marketd_kafka_records_acked_total") > 500,
                    timeout=30,
                    what="500 records acknowledged by Kafka",
                )
                broker.stop()
                frames_before = value("marketd_feed_frames_total")
                time.sleep(OUTAGE_S)
                # An outage of at least OUTAGE_S, and long enough for the counts below:
                # waited for, since a loaded machine reads fewer frames in OUTAGE_S.
                poll_until_blocking(
                    lambda: (
                        value("marketd_feed_frames_total") - frames_before > 1000
                        and value("marketd_spool_records_pending") > 500
                    ),
                    timeout=90,
                    what="frames read and records spooled during the outage",
                )
                during = {
                    "frames": value("marketd_feed_frames_total") - frames_before,
                    "pending": value("marketd_spool_records_pending"),
                    "ready": float(daemon.ready()[0] == 200),
                }
                readiness = daemon.ready()[1]  # named in a failure below
                broker.start()
                fx.control("pause")
                spot, usdm = last_trade_ids(fx)
                poll_until_blocking(
                    lambda: value("marketd_spool_records_pending") == 0,
                    timeout=90,
                    what="the spool drained into Kafka",
                )
                assert daemon.stop(timeout=60) == 0, daemon.log_tail()
        return spot, usdm, during, readiness

    spot_last, usdm_last, during, readiness = await trio.to_thread.run_sync(scenario)
    # During the outage the feeds kept reading and the spool held what Kafka could not take.
    assert during["frames"] > 1000, during
    assert during["pending"] > 500, during
    # Kafka down: not ready (also between retries), but not stalled either.
    assert during["ready"] == 0.0, (during, readiness)

    duplicates = await assert_trades_complete(
        consume_kafka, raw, broker.bootstrap, spot_last, usdm_last
    )
    defaults = KafkaSettings()
    in_flight_bound = defaults.max_inflight_batches * defaults.max_records_per_send
    assert duplicates <= in_flight_bound, duplicates
