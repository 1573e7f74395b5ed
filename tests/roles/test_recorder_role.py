"""A recorder-only ``marketd run`` (``roles: [recorder]``) against the fake exchange: it
records the frames, the connections' markers and the REST book snapshots its books
fetched, its ``/readyz`` names the feeds and the recorder only, and it publishes nothing —
no Kafka connection (a listening socket stands in for the configured broker and must see
none), no Kafka or bus metrics, no spool."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from kit.daemon import binance_config
from kit.wait import poll_until_blocking

from marketd.recorder import read
from marketd.recorder.format import payload_marker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value

pytestmark = pytest.mark.slow

RECORDED = "marketd_recorder_frames_total"


def samples(exposition: str, prefix: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith(prefix)]


def test_a_recorder_only_process_records_and_publishes_nothing(tmp_path: Path) -> None:
    recording = tmp_path / "recording"
    with socket.socket() as broker:
        broker.bind(("127.0.0.1", 0))
        broker.listen(16)
        broker.setblocking(False)
        kafka = f"127.0.0.1:{broker.getsockname()[1]}"
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "9", "--rate", "300") as fx:
            config = {
                "roles": ["recorder"],
                "binance": binance_config(fx),
                "subscriptions": [
                    {"market": "spot", "symbols": ["BTCUSDT", "ETHUSDT"],
                     "channels": ["trade", "depth@100ms"]},
                    {"market": "usdm", "symbols": ["BTCUSDT"], "channels": ["aggTrade"]},
                ],
                # The same configuration as the collector's could be: Kafka configured.
                "kafka": {"bootstrap_servers": kafka},
                "recorder": {"enabled": True, "directory": str(recording)},
                "log": {"format": "json"},
            }  # fmt: skip
            with DaemonProcess(tmp_path, config) as daemon:
                daemon.wait_ready()
                _, body = daemon.ready()
                assert body == {
                    "ready": True,
                    "roles": ["recorder"],
                    "components": ["feed:spot-0", "feed:usdm-market-0", "recorder"],
                    "not_ready": [],
                }

                def recorded() -> float:
                    return metric_value(daemon.metrics(), RECORDED, result="recorded")

                def snapshots() -> float:
                    text = daemon.metrics()
                    return metric_value(text, "marketd_book_snapshot_requests_total")

                poll_until_blocking(lambda: recorded() >= 300 and snapshots() >= 2, timeout=30,
                                    what="300 entries recorded, both books' snapshots")  # fmt: skip
                text = daemon.metrics()
                assert metric_value(text, RECORDED, result="dropped") == 0
                # No publisher, bus or spool reports (kafka.delivery's module-level
                # counters show in every role, at 0).
                for family in ("marketd_kafka_connected", "marketd_bus_", "marketd_spool_"):
                    assert samples(text, family) == [], family
                assert metric_value(text, "marketd_kafka_records_acked_total") == 0
                assert daemon.stop() == 0
                log = daemon.log_tail(400)
        with pytest.raises(BlockingIOError):
            broker.accept()  # nobody connected to "Kafka"
    assert not (tmp_path / "spool").exists()
    running = [json.loads(line) for line in log.splitlines() if '"marketd running"' in line]
    assert running[0]["roles"] == ["recorder"]
    assert running[0]["recording"] == str(recording)

    entries = list(read(recording))
    ws = [e for e in entries if e.kind == "ws" and e.stream]
    assert {e.stream for e in ws} == {
        "btcusdt@trade", "ethusdt@trade", "btcusdt@depth@100ms", "ethusdt@depth@100ms",
        "btcusdt@aggTrade",
    }  # fmt: skip
    for e in ws:
        assert json.loads(e.payload)["stream"] == e.stream
    # The REST snapshots the books synced with: what a replay answers /api/v3/depth with (a
    # slow run may also have recorded an audit's or a deepening's snapshot of the same books).
    rest = [e for e in entries if e.kind == "rest"]
    paths = {e.stream.partition("&")[0] for e in rest}
    assert paths == {"/api/v3/depth?symbol=BTCUSDT", "/api/v3/depth?symbol=ETHUSDT"}
    assert all(json.loads(e.payload)["lastUpdateId"] > 0 for e in rest)
    assert {e.connection for e in rest} == {fx.urls["spot_rest_url"]}
    # Each connection from its connected marker to its closed one.
    for connection in ("spot-0", "usdm-market-0"):
        mine = [e for e in entries if e.connection == connection]
        first, last = payload_marker(mine[0].payload), payload_marker(mine[-1].payload)
        assert first is not None
        assert first["marketd"] == "connected"
        assert last == {"marketd": "closed", "code": 1000, "reason": None, "by": "marketd"}
