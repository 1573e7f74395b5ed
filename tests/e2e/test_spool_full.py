"""Issue 6, item 1: the explicit policy when the spool is full — stop intake, report
not-ready, raise a metric — and recovery without loss once Kafka returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from e2ekit import assert_trades_complete, daemon_config, last_trade_ids
from kit.wait import poll_until_blocking

from marketd.config.settings import TopicSettings
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value
from marketd.v1.status_pb2 import StatusEvent

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_a_full_spool_stops_intake_reports_it_and_recovers_without_loss(
    tmp_path: Path,
    own_kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    broker = own_kafka_broker
    await trio.to_thread.run_sync(broker.start)
    raw, depth = kafka_topic("raw"), kafka_topic("depth")

    def scenario() -> tuple[dict[str, int], dict[str, int], dict[str, object]]:
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "41", "--rate", "300") as fx:
            config = daemon_config(fx, broker.bootstrap, raw, depth)
            config["kafka"]["request_timeout_ms"] = 3000
            # A tiny spool: full within seconds of the broker going away.
            config["spool"] = {"segment_bytes": 16384, "max_bytes": 65536}
            seen: dict[str, object] = {}
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready()

                def value(name: str) -> float:
                    return metric_value(daemon.metrics(), name)

                poll_until_blocking(
                    lambda: value("marketd_kafka_records_acked_total") > 200,
                    timeout=30,
                    what="200 records acknowledged by Kafka",
                )
                broker.stop()
                poll_until_blocking(
                    lambda: value("marketd_spool_full") == 1, timeout=30, what="spool full"
                )
                status, body = daemon.ready()
                seen["status"], seen["not_ready"] = status, body["not_ready"]
                seen["refused"] = value("marketd_spool_appends_refused_total")
                seen["bytes"] = value("marketd_spool_bytes")
                broker.start()
                poll_until_blocking(
                    lambda: value("marketd_spool_full") == 0 and daemon.ready()[0] == 200,
                    timeout=90,
                    what="the spool drained and the daemon ready again",
                )
                fx.control("pause")
                spot, usdm = last_trade_ids(fx)
                poll_until_blocking(
                    lambda: value("marketd_spool_records_pending") == 0, timeout=60, what="drained"
                )
                seen["restarts"] = value("marketd_child_restarts_total")
                seen["unfilled"] = value("marketd_trades_unfilled_total")
                assert daemon.stop(timeout=30) == 0, daemon.log_tail()
        return spot, usdm, seen

    spot_last, usdm_last, seen = await trio.to_thread.run_sync(scenario)
    assert seen["status"] == 503, seen
    assert "spool:full" in seen["not_ready"], seen  # type: ignore[operator]
    assert seen["refused"] > 0, seen  # type: ignore[operator]
    assert seen["bytes"] <= 65536, seen  # type: ignore[operator]
    assert seen["restarts"] == 0, seen
    assert seen["unfilled"] == 0, seen

    await assert_trades_complete(consume_kafka, raw, broker.bootstrap, spot_last, usdm_last)

    # Said out loud on the status stream too: intake stopped, then resumed, in that order.
    def stopped_and_resumed(records: list[ConsumedRecord]) -> bool:
        return any(dict(r.headers).get("type") == b"intakeResumed" for r in records)

    records = await consume_kafka(
        [TopicSettings().status], until=stopped_and_resumed, wait_s=60, bootstrap=broker.bootstrap
    )
    events = [StatusEvent.FromString(r.value) for r in records]
    intake = [e for e in events if e.WhichOneof("event") in ("intake_stopped", "intake_resumed")]
    assert [e.WhichOneof("event") for e in intake][:2] == ["intake_stopped", "intake_resumed"]
    stopped, resumed = intake[:2]
    assert stopped.intake_stopped.reason == "spool_full"
    assert stopped.intake_stopped.pending_records > 0
    assert 0 <= stopped.time_ms - resumed.intake_resumed.stopped_ms <= 1
    assert resumed.time_ms >= stopped.time_ms
