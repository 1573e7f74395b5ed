"""Issue 16, item 1: ``marketd run`` with ``collector.shards: 2`` — one parent, two worker
processes, a real Kafka broker and the fake exchange.

Each worker collects its own symbols (the status stream names the collector of every
stream, so the assignment is checked end to end), the parent's one port serves both
workers' metrics (labelled by shard) and readiness, a worker killed with SIGKILL is
started again and backfills what it missed, and SIGTERM to the parent drains both: every
trade of every symbol in Kafka, in order.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from e2ekit import SYMBOLS, assert_trades_complete, last_trade_ids
from kit.daemon import collector_config
from kit.wait import poll_until_blocking

from marketd.config.shards import shard_of
from marketd.data.records import Market
from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import (
    DaemonProcess,
    FakeExchangeProcess,
    free_port,
    http_json,
    http_text,
    metric_value,
)
from marketd.v1.status_pb2 import StatusEvent

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

Consume = Callable[..., Awaitable[list[ConsumedRecord]]]
MARKETS = {1: Market.SPOT, 2: Market.USDM}
WORKERS_LIVE_S = 15.0  # past trio's 10 s idle-thread timeout


def alive(pid: int) -> bool:
    """``pid`` runs (a zombie, which an orphan becomes if no one reaps it, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def test_two_shards_under_one_parent(
    tmp_path: Path, kafka_broker: KafkaBroker, consume_kafka: Consume
) -> None:
    uid = uuid.uuid4().hex[:8]
    topics = {n: f"test.shards.{n}.{uid}" for n in ("raw", "depth", "orderbook", "status")}
    facts: dict[str, Any] = {}

    def scenario() -> tuple[dict[str, int], dict[str, int]]:
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "46", "--rate", "300") as fx:
            config = collector_config(
                fx, bootstrap=kafka_broker.bootstrap, topics=topics, symbols=SYMBOLS
            )
            # The default roles: the workers collect and detect, the parent serves the UI.
            config["collector"] = {"shards": 2}
            config["alerts"] = {"state_dir": str(tmp_path / "state")}
            with DaemonProcess(tmp_path, config) as parent:
                began = time.monotonic()
                parent.wait_ready(timeout=90)
                code, body = parent.ready()
                assert code == 200, body
                shards = body["shards"]
                assert sorted(shards) == ["0", "1"], body
                pids = {k: v["pid"] for k, v in shards.items()}
                assert all(alive(p) for p in pids.values()), pids
                assert all(v["ready"] and v["not_ready"] == [] for v in shards.values()), body
                assert body["components"] == ["alerts_reader"]  # the parent's own gateway
                # The UI's health view: every shard's connections, from the parent's port.
                status = http_json(parent.base + "/api/status")[1]
                assert sorted(c["id"] for c in status["connections"]) == [
                    "shard-0/spot-0", "shard-0/usdm-market-0",
                    "shard-1/spot-0", "shard-1/usdm-market-0",
                ]  # fmt: skip
                assert status["books"]["synced"] + status["books"]["waiting"] == 3
                assert "gateway" in status
                assert "marketd" in http_text(parent.base + "/").lower()  # the UI page
                text = parent.metrics()
                for shard in ("0", "1"):  # each worker's samples, labelled
                    assert metric_value(text, "marketd_shard_up", shard=shard) == 1.0
                    frames = metric_value(text, "marketd_feed_frames_total", shard=shard)
                    assert frames > 0, shard
                # The workers live on (a worker once got SIGTERM 10 s after its start:
                # PR_SET_PDEATHSIG follows the forking thread, and trio retires idle ones).
                time.sleep(max(0.0, WORKERS_LIVE_S - (time.monotonic() - began)))
                lines = parent.ready()[1]["shards"]
                assert {k: (v["pid"], v["restarts"]) for k, v in lines.items()} == {
                    k: (pid, 0) for k, pid in pids.items()
                }, lines
                # A worker killed outright is started again and catches up.
                os.kill(pids["1"], signal.SIGKILL)
                poll_until_blocking(
                    lambda: (
                        (s := parent.ready()[1]) is not None
                        and s["shards"]["1"]["restarts"] == 1
                        and s["shards"]["1"]["ready"]
                    ),
                    timeout=90,
                    what="shard 1 started again and ready",
                )
                facts["restarted_pid"] = parent.ready()[1]["shards"]["1"]["pid"]
                assert facts["restarted_pid"] != pids["1"]
                assert (
                    metric_value(parent.metrics(), "marketd_shard_restarts_total", shard="1") == 1
                )
                fx.control("pause")
                spot, usdm = last_trade_ids(fx)

                def drained() -> bool:
                    text = parent.metrics()
                    return all(
                        metric_value(text, "marketd_spool_records_pending", shard=s) == 0
                        and metric_value(text, "marketd_backfills_running", shard=s) == 0
                        for s in ("0", "1")
                    )

                poll_until_blocking(drained, timeout=90, what="both shards drained")
                facts["code"] = parent.stop(timeout=60)
                facts["log"] = parent.log_tail(80)
            facts["alive_after"] = [p for p in [*pids.values(), facts["restarted_pid"]] if alive(p)]
        return spot, usdm

    with trio.fail_after(400):
        spot_last, usdm_last = await trio.to_thread.run_sync(scenario)
    assert facts["code"] == 0, facts["log"]
    assert facts["alive_after"] == [], facts
    # Every trade once at least, in order, across the kill (the restarted worker resumed
    # from its own spool and backfilled from REST).
    await assert_trades_complete(
        consume_kafka, topics["raw"], kafka_broker.bootstrap, spot_last, usdm_last
    )
    # The status stream: each stream collected by the shard the hash gives it.
    records = await consume_kafka([topics["status"]], bootstrap=kafka_broker.bootstrap)
    ups: dict[tuple[Market, str], set[str]] = {}
    started: list[str] = []
    for rec in records:
        event = StatusEvent.FromString(rec.value or b"")
        kind = event.WhichOneof("event")
        if kind == "collector_started":
            started.append(event.collector)
        elif kind == "stream_up":
            key = (MARKETS[event.market], event.stream_up.stream)
            ups.setdefault(key, set()).add(event.collector)
    assert sorted(started) == ["marketd-shard-0", "marketd-shard-1", "marketd-shard-1"]
    assert len(ups) == 2 * 3 + 3 + 1  # spot trade+depth, USD-M aggTrade, !miniTicker@arr
    for (market, stream), collectors in ups.items():
        symbol = "" if stream.startswith("!") else stream.partition("@")[0].upper()
        assert collectors == {f"marketd-shard-{shard_of(market, symbol, 2)}"}, stream


def test_workers_do_not_outlive_a_parent_killed_outright(tmp_path: Path) -> None:
    """SIGKILL of the parent (no chance to stop anyone): the workers get SIGTERM from the
    kernel (PR_SET_PDEATHSIG) and stop, instead of holding their spools as orphans. No
    broker is needed: the workers spool while Kafka is unreachable."""
    with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "47") as fx:
        config = collector_config(fx, bootstrap=f"127.0.0.1:{free_port()}", topics={},
                                  symbols=SYMBOLS)  # fmt: skip
        config["roles"] = ["collector"]
        config["collector"] = {"shards": 2}
        with DaemonProcess(tmp_path, config) as parent:
            poll_until_blocking(
                lambda: (
                    (body := parent.ready()[1]) is not None
                    and all(s["pid"] for s in body["shards"].values())
                ),
                timeout=60,
                what="both workers started",
            )
            pids = [s["pid"] for s in parent.ready()[1]["shards"].values()]
            parent.signal(signal.SIGKILL)
            assert parent.wait(10) == -signal.SIGKILL
            poll_until_blocking(
                lambda: not any(alive(p) for p in pids), timeout=30, what="the workers gone"
            )


async def test_resharding_keeps_every_trade(
    tmp_path: Path, kafka_broker: KafkaBroker, consume_kafka: Consume
) -> None:
    """One process, stopped; then two shards on the same spool directory. Every symbol now
    belongs to a shard's own directory, which has never seen it: each starts from the last
    trade id the one process left (its sequence.json, marketd.spool.layout), so the trades
    made while nothing ran are backfilled — not one missing across the resharding."""
    uid = uuid.uuid4().hex[:8]
    topics = {n: f"test.reshard.{n}.{uid}" for n in ("raw", "depth", "orderbook", "status")}
    facts: dict[str, Any] = {}

    def scenario() -> tuple[dict[str, int], dict[str, int]]:
        with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "48", "--rate", "300") as fx:
            config = collector_config(
                fx, bootstrap=kafka_broker.bootstrap, topics=topics, symbols=SYMBOLS
            )
            config["roles"] = ["collector"]
            with DaemonProcess(tmp_path, config) as one:
                one.wait_ready(timeout=90)
                poll_until_blocking(
                    lambda: metric_value(one.metrics(), "marketd_kafka_records_acked_total") > 300,
                    timeout=60,
                    what="one process delivering",
                )
                facts["one"] = one.stop(timeout=60)
            facts["stopped_at"] = last_trade_ids(fx)
            time.sleep(2.0)  # the exchange trades on while nothing collects
            config["collector"] = {"shards": 2}
            with DaemonProcess(tmp_path, config) as parent:
                parent.wait_ready(timeout=90)
                time.sleep(3.0)
                fx.control("pause")
                spot, usdm = last_trade_ids(fx)

                def drained() -> bool:
                    text = parent.metrics()
                    return all(
                        metric_value(text, "marketd_spool_records_pending", shard=s) == 0
                        and metric_value(text, "marketd_backfills_running", shard=s) == 0
                        for s in ("0", "1")
                    )

                poll_until_blocking(drained, timeout=90, what="both shards drained")
                facts["gaps"] = [
                    metric_value(parent.metrics(), "marketd_trades_backfilled_total", shard=s)
                    for s in ("0", "1")
                ]
                facts["code"] = parent.stop(timeout=60)
                facts["log"] = parent.log_tail(80)
        return spot, usdm

    with trio.fail_after(400):
        spot_last, usdm_last = await trio.to_thread.run_sync(scenario)
    assert facts["one"] == 0
    assert facts["code"] == 0, facts["log"]
    # The exchange traded while nothing ran, and both shards backfilled what it missed.
    stopped_spot, stopped_usdm = facts["stopped_at"]
    assert all(spot_last[s] > stopped_spot[s] for s in SYMBOLS), (stopped_spot, spot_last)
    assert all(usdm_last[s] > stopped_usdm[s] for s in SYMBOLS), (stopped_usdm, usdm_last)
    assert all(g > 0 for g in facts["gaps"]), facts["gaps"]
    await assert_trades_complete(
        consume_kafka, topics["raw"], kafka_broker.bootstrap, spot_last, usdm_last
    )
