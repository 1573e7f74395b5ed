"""Issue 15, item 1: with ``kafka.delivery: exactly_once``, a graceful stop while Kafka is
down ends within the shutdown grace with exit 0, leaves what Kafka did not commit in the
spool, and the next start (the broker back) delivers it: each trade once for
``read_committed`` readers, none lost.

The broker dies with a transaction open and records in flight; the stopping daemon cannot
commit or abort it, so it must not wait for Kafka beyond its grace. The broker aborts the
dangling transaction when the restarted daemon fences the same transactional id; the
restarted daemon resumes after the last committed spool position.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from e2ekit import assert_trades_complete, daemon_config, last_trade_ids
from kit.wait import poll_until_blocking

from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

Consume = Callable[..., Awaitable[list[ConsumedRecord]]]
GRACE_S = 10.0
# Past the grace: the daemon's own exit (flushing the spool's index, closing files).
EXIT_MARGIN_S = 10.0


async def test_a_graceful_stop_with_kafka_down_keeps_the_rest_for_the_next_start(
    tmp_path: Path, own_kafka_broker: KafkaBroker, consume_kafka: Consume
) -> None:
    broker, uid = own_kafka_broker, uuid.uuid4().hex[:8]
    raw, depth = f"test.eos.stop.raw.{uid}", f"test.eos.stop.depth.{uid}"
    facts: dict[str, float] = {}

    def scenario() -> tuple[dict[str, int], dict[str, int]]:
        broker.start()
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "43", "--rate", "400") as fx:
            config = daemon_config(fx, broker.bootstrap, raw, depth)
            config["kafka"].update(
                delivery="exactly_once",
                progress_topic=f"test.eos.stop.progress.{uid}",
                request_timeout_ms=3000,
            )
            config["shutdown"] = {"grace_s": GRACE_S}
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready(timeout=60)
                poll_until_blocking(
                    lambda: (
                        metric_value(daemon.metrics(), "marketd_kafka_records_acked_total") > 1000
                    ),
                    timeout=60,
                    what="1000 records committed to Kafka",
                )
                broker.stop()
                poll_until_blocking(
                    lambda: daemon.ready()[0] != 200,
                    timeout=30,
                    what="/readyz says Kafka is gone",
                )
                time.sleep(1.0)  # more records spooled that Kafka will not see now
                facts["pending"] = metric_value(daemon.metrics(), "marketd_spool_records_pending")
                began = time.monotonic()
                daemon.signal(signal.SIGTERM)
                facts["code"] = daemon.wait(GRACE_S + EXIT_MARGIN_S + 20)
                facts["stop_s"] = time.monotonic() - began
                log = daemon.log_tail()
            broker.start()
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready(timeout=90)
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
                    timeout=90,
                    what="the spool drained into Kafka",
                )
                text = daemon.metrics()
                facts["unfilled"] = metric_value(text, "marketd_trades_unfilled_total")
                assert daemon.stop(timeout=30) == 0, daemon.log_tail()
        assert facts["code"] == 0, log
        return spot, usdm

    with trio.fail_after(400):
        spot_last, usdm_last = await trio.to_thread.run_sync(scenario)
    assert facts["pending"] > 0, facts  # the stop really left records behind
    assert facts["stop_s"] <= GRACE_S + EXIT_MARGIN_S, facts
    assert facts["unfilled"] == 0, facts

    async def committed(topics: list[str], **kw: Any) -> list[ConsumedRecord]:
        return await consume_kafka(topics, committed=True, **kw)

    duplicates = await assert_trades_complete(
        committed, raw, broker.bootstrap, spot_last, usdm_last
    )
    assert duplicates == 0, facts
