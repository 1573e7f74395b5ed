"""The collector's shards (issue 16 item 1): which streams each shard collects, what each
worker's settings are, and the configurations refused with a clear line."""

from __future__ import annotations

import io

import pytest

from marketd.config.load import check_config, load_settings
from marketd.config.settings import Settings, Subscription
from marketd.config.shards import (
    empty_shards,
    shard_of,
    stream_symbol,
    subscriptions_of_shard,
)
from marketd.data.records import Market
from marketd.errors import ConfigError
from marketd.shards.worker import describe_shards, settings_of_shard

KAFKA = {"MARKETD_KAFKA__BOOTSTRAP_SERVERS": "kafka:9092"}


def test_the_assignment_is_pinned() -> None:
    """A change here moves symbols between the pods of a running StatefulSet (their spools
    and books): the hash is crc32 of "<market>:<SYMBOL>", never Python's salted hash."""
    spot = {s: shard_of(Market.SPOT, s, 4) for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT")}
    assert spot == {"BTCUSDT": 0, "ETHUSDT": 3, "BNBUSDT": 1, "XRPUSDT": 3}
    assert shard_of(Market.USDM, "XRPUSDT", 3) == 0  # per market
    assert shard_of(Market.SPOT, "XRPUSDT", 3) == 2
    assert shard_of(Market.SPOT, "btcusdt", 4) == shard_of(Market.SPOT, "BTCUSDT", 4)
    assert shard_of(Market.USDM, "", 4) == 0  # all-market streams: shard 0
    assert shard_of(Market.SPOT, "ETHUSDT", 1) == 0


def test_a_market_of_symbols_spreads_evenly() -> None:
    symbols = [f"COIN{i}USDT" for i in range(500)]
    counts = [0] * 4
    for s in symbols:
        counts[shard_of(Market.USDM, s, 4)] += 1
    assert sum(counts) == 500
    assert all(100 <= c <= 150 for c in counts), counts


def test_stream_symbols() -> None:
    assert stream_symbol("btcusdt@kline_1m") == "BTCUSDT"
    assert stream_symbol("!miniTicker@arr") == ""


def test_the_shards_split_the_subscriptions_exactly() -> None:
    subs = (
        Subscription(
            market=Market.SPOT,
            symbols=("BTCUSDT", "ETHUSDT", "BNBUSDT", "XRPUSDT"),
            channels=("trade", "depth@100ms"),
            streams=("ethusdt@kline_1m", "btcusdt@avgPrice"),
        ),
        Subscription(market=Market.USDM, symbols=("ETHUSDT",), channels=("aggTrade",),
                     streams=("!miniTicker@arr",)),
    )  # fmt: skip
    parts = [subscriptions_of_shard(subs, i, 4) for i in range(4)]
    # Shard 0: BTCUSDT (with its raw stream) and the all-market stream.
    assert parts[0] == (
        Subscription(market=Market.SPOT, symbols=("BTCUSDT",), channels=("trade", "depth@100ms"),
                     streams=("btcusdt@avgPrice",)),
        Subscription(market=Market.USDM, streams=("!miniTicker@arr",)),
    )  # fmt: skip
    assert parts[1] == (
        Subscription(market=Market.SPOT, symbols=("BNBUSDT",), channels=("trade", "depth@100ms")),
    )
    # ETHUSDT's kline goes where ETHUSDT's trades go; USD-M ETHUSDT has its own shard.
    assert parts[3][0].symbols == ("ETHUSDT", "XRPUSDT")
    assert parts[3][0].streams == ("ethusdt@kline_1m",)
    assert parts[2] == ()
    assert shard_of(Market.USDM, "ETHUSDT", 4) == 3
    assert parts[3][1] == Subscription(market=Market.USDM, symbols=("ETHUSDT",),
                                       channels=("aggTrade",))  # fmt: skip
    assert empty_shards(subs, 4) == [2]
    # Every symbol and stream in exactly one shard.
    spot_symbols = sorted(s for part in parts for sub in part if sub.market is Market.SPOT
                          for s in sub.symbols)  # fmt: skip
    assert spot_symbols == sorted(subs[0].symbols)


def test_a_worker_has_its_own_identity_and_share_of_the_budget() -> None:
    settings = load_settings(None, {**KAFKA, "MARKETD_COLLECTOR__SHARDS": "2",
                                    "MARKETD_KAFKA__TRANSACTIONAL_ID": "eu-1"})  # fmt: skip
    assert settings.collector.parent
    one = settings_of_shard(settings, 1)
    assert one.collector.worker
    assert not one.collector.parent
    assert one.collector.shard == 1
    assert one.kafka.client_id == "marketd-shard-1"
    assert one.kafka.transactional_id == "eu-1-shard-1"
    assert one.spool.directory == "var/spool/shard-1"
    assert one.recorder.directory == "var/recording/shard-1"
    assert one.alerts.state_dir == "var/shard-1"
    assert one.books.weight_budget_fraction == settings.books.weight_budget_fraction / 2
    # Each shard audits half the books: every 20 s, so each book as often as unsharded.
    assert settings.books.audit_interval_s == 10.0
    assert one.books.audit_interval_s == 20.0
    # The default subscriptions: BTCUSDT and !miniTicker@arr on 0, the other four on 1.
    assert [s.symbols for s in one.subscriptions] == [("ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT")]
    zero = settings_of_shard(settings, 0)
    assert [(s.market, s.symbols, s.streams) for s in zero.subscriptions] == [
        (Market.SPOT, ("BTCUSDT",), ()),
        (Market.USDM, (), ("!miniTicker@arr",)),
    ]
    unsharded = Settings()
    assert settings_of_shard(unsharded, 0) is unsharded


def test_a_worker_is_loaded_from_the_parents_config_and_its_shard() -> None:
    environ = {**KAFKA, "MARKETD_COLLECTOR__SHARDS": "2", "MARKETD_COLLECTOR__SHARD": "1"}
    settings = load_settings(None, environ)
    assert settings.collector.worker
    assert not settings.collector.parent


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ)
    return list(caught.value.problems)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({**KAFKA, "MARKETD_COLLECTOR__SHARDS": "0"},
         "collector.shards: must be in [1, 64], got 0"),
        ({**KAFKA, "MARKETD_COLLECTOR__SHARDS": "2", "MARKETD_COLLECTOR__SHARD": "2"},
         "collector.shard: must be -1 (not one shard) or in [0, 1], got 2"),
        ({"MARKETD_COLLECTOR__SHARDS": "2", "MARKETD_ROLES": "collector"},
         "collector: shards > 1 needs kafka.bootstrap_servers: Kafka is all the shards share"),
        ({**KAFKA, "MARKETD_COLLECTOR__SHARDS": "2", "MARKETD_ROLES": "gateway",
          "MARKETD_ALERTS__SOURCE": "kafka"},
         "collector: shards split the collector: roles must include collector"),
        ({**KAFKA, "MARKETD_COLLECTOR__SHARDS": "8"},
         "collector: shards [2, 5, 6] of 8 would collect nothing (fewer symbols than "
         "shards): lower shards"),
    ],
)  # fmt: skip
def test_refused_with_one_clear_line(environ: dict[str, str], expected: str) -> None:
    found = problems(environ)
    assert any(expected in p for p in found), found


def test_check_config_says_what_each_shard_collects() -> None:
    out = io.StringIO()
    environ = {**KAFKA, "MARKETD_COLLECTOR__SHARDS": "2"}
    assert check_config(None, environ, out, notes=describe_shards) == 0
    lines = out.getvalue().splitlines()
    # The parent's own gateway reads the workers' alerts, not a detector of its own.
    assert lines[0] == (
        "# roles: collector (feeds → Kafka), detector (each shard's stream, in its worker), "
        "gateway (alerts from kafka.topics.alerts)"
    )
    assert lines[1:4] == [
        "# shards: 2 worker processes (collector, detector); this parent runs the gateway "
        "(alerts from kafka.topics.alerts) and the probes of all",
        "#   shard 0: spot: symbols 1, streams 2; usdm: symbols 0, streams 1",
        "#   shard 1: spot: symbols 4, streams 8",
    ]
    out = io.StringIO()
    check_config(None, {**environ, "MARKETD_COLLECTOR__SHARD": "1"}, out, notes=describe_shards)
    assert "# shards: this process is shard 1 of 2" in out.getvalue().splitlines()
    assert describe_shards(Settings()) == []
