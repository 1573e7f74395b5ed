"""Issue 6, item 4: SIGTERM under load while Kafka is down loses nothing.

Everything received is fsynced in the spool before the daemon exits (0, well within the
grace period: it does not wait for a broker that is gone). The next start delivers the
spool, and backfills from REST the trades made while no daemon was running (the spool
kept each symbol's last trade id), so every symbol's trade ids in Kafka are consecutive
across the stop, the outage and the restart.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from e2ekit import SYMBOLS, assert_trades_complete, daemon_config, last_trade_ids
from kit.wait import poll_until_blocking

from marketd.spool import Spool, SpoolSettings
from marketd.spool.sequence import read_checkpoint
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

GRACE_S = 20.0


async def test_sigterm_with_kafka_down_spools_everything_and_the_next_start_delivers(
    tmp_path: Path,
    own_kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    broker = own_kafka_broker
    await trio.to_thread.run_sync(broker.start)
    raw, depth = kafka_topic("raw"), kafka_topic("depth")
    spool_dir = tmp_path / "spool"

    def scenario() -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "37", "--rate", "600") as fx:
            config = daemon_config(fx, broker.bootstrap, raw, depth)
            config["kafka"]["request_timeout_ms"] = 3000
            config["shutdown"]["grace_s"] = GRACE_S
            facts: dict[str, float] = {}
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
                poll_until_blocking(
                    lambda: value("marketd_spool_records_pending") > 300,
                    timeout=30,
                    what="records piling up in the spool",
                )
                facts["frames"] = value("marketd_feed_frames_total")
                started = time.monotonic()
                code = daemon.stop(timeout=GRACE_S + 10)
                facts["stop_s"] = time.monotonic() - started
                assert code == 0, daemon.log_tail()
                assert "stopped with records in the spool" in daemon.log_tail(200)
            # What the stopped daemon left: records on disk, and its last trade ids.
            with Spool.open(SpoolSettings(directory=str(spool_dir))) as spool:
                facts["left_in_spool"] = spool.statistics().records_pending
            checkpoint = read_checkpoint(str(spool_dir))
            assert checkpoint is not None
            facts["checkpointed_keys"] = len(checkpoint[1])
            # No daemon for a while: the exchange keeps trading, every symbol at least one
            # trade (waited for: a loaded machine may trade fewer in the 2 s), so the next
            # start finds a gap in each.
            at_stop = last_trade_ids(fx)
            time.sleep(2.0)
            poll_until_blocking(
                lambda: all(
                    now[s] > then[s]
                    for now, then in zip(last_trade_ids(fx), at_stop, strict=True)
                    for s in SYMBOLS
                ),
                timeout=30,
                what="a trade of every symbol while no daemon ran",
            )
            broker.start()
            with DaemonProcess(tmp_path, config) as daemon:

                def pending() -> float:
                    return metric_value(daemon.metrics(), "marketd_spool_records_pending")

                daemon.wait_ready(timeout=60)
                poll_until_blocking(
                    lambda: metric_value(daemon.metrics(), "marketd_trades_backfilled_total") > 0,
                    timeout=30,
                    what="the downtime backfilled from REST",
                )
                fx.control("pause")
                spot, usdm = last_trade_ids(fx)
                # Every gap filled (REST may still be answering: its weight budget paces it),
                # then everything delivered.
                poll_until_blocking(
                    lambda: metric_value(daemon.metrics(), "marketd_backfills_running") == 0,
                    timeout=60,
                    what="the backfills done",
                )
                poll_until_blocking(lambda: pending() == 0, timeout=60, what="the spool drained")
                text = daemon.metrics()
                facts["unfilled"] = metric_value(text, "marketd_trades_unfilled_total")
                facts["gaps"] = metric_value(text, "marketd_trade_gaps_total")
                facts["gaps_closed"] = metric_value(text, "marketd_trade_gaps_closed_total")
                assert daemon.stop(timeout=30) == 0, daemon.log_tail()
        return spot, usdm, facts

    spot_last, usdm_last, facts = await trio.to_thread.run_sync(scenario)
    # The stop did not wait for the dead broker, and left the backlog on disk.
    assert facts["stop_s"] < GRACE_S / 2, facts
    assert facts["left_in_spool"] > 300, facts
    assert facts["checkpointed_keys"] == 2 * len(SYMBOLS), facts  # spot trade, USD-M aggTrade
    assert facts["unfilled"] == 0, facts
    # The downtime opened a gap in every symbol's trades; each was closed from REST.
    assert facts["gaps"] >= 2 * len(SYMBOLS), facts
    assert facts["gaps_closed"] == facts["gaps"], facts

    await assert_trades_complete(consume_kafka, raw, broker.bootstrap, spot_last, usdm_last)


async def test_sigterm_with_kafka_up_leaves_nothing_to_deliver_again(
    tmp_path: Path,
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
) -> None:
    """A stop under load with the broker up: the drain ends only once Kafka acknowledged
    everything the spool handed on, and the spool knows it — nothing left pending for the
    next start to send again (the spool once closed as soon as it had handed the last
    records on, and the acknowledgements that came after were lost: every stop left the
    records in flight to be delivered twice)."""
    raw, depth, orderbook = kafka_topic("raw"), kafka_topic("depth"), kafka_topic("book")
    spool_dir = tmp_path / "spool"

    def scenario() -> dict[str, Any]:
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "38", "--rate", "600") as fx:
            config = daemon_config(fx, kafka_broker.bootstrap, raw, depth, orderbook)
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready()
                poll_until_blocking(
                    lambda: (
                        metric_value(daemon.metrics(), "marketd_kafka_records_acked_total") > 500
                    ),
                    timeout=30,
                    what="500 records acknowledged by Kafka",
                )
                code = daemon.stop(timeout=GRACE_S + 10)
                log = daemon.log_tail(200)
        with Spool.open(SpoolSettings(directory=str(spool_dir))) as spool:
            stats = spool.statistics()
        return {"code": code, "log": log, "pending": stats.records_pending, "next": stats.next_seq}

    facts = await trio.to_thread.run_sync(scenario)
    assert facts["code"] == 0, facts["log"]
    assert '"drained": true' in facts["log"], facts["log"]
    assert facts["next"] > 500  # it spooled what it delivered
    assert facts["pending"] == 0, facts["log"]
