"""End to end: fake exchange → ``marketd run`` → real Kafka → consume and decode.

Every trade the exchange generated while marketd was subscribed must reach Kafka exactly
once, in per-symbol order, with the exchange's exact prices and ids — across injected
connection drops, a ``serverShutdown``, and malformed and unknown frames.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from e2ekit import SYMBOLS, daemon_config, trades_by_symbol
from kit.wait import poll_until_blocking

from marketd.testing.devkafka import ConsumedRecord, KafkaBroker
from marketd.testing.processes import DaemonProcess, FakeExchangeProcess, metric_value
from marketd.v1.market_data_pb2 import Market

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def history(
    fx: FakeExchangeProcess, market: str, path: str, symbol: str, first: int, last: int
) -> dict[int, dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    next_id = first
    while next_id <= last:
        page = fx.rest(market, f"{path}?symbol={symbol}&fromId={next_id}&limit=1000")
        assert page, f"no history from {next_id}"
        for row in page:
            rows[row["id"] if "id" in row else row["a"]] = row
        next_id = max(rows) + 1
    return rows


def verify_against_exchange(
    fx: FakeExchangeProcess,
    records: list[ConsumedRecord],
    spot_last: dict[str, int],
    usdm_last: dict[str, int],
) -> None:
    """Per symbol: consecutive ids up to the exchange's last, each equal to its history."""
    spot = trades_by_symbol(records, "trade")
    usdm = trades_by_symbol(records, "agg_trade")
    for symbol in SYMBOLS:
        ids = [t.trade_id for _, t in spot[symbol]]
        assert ids == list(range(ids[0], spot_last[symbol] + 1)), f"spot {symbol} not exact"
        truth = history(fx, "spot", "/api/v3/historicalTrades", symbol, ids[0], ids[-1])
        for event, trade in spot[symbol]:
            row = truth[trade.trade_id]
            assert (trade.price, trade.quantity) == (row["price"], row["qty"])
            assert trade.trade_time_ms == row["time"]
            assert trade.buyer_is_maker == row["isBuyerMaker"]
            assert event.market == Market.MARKET_SPOT
        agg_ids = [a.agg_trade_id for _, a in usdm[symbol]]
        assert agg_ids == list(range(agg_ids[0], usdm_last[symbol] + 1)), f"usdm {symbol}"
        agg_truth = history(fx, "usdm", "/fapi/v1/aggTrades", symbol, agg_ids[0], agg_ids[-1])
        for event, agg in usdm[symbol]:
            row = agg_truth[agg.agg_trade_id]
            assert (agg.price, agg.quantity) == (row["p"], row["q"])
            assert (agg.first_trade_id, agg.last_trade_id) == (row["f"], row["l"])
            assert event.market == Market.MARKET_USDM


async def test_every_trade_reaches_kafka_exactly_once_in_order(
    tmp_path: Path,
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    raw, depth = kafka_topic("raw"), kafka_topic("depth")
    with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "11", "--rate", "600") as fx:
        config = daemon_config(fx, kafka_broker.bootstrap, raw, depth)
        with DaemonProcess(tmp_path, config) as daemon:
            daemon.wait_ready()
            poll_until_blocking(
                lambda: metric_value(daemon.metrics(), "marketd_kafka_records_acked_total") > 300,
                timeout=20,
                what="records acknowledged",
            )
            # Faults while trading goes on: drops, a serverShutdown, broken frames.
            fx.control("fault", {"kind": "malformed", "market": "spot", "count": 5})
            fx.control("fault", {"kind": "unknown_event", "market": "usdm", "count": 3})

            def errors(reason: str) -> float:
                return metric_value(daemon.metrics(), "marketd_parse_errors_total", reason=reason)

            # Counted (and skipped) before the drops below could cut them off the wire.
            poll_until_blocking(
                lambda: errors("malformed") == 5 and errors("unknown") == 3,
                timeout=15,
                what="5 malformed and 3 unknown frames counted",
            )
            for kind in ("drop", "server_shutdown", "drop"):
                fx.control("fault", {"kind": kind})
                poll_until_blocking(
                    lambda: daemon.ready()[0] == 200, timeout=15, what="reconnected"
                )
                before = metric_value(daemon.metrics(), "marketd_events_total")
                poll_until_blocking(
                    lambda b=before: (
                        metric_value(daemon.metrics(), "marketd_events_total") > b + 100
                    ),
                    timeout=15,
                    what="events flowing again",
                )
            fx.control("pause")
            state = fx.state()
            spot_last = {
                s: state["markets"]["spot"]["symbols"][s]["last_trade_id"] for s in SYMBOLS
            }
            usdm_last = {s: state["markets"]["usdm"]["symbols"][s]["last_agg_id"] for s in SYMBOLS}

            def complete(records: list[ConsumedRecord]) -> bool:
                spot = trades_by_symbol(records, "trade")
                usdm = trades_by_symbol(records, "agg_trade")
                return all(
                    spot[s]
                    and spot[s][-1][1].trade_id == spot_last[s]
                    and usdm[s]
                    and usdm[s][-1][1].agg_trade_id == usdm_last[s]
                    for s in SYMBOLS
                )

            records = await consume_kafka([raw], until=complete, wait_s=60)
            exposition = daemon.metrics()
            assert daemon.stop() == 0, daemon.log_tail()
        verify_against_exchange(fx, records, spot_last, usdm_last)

    # The drops really cost trades that were then backfilled from REST, and none was lost.
    assert metric_value(exposition, "marketd_trades_backfilled_total") > 0
    assert metric_value(exposition, "marketd_trades_unfilled_total") == 0
    assert metric_value(exposition, "marketd_parse_errors_total", reason="malformed") == 5
    assert metric_value(exposition, "marketd_parse_errors_total", reason="unknown") == 3
    assert metric_value(exposition, "marketd_feed_reconnects_total") >= 3


def final_statistics(log_text: str) -> dict[str, Any]:
    lines = [json.loads(x) for x in log_text.splitlines() if x.startswith("{")]
    stats = [x for x in lines if x.get("event") == "statistics"]
    assert stats, "no statistics line in the log"
    return stats[-1]


async def test_sigterm_under_load_flushes_everything_received(
    tmp_path: Path,
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[[str], str],
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
) -> None:
    raw, depth, books = kafka_topic("raw"), kafka_topic("depth"), kafka_topic("orderbook")
    with FakeExchangeProcess(tmp_path, "--symbols", "3", "--seed", "12", "--rate", "2000") as fx:
        config = daemon_config(fx, kafka_broker.bootstrap, raw, depth, books)
        with DaemonProcess(tmp_path, config) as daemon:
            daemon.wait_ready()
            poll_until_blocking(
                lambda: metric_value(daemon.metrics(), "marketd_kafka_records_acked_total") > 3000,
                timeout=30,
                what="load",
            )
            assert daemon.stop(timeout=30) == 0, daemon.log_tail()
            stats = final_statistics(daemon.log_path.read_text())
    # Everything the normalizer accepted (and every book snapshot) was acknowledged by
    # Kafka before exit ...
    # The status stream (streams up, then down at the stop) is delivered beside them.
    assert stats["status_events"] >= 1 + 2 * len(SYMBOLS)
    assert stats["records"] + stats["book_snapshots"] + stats["status_events"] == stats["delivered"]
    assert stats["records"] > 3000
    # (The orderbook topic exists only once a book was synced and published.)
    topics = [raw, depth, books] if stats["book_snapshots"] else [raw, depth]
    records = await consume_kafka(topics, until=lambda rs: len(rs) >= stats["delivered"])
    assert len(records) == stats["delivered"] - stats["status_events"]
    # ... and what reached Kafka has no holes: consecutive ids per symbol up to the end.
    for symbol, trades in trades_by_symbol(records, "trade").items():
        ids = [t.trade_id for _, t in trades]
        assert ids == list(range(ids[0], ids[0] + len(ids))), symbol
