"""Re-publish: a live ``marketd run`` recorded through faults (connection drops, skipped
frames, a ``serverShutdown``), then replayed into a second ``marketd run``, publishes the
same Kafka records — compared record by record after decoding, receive times aside.

The raw and depth topics are compared per key, market and event type: within each, order is
that of one exchange connection, the same in both runs (across connections it depends on
timing, live too). The orderbook topic is not compared record by record: its snapshots are
taken on a wall-clock timer (``books.publish_interval_s``), so the two runs take them at
different update ids.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from kit.daemon import collector_config
from kit.wait import poll_until_blocking

from marketd.recorder import read
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    ReplayProcess,
    metric_value,
)
from marketd.v1.market_data_pb2 import MarketEvent

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
FAULTS = ({"kind": "drop"}, {"kind": "gap", "count": 5}, {"kind": "server_shutdown"})

Grouped = dict[tuple[str, bytes, bytes, bytes], list[bytes]]


def grouped(records: list[ConsumedRecord], roles: dict[str, str]) -> Grouped:
    """Each record's value with its receive time cleared, by (topic role, key, market,
    type), in topic order."""
    out: Grouped = defaultdict(list)
    for r in records:
        headers = dict(r.headers)
        assert r.value is not None
        event = MarketEvent.FromString(r.value)
        assert event.received_ns > 0
        event.received_ns = 0
        group = (roles[r.topic], r.key or b"", headers["market"], headers["type"])
        out[group].append(event.SerializeToString(deterministic=True))
    return out


def flowing(daemon: DaemonProcess, more: int) -> None:
    before = metric_value(daemon.metrics(), "marketd_events_total")
    poll_until_blocking(
        lambda: metric_value(daemon.metrics(), "marketd_events_total") > before + more,
        timeout=20, what="events flowing again",
    )  # fmt: skip


def settled(daemon: DaemonProcess) -> None:
    """Wait until the daemon acknowledges nothing new for a second (all delivered)."""
    last = -1.0
    while True:
        acked = metric_value(daemon.metrics(), "marketd_kafka_records_acked_total")
        if acked == last:
            return
        last = acked
        time.sleep(1.0)


async def test_a_replayed_recording_republishes_the_same_records(
    tmp_path: Path,
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    recording = tmp_path / "recording"
    live = {name: kafka_topic(name) for name in ("raw", "depth", "orderbook")}
    again = {name: kafka_topic(name) for name in ("raw", "depth", "orderbook")}
    for name in ("live", "again"):
        (tmp_path / name).mkdir()

    with FakeExchangeProcess(tmp_path / "live", "--symbols", "3", "--seed", "12",
                             "--rate", "400") as fx:  # fmt: skip
        config = collector_config(fx, bootstrap=kafka_broker.bootstrap, topics=live,
                                  symbols=SYMBOLS)  # fmt: skip
        config["recorder"] = {"enabled": True, "directory": str(recording)}
        with DaemonProcess(tmp_path / "live", config) as daemon:
            daemon.wait_ready()
            flowing(daemon, 300)
            for fault in FAULTS:
                fx.control("fault", fault)
                poll_until_blocking(lambda: daemon.ready()[0] == 200, timeout=20,
                                    what="ready again")  # fmt: skip
                flowing(daemon, 200)
            fx.control("pause")
            settled(daemon)
            live_metrics = daemon.metrics()
            assert daemon.stop() == 0
    # The faults cost frames: trades were backfilled from REST and books resynced.
    assert metric_value(live_metrics, "marketd_trades_backfilled_total") > 0
    assert metric_value(live_metrics, "marketd_feed_reconnects_total") >= 1
    entries = list(read(recording))
    assert any(e.kind == "rest" and "Trades?" in e.stream for e in entries)

    with ReplayProcess(tmp_path / "again", recording, "--speed", "2") as replay:
        config = collector_config(replay, bootstrap=kafka_broker.bootstrap, topics=again,
                                  symbols=SYMBOLS)  # fmt: skip
        with DaemonProcess(tmp_path / "again", config) as daemon:
            daemon.wait_ready(timeout=60)
            poll_until_blocking(lambda: replay.state()["finished"], timeout=120,
                                what="the replay played to its end")  # fmt: skip
            await trio.sleep(2.0)  # the last frames and backfill pages reach the daemon
            settled(daemon)
            again_metrics = daemon.metrics()
            assert daemon.stop() == 0

    roles = {topic: name for name, topic in (*live.items(), *again.items())}
    first = grouped(await consume_kafka([live["raw"], live["depth"]]), roles)
    second = grouped(await consume_kafka([again["raw"], again["depth"]]), roles)
    assert sorted(first) == sorted(second)
    for group in sorted(first):
        assert second[group] == first[group], group
    trades = sum(len(v) for k, v in first.items() if k[3] in (b"trade", b"aggTrade"))
    assert trades > 500
    assert len(first[("depth", b"BTCUSDT", b"spot", b"depthUpdate")]) > 100
    # The replayed run met the same holes and filled them with the same pages.
    assert metric_value(again_metrics, "marketd_trades_backfilled_total") == metric_value(
        live_metrics, "marketd_trades_backfilled_total"
    )
    assert metric_value(again_metrics, "marketd_trades_unfilled_total") == 0
