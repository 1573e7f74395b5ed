"""Shared steps of the end-to-end tests: the daemon's config, the exchange's last trade
ids, reading every trade back from Kafka, and checking that each symbol's ids are complete
and in order. (A support module, not a test module: test modules import from here, never
from each other.)"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from kit.daemon import collector_config

from marketd.testing.devkafka import ConsumedRecord
from marketd.testing.processes import FakeExchangeProcess
from marketd.v1.market_data_pb2 import MarketEvent

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]

LastIds = dict[str, int]


def daemon_config(
    fx: FakeExchangeProcess, bootstrap: str, raw: str, depth: str, orderbook: str = "test.orderbook"
) -> dict[str, Any]:
    """``marketd run`` collecting :data:`SYMBOLS` from ``fx`` into these Kafka topics."""
    topics = {"raw": raw, "depth": depth, "orderbook": orderbook}
    return collector_config(fx, bootstrap=bootstrap, topics=topics, symbols=SYMBOLS)


def trades_by_symbol(records: list[ConsumedRecord], kind: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for rec in records:
        event = MarketEvent.FromString(rec.value)
        if event.WhichOneof("event") == kind:
            assert rec.key == event.symbol.encode()
            out[event.symbol].append((event, getattr(event, kind)))
    return out


def last_trade_ids(fx: FakeExchangeProcess) -> tuple[LastIds, LastIds]:
    """The exchange's last spot trade id and USD-M aggregate trade id per symbol."""
    markets = fx.state()["markets"]
    spot = {s: markets["spot"]["symbols"][s]["last_trade_id"] for s in SYMBOLS}
    usdm = {s: markets["usdm"]["symbols"][s]["last_agg_id"] for s in SYMBOLS}
    return spot, usdm


async def assert_trades_complete(
    consume_kafka: Callable[..., Awaitable[list[ConsumedRecord]]],
    topic: str,
    bootstrap: str,
    spot_last: LastIds,
    usdm_last: LastIds,
) -> int:
    """Read ``topic`` until every symbol reached the exchange's last ids, then assert that
    no id is missing from each symbol's first one to its last and that first deliveries
    come in id order. Return the duplicates (records minus distinct ids)."""

    def complete(records: list[ConsumedRecord]) -> bool:
        s, u = trades_by_symbol(records, "trade"), trades_by_symbol(records, "agg_trade")
        return all(
            s[x] and s[x][-1][1].trade_id >= spot_last[x] and u[x]
            and u[x][-1][1].agg_trade_id >= usdm_last[x]
            for x in SYMBOLS
        )  # fmt: skip

    records = await consume_kafka([topic], until=complete, wait_s=60, bootstrap=bootstrap)
    spot: dict[str, list[Any]] = trades_by_symbol(records, "trade")
    usdm: dict[str, list[Any]] = trades_by_symbol(records, "agg_trade")
    duplicates = 0
    for symbol in SYMBOLS:
        for name, ids, last in (
            (f"spot {symbol}", [t.trade_id for _, t in spot[symbol]], spot_last[symbol]),
            (f"usdm {symbol}", [a.agg_trade_id for _, a in usdm[symbol]], usdm_last[symbol]),
        ):
            assert sorted(set(ids)) == list(range(ids[0], last + 1)), name
            first_seen = list(dict.fromkeys(ids))
            assert first_seen == sorted(first_seen), name
            duplicates += len(ids) - len(set(ids))
    return duplicates
