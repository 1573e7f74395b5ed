"""The MARKETD_* environment overlay: names, conversion, unknown names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketd.config.load import env_name, load_settings
from marketd.config.settings import Settings, Subscription
from marketd.data.records import Market
from marketd.errors import ConfigError


def problems_of(environ: dict[str, str], path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ)
    return caught.value.problems


# --- the fixed names operators rely on -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "read"),
    [
        (
            "MARKETD_KAFKA__BOOTSTRAP_SERVERS",
            "kafka-1:9092,kafka-2:9093",
            lambda s: s.kafka.bootstrap_servers,
        ),
        ("MARKETD_BINANCE__SPOT_WS_URL", "ws://127.0.0.1:4001", lambda s: s.binance.spot_ws_url),
        (
            "MARKETD_BINANCE__SPOT_REST_URL",
            "http://127.0.0.1:4002",
            lambda s: s.binance.spot_rest_url,
        ),
        (
            "MARKETD_BINANCE__FUTURES_WS_URL",
            "ws://127.0.0.1:4003",
            lambda s: s.binance.futures_ws_url,
        ),
        (
            "MARKETD_BINANCE__FUTURES_REST_URL",
            "http://127.0.0.1:4004",
            lambda s: s.binance.futures_rest_url,
        ),
        ("MARKETD_HTTP__LISTEN", "0.0.0.0:9100", lambda s: s.http.listen),
        ("MARKETD_KAFKA__TOPICS__RAW", "md.raw.v2", lambda s: s.kafka.topics.raw),
    ],
)
def test_fixed_names(name: str, value: str, read: Callable[[Settings], Any]) -> None:
    settings = load_settings(None, {name: value})
    assert read(settings) == value
    assert read(Settings()) != value


def test_kafka_enabled_only_with_bootstrap_servers() -> None:
    assert load_settings(None, {"MARKETD_KAFKA__BOOTSTRAP_SERVERS": "k:9092"}).kafka.enabled
    assert not load_settings(None, {"MARKETD_KAFKA__BOOTSTRAP_SERVERS": ""}).kafka.enabled


def test_deeper_keys() -> None:
    settings = load_settings(None, {"MARKETD_BINANCE__RECONNECT__MAX_S": "12.5"})
    assert settings.binance.reconnect.max_s == 12.5
    assert settings.binance.reconnect.initial_s == Settings().binance.reconnect.initial_s


def test_env_name_of_a_key() -> None:
    assert env_name("kafka.retry.max_s") == "MARKETD_KAFKA__RETRY__MAX_S"


def test_key_part_is_case_insensitive() -> None:
    settings = load_settings(None, {"MARKETD_kafka__Linger_MS": "7"})
    assert settings.kafka.linger_ms == 7


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "marketd.yaml"
    path.write_text("kafka: {linger_ms: 20, client_id: from-file}\n", encoding="utf-8")
    settings = load_settings(path, {"MARKETD_KAFKA__LINGER_MS": "30"})
    assert (settings.kafka.linger_ms, settings.kafka.client_id) == (30, "from-file")


def test_other_variables_are_ignored_and_marketd_config_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "marketd.yaml"
    path.write_text("", encoding="utf-8")
    environ = {
        "HOME": "/root",
        "KAFKA__LINGER_MS": "x",
        "marketd_kafka": "x",
        "MARKETD_CONFIG": str(path),
    }
    assert load_settings(None, environ) == Settings()


# --- conversion ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("True", True),
        ("YES", True),
        ("on", True),
        ("1", True),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("Off", False),
        ("0", False),
        (" yes ", True),
    ],
)
def test_bool_values(value: str, expected: bool) -> None:
    settings = load_settings(None, {"MARKETD_PIPELINE__BACKFILL_TRADES": value})
    assert settings.pipeline.backfill_trades is expected


@pytest.mark.parametrize("value", ["", "2", "y", "enabled", "nope", "truee"])
def test_other_bool_values_are_errors(value: str) -> None:
    (problem,) = problems_of({"MARKETD_PIPELINE__BACKFILL_TRADES": value})
    assert problem.startswith("pipeline.backfill_trades: expected a boolean")
    assert problem.endswith("(from MARKETD_PIPELINE__BACKFILL_TRADES)")


@given(st.text())
def test_bool_accepts_exactly_the_documented_words(value: str) -> None:
    words = {"true": True, "1": True, "yes": True, "on": True}
    words |= {"false": False, "0": False, "no": False, "off": False}
    environ = {"MARKETD_PIPELINE__BACKFILL_TRADES": value}
    expected = words.get(value.strip().lower())
    if expected is None:
        with pytest.raises(ConfigError):
            load_settings(None, environ)
    else:
        assert load_settings(None, environ).pipeline.backfill_trades is expected


def test_numbers() -> None:
    environ = {
        "MARKETD_KAFKA__LINGER_MS": " 25 ",
        "MARKETD_KAFKA__MAX_BATCH_BYTES": "2_000_000",
        "MARKETD_BINANCE__STALE_AFTER_S": "1e1",
        "MARKETD_SHUTDOWN__GRACE_S": "3",
    }
    settings = load_settings(None, environ)
    assert settings.kafka.linger_ms == 25
    assert settings.kafka.max_batch_bytes == 2_000_000
    assert settings.binance.stale_after_s == 10.0
    assert settings.shutdown.grace_s == 3.0


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MARKETD_KAFKA__LINGER_MS", "5ms", "kafka.linger_ms: expected an integer, got '5ms'"),
        ("MARKETD_KAFKA__LINGER_MS", "5.0", "kafka.linger_ms: expected an integer, got '5.0'"),
        ("MARKETD_BINANCE__STALE_AFTER_S", "soon", "binance.stale_after_s: expected a number"),
        ("MARKETD_BINANCE__STALE_AFTER_S", "inf", "binance.stale_after_s: expected a number"),
    ],
)
def test_bad_numbers(name: str, value: str, expected: str) -> None:
    (problem,) = problems_of({name: value})
    assert problem.startswith(expected)
    assert problem.endswith(f"(from {name})")


def test_enum_values_are_lower_cased() -> None:
    assert load_settings(None, {"MARKETD_LOG__LEVEL": "WARNING"}).log.level == "warning"
    assert load_settings(None, {"MARKETD_KAFKA__COMPRESSION": "ZSTD"}).kafka.compression == "zstd"


SUBSCRIPTION_TEXTS = {
    "json": '[{"market": "spot", "symbols": ["btcusdt", "ethusdt"], "channels": ["trade"]},'
    ' {"market": "USDM", "streams": ["!markPrice@arr"]}]',
    "yaml-flow": "[{market: spot, symbols: [btcusdt, ethusdt], channels: [trade]},"
    " {market: usdm, streams: ['!markPrice@arr']}]",
    "yaml-block": "- market: spot\n  symbols: [btcusdt, ethusdt]\n  channels: [trade]\n"
    "- market: usdm\n  streams: ['!markPrice@arr']\n",
    "comma-lists": '[{"market": "spot", "symbols": "btcusdt, ethusdt", "channels": "trade"},'
    ' {"market": "usdm", "streams": "!markPrice@arr"}]',
}


@pytest.mark.parametrize("text", SUBSCRIPTION_TEXTS.values(), ids=SUBSCRIPTION_TEXTS.keys())
def test_subscriptions_from_yaml_or_json_text(text: str) -> None:
    settings = load_settings(None, {"MARKETD_SUBSCRIPTIONS": text})
    assert settings.subscriptions == (
        Subscription(Market.SPOT, ("BTCUSDT", "ETHUSDT"), ("trade",)),
        Subscription(Market.USDM, streams=("!markPrice@arr",)),
    )


def test_subscriptions_text_errors() -> None:
    (problem,) = problems_of({"MARKETD_SUBSCRIPTIONS": "[{market: spot"})
    assert problem.startswith("subscriptions: not a YAML/JSON list")
    (problem,) = problems_of(
        {"MARKETD_SUBSCRIPTIONS": '[{"market": "spot", "streams": ["!ticker@arr"]}]'}
    )
    assert problem.startswith("subscriptions[0].streams: !ticker@arr is not available on spot")
    assert problem.endswith("(from MARKETD_SUBSCRIPTIONS)")


def test_env_source_replaces_file_source(tmp_path: Path) -> None:
    path = tmp_path / "marketd.yaml"
    path.write_text(
        "subscriptions:\n  - {market: spot, streams: ['!miniTicker@arr']}\n", encoding="utf-8"
    )
    (problem,) = problems_of(
        {"MARKETD_SUBSCRIPTIONS": "[{market: spot, symbols: [x-y], channels: [trade]}]"}, path
    )
    assert problem.startswith("subscriptions[0].symbols: 'X-Y' is not a symbol")
    assert problem.endswith("(from MARKETD_SUBSCRIPTIONS)")


# --- unknown names -------------------------------------------------------------------


SEE_LIST = "set the whole list as YAML/JSON text in MARKETD_SUBSCRIPTIONS"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "MARKETD_KAFKA__BOOTSTRAP_SERVER",
            "no such configuration key kafka.bootstrap_server"
            " (did you mean MARKETD_KAFKA__BOOTSTRAP_SERVERS?)",
        ),
        (
            "MARKETD_KAFKA_BOOTSTRAP_SERVERS",
            "no such configuration key kafka_bootstrap_servers"
            " (did you mean MARKETD_KAFKA__BOOTSTRAP_SERVERS?)",
        ),
        ("MARKETD_BINANCE__RECONNECT__MAXS", "no such configuration key binance.reconnect.maxs"),
        ("MARKETD_NOPE", "no such configuration key nope"),
        ("MARKETD_", "no such configuration key an empty key part"),
        ("MARKETD_KAFKA", "kafka is a section; set its keys as MARKETD_KAFKA__<KEY>"),
        ("MARKETD_KAFKA__LINGER_MS__X", "kafka.linger_ms is a value, not a section"),
        ("MARKETD_SUBSCRIPTIONS__0", f"subscriptions is a value, not a section; {SEE_LIST}"),
    ],
)
def test_unknown_environment_variable_is_named(name: str, expected: str) -> None:
    (problem,) = problems_of({name: "1"})
    assert problem.startswith(f"{name}: {expected}")


def test_same_key_set_twice_in_different_case() -> None:
    (problem,) = problems_of({"MARKETD_KAFKA__LINGER_MS": "1", "MARKETD_kafka__linger_ms": "2"})
    assert "kafka.linger_ms is also set by" in problem
